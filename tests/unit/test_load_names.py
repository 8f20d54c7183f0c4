"""load's pure parts: staging table names found again, the transaction script, status's staging lines."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from spotify_pipeline.load import RECOMMEND_TABLES, STAGING_RE, TRANSFORM_TABLES, StagingTable, transaction_script
from spotify_pipeline.schema import table
from spotify_pipeline_tools.cli.ops import render_staging


def test_a_staging_name_gives_back_its_table_and_snapshot_whatever_the_run_id() -> None:
    # A backfill's run id holds 8-digit groups of its own: the snapshot is the first after the table.
    for name in (*TRANSFORM_TABLES, *RECOMMEND_TABLES):
        staged = STAGING_RE.match(f"_staging_{name}_20250303_backfill_20261127T101500_a1b2c3_20250303_0badf00d")
        assert staged is not None and (staged["table"], staged["day"]) == (name, "20250303")
    for other in ("clusters", "_staging_clusters", "_staging_clusters_2025030_r_0badf00d", "_staging_x_20250303_r_zz"):
        assert STAGING_RE.match(other) is None


def test_the_script_checks_then_merges_every_table_inside_one_transaction() -> None:
    tables = [(table(n), f"p.d.{n}", f"p.d._staging_{n}_x") for n in ("tracks", "clusters")]
    lines = transaction_script(tables, date(2026, 1, 5)).splitlines()
    assert lines[0] == "BEGIN TRANSACTION;" and lines[-1] == "COMMIT TRANSACTION;"
    check, merges = lines[1], lines[2:-1]
    assert check.count("ERROR(") == 2 and "table clusters: " in check and "`p.d._staging_clusters_x`" in check
    assert [m.split("`")[1] for m in merges] == ["p.d.tracks", "p.d.clusters"]
    assert all("T.`snapshot_date` = DATE '2026-01-05' THEN DELETE" in m for m in merges)


def test_status_lists_staging_tables_with_their_age_and_says_nothing_when_there_are_none() -> None:
    now = datetime(2026, 1, 5, 12, tzinfo=UTC)
    found = [
        StagingTable("_staging_tracks_20260105_r_0badf00d", "tracks", date(2026, 1, 5), now - timedelta(hours=2.5)),
        StagingTable("_staging_clusters_20251229_r_0badf00d", "clusters", date(2025, 12, 29), None),
    ]
    lines = render_staging(found, now=now)
    assert lines[1].startswith("staging tables: 2 (a load in progress, or a failed delete;")
    assert "drops them 6 h after creation" in lines[1] and "older than 1 h" in lines[1]
    assert lines[2:] == [
        "  _staging_clusters_20251229_r_0badf00d  snapshot 2025-12-29  age unknown",
        "  _staging_tracks_20260105_r_0badf00d  snapshot 2026-01-05  2.5 h old",
    ]
    assert render_staging([], now=now) == []
