"""A week is the union of its markets, on the local stack: a run replaces only the markets it names,
a market leaves a week only when a run asks (``remove_markets``), two runs of one week at the same
time end with both runs' markets, and each run learns its own outcome."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from helpers import bucket_objects, outcomes_of, query, run_pipeline, runs, settings, snapshot_tables, wait_until

from spotify_pipeline import layout
from spotify_pipeline.store import BucketStore
from spotify_pipeline_tools.cli.follow import wait_for_run
from spotify_pipeline_tools.cli.publish import publish_tick

from helpers import bq, gcs  # isort: skip

WEEK = date(2024, 9, 2)
RACE = date(2024, 9, 9)
BUCKET = "spotify-pipeline-local"


def markets_of(stack: Any, day: date) -> dict[str, int]:
    rows = query(
        stack,
        "SELECT market, COUNT(*) AS n FROM chart_entries WHERE snapshot_date = @d GROUP BY market ORDER BY market",
        d=day,
    )
    return {r["market"]: r["n"] for r in rows}


def week_manifest(stack: Any, day: date) -> Any:
    manifest, _, _ = BucketStore(gcs(stack), BUCKET).read_manifest(layout.manifest_name("extract", day))
    return manifest


def test_a_run_of_one_market_keeps_the_others_and_removing_is_explicit(stack: Any) -> None:
    run_pipeline(stack, WEEK, "union-all")
    assert markets_of(stack, WEEK) == {"BR": 50, "GLOBAL": 50, "KR": 50}
    whole = snapshot_tables(stack, WEEK)
    raw_before = {n: g for n, g in bucket_objects(stack).items() if n.startswith(layout.prefix("extract", WEEK))}

    run_pipeline(stack, WEEK, "union-br", markets=["BR"])
    # The same data for BR (the stand-in answers alike), GLOBAL and KR kept: every table as it was.
    assert snapshot_tables(stack, WEEK) == whole
    parts = {p.run_id: p.markets for p in week_manifest(stack, WEEK).parts}
    assert parts == {"union-all": ("GLOBAL", "KR"), "union-br": ("BR",)}
    raw_after = bucket_objects(stack)
    kept = [n for n in raw_before if "/playlists/GLOBAL/" in n or "/playlists/KR/" in n]
    assert kept and all(raw_after.get(n) == raw_before[n] for n in kept)  # untouched, same generation
    listed = {f.name for f in week_manifest(stack, WEEK).files}
    old_br = [n for n in raw_before if "/playlists/BR/" in n]
    assert old_br and not set(old_br) & listed  # BR's old pages are no longer part of the week

    # Removing a market: only on request, and the model is recomputed over what is left.
    run_pipeline(stack, WEEK, "union-rm-kr", remove_markets=["KR"])
    assert markets_of(stack, WEEK) == {"BR": 50, "GLOBAL": 50}
    modelled = query(stack, "SELECT COUNT(*) AS n FROM model_features WHERE snapshot_date = @d", d=WEEK)[0]["n"]
    pairs = query(stack, "SELECT COUNT(*) AS n FROM recommendations WHERE snapshot_date = @d", d=WEEK)[0]["n"]
    assert 0 < modelled < 142 and pairs == modelled * (modelled - 1)
    kr_flags = query(
        stack,
        "SELECT COUNT(*) AS n FROM recommendations, UNNEST(track_markets) AS m WHERE snapshot_date = @d AND m = 'KR'",
        d=WEEK,
    )
    assert kr_flags[0]["n"] == 0
    # Bringing KR back restores the first week exactly.
    run_pipeline(stack, WEEK, "union-kr", markets=["KR"])
    assert snapshot_tables(stack, WEEK) == whole


def test_two_runs_of_one_week_at_once_end_with_the_union_and_each_their_own_outcome(stack: Any) -> None:
    env, s = stack.env(), settings(stack)
    publish_tick(env, stack, {"snapshot_date": RACE.isoformat(), "run_id": "race-gb", "markets": ["GLOBAL", "BR"]})
    time.sleep(1.0)
    publish_tick(env, stack, {"snapshot_date": RACE.isoformat(), "run_id": "race-kr", "markets": ["KR"]})
    assert wait_for_run(bq(stack), s, "race-gb", 180, env=stack.env()) == 0
    assert wait_for_run(bq(stack), s, "race-kr", 180, env=stack.env()) == 0

    def settled() -> bool:
        receipt = BucketStore(gcs(stack), BUCKET).read_manifest(layout.manifest_name("load", RACE))[0]
        return set(receipt.summary.get("runs") or {}) == {"race-gb", "race-kr"}

    wait_until(settled, 120)
    assert markets_of(stack, RACE) == {"BR": 50, "GLOBAL": 50, "KR": 50}
    assert {p.run_id: p.markets for p in week_manifest(stack, RACE).parts} == {
        "race-gb": ("BR", "GLOBAL"),
        "race-kr": ("KR",),
    }
    # The week holds what one run of all three markets gives (the stand-in's data does not depend on the date).
    union = {k: sorted(r.replace(RACE.isoformat(), "D") for r in v) for k, v in snapshot_tables(stack, RACE).items()}
    whole = {k: sorted(r.replace(WEEK.isoformat(), "D") for r in v) for k, v in snapshot_tables(stack, WEEK).items()}
    if markets_of(stack, WEEK) == {"BR": 50, "GLOBAL": 50, "KR": 50}:
        assert union == whole
    # Exactly one outcome each, in the bucket and in the warehouse; a run whose markets another run's
    # load brought in says which (stage rows stay one per execution: no load row is made up for it).
    for run_id in ("race-gb", "race-kr"):
        ((week, (outcome, reason)),) = outcomes_of(stack, run_id).items()
        assert (week, outcome) == (RACE.isoformat(), "succeeded")
        assert reason is None or reason.startswith("loaded by the load of run race-"), reason
        own = [r for r in runs(stack, run_id) if r["stage"] == "load" and r["status"] == "succeeded"]
        if reason is None:  # credited with the load: its own execution's row holds the counts
            assert own, runs(stack, run_id)
        recorded = query(stack, "SELECT outcome, snapshot_date FROM run_outcomes WHERE run_id = @r", r=run_id)
        assert recorded == [{"outcome": "succeeded", "snapshot_date": RACE}]
