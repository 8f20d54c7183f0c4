"""The "views" of schemas/tables.json: what Terraform and the local stack create, checked statically."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import spotify_pipeline
from spotify_pipeline.schema import ViewSpec, tables, view, views

# The charts of the seed's report, and the history it could not show.
DASHBOARD = {
    "dash_snapshots",
    "dash_latest_chart",
    "dash_market_summary",
    "dash_genres",
    "dash_popularity_danceability",
    "dash_top_songs",
    "dash_clusters",
    "dash_recommendations",
    "dash_recommendations_by_market",
    "dash_weekly_movement",
    "dash_model_status",
}
REFERENCE = re.compile(r"`\{project\}\.\{dataset\}\.(\w+)`")


@pytest.fixture(params=sorted(DASHBOARD))
def spec(request: pytest.FixtureRequest) -> ViewSpec:
    return view(request.param)


def test_every_chart_has_its_view() -> None:
    assert set(views()) == DASHBOARD
    raw = json.loads((Path(spotify_pipeline.__file__).parent / "schemas" / "tables.json").read_text("utf-8"))
    assert list(raw["views"]) == list(views())


def test_unknown_view_error_lists_known_ones() -> None:
    with pytest.raises(KeyError, match="dash_top_songs"):
        view("dash_top_song")


def test_names_and_descriptions(spec: ViewSpec) -> None:
    assert re.fullmatch(r"[a-z][a-z0-9_]*", spec.name) and spec.name not in tables()
    assert len(spec.description) > 40


def test_sql_names_only_tables_of_the_schema_fully_qualified(spec: ViewSpec) -> None:
    assert set(re.findall(r"\$?\{(\w+)\}", spec.sql)) <= {"project", "dataset"}  # what Terraform replaces
    named = set(REFERENCE.findall(spec.sql))
    assert named and named <= set(tables()), named - set(tables())
    # every FROM/JOIN target is a qualified table or a CTE/subquery, never another view (no creation order)
    assert not (named & set(views()))


def test_query_replaces_the_placeholders(spec: ViewSpec) -> None:
    sql = spec.query("my-project", "charts")
    assert "{" not in sql and "`my-project.charts." in sql


def test_views_project_strings_not_arrays_for_looker_studio(spec: ViewSpec) -> None:
    """Looker Studio does not chart REPEATED fields: arrays leave the views as comma-joined strings."""
    final_select = spec.sql[spec.sql.rfind("\nSELECT") :]
    for column in ("artist_names", "markets", "track_markets", "neighbor_markets"):
        for m in re.finditer(rf"^\s+(\w+\.)?{column},?$", final_select, re.M):
            pytest.fail(f"{spec.name}: {m.group(0).strip()} leaves the view as an array")
