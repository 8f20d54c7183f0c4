"""transform on what extract wrote for each chart source and feature provider: the tables hold
exactly the chart file's entries, each track's features come from the first provider of the
chain that has them, and the provenance columns say where and when."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import pytest
from unit.sources.harness import CHARTS, NOW, Harness, MemoryStore

from spotify_pipeline.events import parse_run_request
from spotify_pipeline.extract import run_extract
from spotify_pipeline.features import MODEL_FEATURES
from spotify_pipeline.manifest import UpstreamRef
from spotify_pipeline.schema import table
from spotify_pipeline.tabular import to_arrow
from spotify_pipeline.transform import ARTIST_NAME_KEY, TABLES, run_transform
from spotify_pipeline_tools.standin.catalogue import USER_PLAYLISTS, Catalogue

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
CHART_TIME = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def pipeline(h: Harness, **payload: Any) -> list[dict[str, pd.DataFrame]]:
    """extract, then transform each snapshot; the tables read back from the written Parquet."""
    from spotify_pipeline.tabular import read_parquet

    req = parse_run_request(payload, h.settings, default_run_id="unit-t", today=date(2026, 11, 23))
    store = MemoryStore()
    out = []
    for manifest, gen in run_extract(req, store, h.sources(), lambda: NOW, bucket="b"):
        up = UpstreamRef(f"extract/snapshot_date={manifest.snapshot_date}/_manifest.json", gen, "0" * 64)
        clean, _ = run_transform(manifest, up, store, lambda: NOW)  # type: ignore[arg-type]
        out.append({f.table: read_parquet(store.objects[f.name]) for f in clean.files if f.table})
    return out


def file_rows(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((CHARTS / name).read_bytes().decode("utf-8-sig"))))


def test_kaggle_file_tables_hold_exactly_its_entries(harness: Callable[..., Harness]) -> None:
    h = harness()
    h.files["inbox/k.csv"] = (CHARTS / "kaggle-top-songs-iso.csv").read_bytes()
    snaps = pipeline(h, charts_csv="inbox/k.csv", markets=["GLOBAL", "KR", "MX"])
    rows = [r for r in file_rows("kaggle-top-songs-iso.csv") if r["country"] in ("", "KR", "MX")]
    got = sorted(
        (str(d), m, int(r), t)
        for s in snaps
        for d, m, r, t in s["chart_entries"][["snapshot_date", "market", "rank", "track_id"]].itertuples(index=False)
    )
    want = sorted((r["snapshot_date"], r["country"] or "GLOBAL", int(r["daily_rank"]), r["spotify_id"]) for r in rows)
    assert got == want
    for s in snaps:
        assert set(s["chart_entries"]["chart_source"]) == {"charts-csv"}
        assert s["chart_entries"]["playlist_id"].isna().all()
        tracks = s["tracks"].set_index("track_id")
        by_id = {r["spotify_id"]: r for r in rows}
        featured = tracks[tracks["has_features"]]
        assert set(featured["feature_source"]) == {"dataset"}
        for tid, t in featured.iterrows():
            for col in MODEL_FEATURES:
                assert t[col] == float(by_id[tid][col]), (tid, col)
            assert t["features_fetched_at"] == CHART_TIME  # the chart file's time, stable across re-runs
        assert len(s["model_features"]) == int(tracks["has_features"].sum())
        assert set(s["model_features"]["track_id"]) == set(featured.index)


def test_unknown_tracks_keep_names_from_the_file(harness: Callable[..., Harness]) -> None:
    h = harness(spotify_client_id="", spotify_client_secret="")
    h.files["inbox/m.csv"] = (CHARTS / "kaggle-top-songs-mdy.csv").read_bytes()
    first, second = pipeline(h, charts_csv="inbox/m.csv")
    tracks = first["tracks"].set_index("track_id")
    assert len(tracks) == 9 and int(tracks["has_features"].sum()) == 8
    duo = tracks[tracks["artist_names"].map(len) == 2]
    assert not duo.empty
    assert all(list(n) == ["Synthetic Duo", "Synthetic Featured Guest"] for n in duo["artist_names"])
    # No Spotify metadata: artists are known by name, under the documented key, and still get rows.
    assert all(list(ids) == ["name:Synthetic Duo", "name:Synthetic Featured Guest"] for ids in duo["artist_ids"])
    credited = {a for ids in tracks["artist_ids"] for a in ids}
    assert credited and all(a.startswith(ARTIST_NAME_KEY) for a in credited)
    artists = first["artists"].set_index("artist_id")
    assert set(artists.index) == credited
    assert artists.loc["name:Synthetic Duo", "artist_name"] == "Synthetic Duo"
    assert len(first["track_artists"]) == sum(len(ids) for ids in tracks["artist_ids"])
    assert tracks["popularity"].notna().all() and tracks["album_name"].notna().all()  # from the file
    assert len(first["chart_entries"]) == len(second["chart_entries"]) == 12


def test_reccobeats_features_matched_by_href(harness: Callable[..., Harness], catalogue: Catalogue) -> None:
    h = harness()
    h.standin.mode("dev-2026")
    user = {m: pid for m, (pid, _) in USER_PLAYLISTS.items()}
    (tables,) = pipeline(h, snapshot_date="2026-11-23", playlists=user, feature_providers=["reccobeats"])
    tracks = tables["tracks"].set_index("track_id")
    assert len(tracks) == 143
    assert set(tracks["feature_source"].dropna()) == {"reccobeats"}
    assert int(tracks["has_features"].sum()) == len(catalogue.reccobeats) == 140
    for tid, item in catalogue.reccobeats.items():
        assert tracks.loc[tid, "danceability"] == item["danceability"]
    assert tracks["popularity"].isna().all()  # removed in 2026: null, not a crash
    artists = tables["artists"]
    assert artists["genres"].map(len).eq(0).all() and artists["main_genre"].isna().all()
    assert artists["popularity"].isna().all() and artists["followers"].isna().all()
    assert (artists["fetched_at"] == NOW).all()


def test_rerun_of_a_week_gives_identical_tables(harness: Callable[..., Harness]) -> None:
    """The second run is served from the bucket cache; provenance times stay those of the first fetch."""
    h = harness()
    (first,) = pipeline(h, snapshot_date="2026-11-23", markets=["KR"])
    (second,) = pipeline(h, snapshot_date="2026-11-23", markets=["KR"])
    for name in TABLES:
        pd.testing.assert_frame_equal(first[name], second[name], check_dtype=False)
        assert to_arrow(second[name], table(name)).schema.equals(table(name).arrow_schema())
