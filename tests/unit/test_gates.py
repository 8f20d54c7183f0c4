"""Data-quality gates: thresholds as configuration, each check on crafted tables, the report's
message (check, value, threshold), and check_chart / check_features against an in-memory bucket."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from dataclasses import fields, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from spotify_pipeline import gates, layout
from spotify_pipeline.config import ENVIRONMENT_VARIABLES, ConfigError, Settings, parse_gate_thresholds
from spotify_pipeline.errors import PermanentError
from spotify_pipeline.events import InvalidEvent, parse_run_request
from spotify_pipeline.features import FEATURE_RANGES, INPUT_RANGES
from spotify_pipeline.gates import (
    GATES,
    GateFailed,
    GateThresholds,
    Measurements,
    OutOfRange,
    Previous,
    evaluate,
    measure,
)
from spotify_pipeline.manifest import FileEntry, Manifest, UpstreamRef
from spotify_pipeline.runlog import StageRun
from spotify_pipeline.schema import table
from spotify_pipeline.store import ObjectMismatch, StaleObject
from spotify_pipeline.tabular import parquet_bytes, to_arrow
from spotify_pipeline.transform import build_tables

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
GOLDEN_DAY = date(2026, 11, 23)
DAY = date(2026, 3, 9)
TH = GateThresholds()


def golden_tables(day: date = DAY) -> dict[str, pd.DataFrame]:
    name = f"extract/snapshot_date={GOLDEN_DAY.isoformat()}/_manifest.json"
    manifest = Manifest.from_bytes((GOLDEN / "raw" / name).read_bytes(), name)
    raw = [(f.name, json.loads((GOLDEN / "raw" / f.name).read_bytes())) for f in manifest.files]
    return build_tables(raw, day, chart_source="spotify-playlist", feature_source="spotify")


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return golden_tables()


def arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


def measured(frames: dict[str, pd.DataFrame], **overrides: Any) -> Measurements:
    m = measure(
        arrow(frames["chart_entries"]),
        arrow(frames["tracks"]),
        snapshot_date=DAY,
        chart_source="spotify-playlist",
        model_features=len(frames["model_features"]),
    )
    return replace(m, **overrides)


def by_gate(results: tuple[gates.GateResult, ...]) -> dict[str, gates.GateResult]:
    return {r.gate: r for r in results}


def run(m: Measurements, previous: Previous | None = None, **th: Any) -> dict[str, gates.GateResult]:
    return by_gate(
        evaluate(
            m,
            GateThresholds(**th),
            expected_markets=("GLOBAL", "BR", "KR"),
            expected_from="the run request",
            previous=previous,
        )
    )


# ------------------------------------------------------------------------ declarations


def test_every_gate_is_evaluated_in_declared_order(tables: dict[str, pd.DataFrame]) -> None:
    results = evaluate(measured(tables), TH, expected_markets=(), expected_from="-", previous=None)
    assert [r.gate for r in results] == list(GATES)
    assert all(r.passed for r in results), [str(r) for r in results if not r.passed]


def test_feature_ranges_cover_the_feature_columns_of_tracks() -> None:
    columns = set(table("tracks").column_names)
    assert set(FEATURE_RANGES) <= columns
    numeric = {c.name for c in table("tracks").columns if c.type in ("FLOAT64", "INT64")}
    features = numeric - {"duration_ms", "popularity", "best_rank"}
    assert features == set(FEATURE_RANGES)  # every audio feature has a documented range
    # The model features' ranges are the ones the schema documents.
    for feature in ("danceability", "energy", "valence"):
        assert FEATURE_RANGES[feature] == (0.0, 1.0)
        assert "0..1" in next(c.description for c in table("tracks").columns if c.name == "danceability")


def test_documented_ranges_lie_within_the_input_contract() -> None:
    """Two layers: what cannot be a feature value at all is refused by extract/transform (input
    contract, features.INPUT_RANGES: a corrupt input, no force); what can be but lies outside
    the documented range is this gate's (forceable). Nested, so every gate range is reachable."""
    assert set(INPUT_RANGES) == set(FEATURE_RANGES)
    for feature, (low, high) in FEATURE_RANGES.items():
        c_low, c_high = INPUT_RANGES[feature]
        assert c_low <= low <= high <= c_high, (feature, (low, high), (c_low, c_high))


def test_thresholds_are_declared_once_with_variable_default_and_documentation() -> None:
    declared = {f.metadata["env"]: f for f in fields(GateThresholds)}
    assert set(declared) == set(gates.threshold_variables())
    for env, f in declared.items():
        assert env.startswith("PIPELINE_GATE_") and env in ENVIRONMENT_VARIABLES
        assert ENVIRONMENT_VARIABLES[env] == f.metadata["doc"] and len(f.metadata["doc"]) > 40
        assert f.name in " ".join(GATES) or any(g in f.metadata["doc"] for g in GATES), env


def test_settings_read_the_thresholds_and_blank_means_default() -> None:
    assert Settings.from_env({}).gates == GateThresholds() == Settings().gates
    env = {
        "PIPELINE_GATE_EXPECTED_MARKETS": "global, br",
        "PIPELINE_GATE_MIN_ENTRIES_PER_MARKET": "50",
        "PIPELINE_GATE_MAX_ENTRIES_PER_MARKET": " 60 ",
        "PIPELINE_GATE_MAX_SHARE_WITHOUT_FEATURES": "0.1",
        "PIPELINE_GATE_MIN_RATIO_VS_PREVIOUS": "0",
        "PIPELINE_GATE_PREVIOUS_MAX_AGE_DAYS": "8",
        "PIPELINE_GATE_FEATURE_RANGES": '{"loudness": [-70, 5], "tempo": [1, 250.5]}',
    }
    th = Settings.from_env(env).gates
    assert th.expected_markets == ("GLOBAL", "BR")
    assert (th.min_entries_per_market, th.max_entries_per_market, th.previous_max_age_days) == (50, 60, 8)
    assert (th.max_share_without_features, th.min_ratio_vs_previous) == (0.1, 0.0)
    assert th.feature_ranges["loudness"] == (-70.0, 5.0) and th.feature_ranges["tempo"] == (1.0, 250.5)
    assert th.feature_ranges["energy"] == (0.0, 1.0)  # not named: default kept


@pytest.mark.parametrize(
    ("variable", "raw", "needle"),
    [
        ("PIPELINE_GATE_MIN_ENTRIES_PER_MARKET", "many", "not an integer"),
        ("PIPELINE_GATE_MAX_ENTRIES_PER_MARKET", "-1", ">= 0"),
        ("PIPELINE_GATE_MAX_SHARE_WITHOUT_FEATURES", "1.5", "between 0 and 1"),
        ("PIPELINE_GATE_MIN_RATIO_VS_PREVIOUS", "nan", "between 0 and 1"),
        ("PIPELINE_GATE_EXPECTED_MARKETS", "Brazil", "GLOBAL nor an ISO"),
        ("PIPELINE_GATE_FEATURE_RANGES", '{"loudness": [5, -70]}', "low <= high"),
        ("PIPELINE_GATE_FEATURE_RANGES", '{"happiness": [0, 1]}', "unknown feature"),
        ("PIPELINE_GATE_FEATURE_RANGES", "[0, 1]", "JSON object"),
    ],
)
def test_bad_thresholds_name_the_variable(variable: str, raw: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({variable: raw})
    assert variable in str(info.value) and needle in str(info.value)


def test_min_above_max_is_refused() -> None:
    with pytest.raises(ConfigError, match="PIPELINE_GATE_MIN_ENTRIES_PER_MARKET=300 is above"):
        Settings.from_env({"PIPELINE_GATE_MIN_ENTRIES_PER_MARKET": "300"})


def test_the_reader_must_read_every_declared_threshold() -> None:
    with pytest.raises(ConfigError, match="keep config and gates in step"):
        parse_gate_thresholds({}, ("PIPELINE_GATE_EXPECTED_MARKETS",))


# ------------------------------------------------------------------------ the checks


def test_measure_the_golden_snapshot(tables: dict[str, pd.DataFrame]) -> None:
    m = measured(tables)
    assert m.entries_per_market == {"BR": 50, "GLOBAL": 50, "KR": 50}
    assert (m.tracks, m.tracks_without_features, m.model_features) == (143, 1, 142)
    assert m.duplicate_ranks == () and m.out_of_range == {}


def test_a_missing_market_fails_markets_present(tables: dict[str, pd.DataFrame]) -> None:
    chart = tables["chart_entries"]
    m = measured({**tables, "chart_entries": chart[chart["market"] != "KR"]})
    result = run(m)["markets_present"]
    assert not result.passed
    assert result.value == "missing KR (present: BR, GLOBAL)"
    assert result.threshold == "every market of the run request: GLOBAL, BR, KR"


def test_expected_markets_default_to_none() -> None:
    m = Measurements(DAY, "charts-csv", {"MX": 3}, (), 3, 0, 3, {})
    result = by_gate(evaluate(m, TH, expected_markets=(), expected_from="-", previous=None))["markets_present"]
    assert result.passed and "PIPELINE_GATE_EXPECTED_MARKETS is unset" in result.threshold


def test_entries_per_market_bounds(tables: dict[str, pd.DataFrame]) -> None:
    m = measured(tables)
    assert run(m)["entries_per_market"].passed
    low = run(m, min_entries_per_market=51)["entries_per_market"]
    assert not low.passed and low.value == "BR has 50 entries, GLOBAL has 50 entries, KR has 50 entries"
    assert low.threshold.startswith("51..200 entries per market")
    high = run(replace(m, entries_per_market={"BR": 50, "GLOBAL": 201, "KR": 50}))["entries_per_market"]
    assert not high.passed and high.value == "GLOBAL has 201 entries"


def test_duplicate_ranks_fail_unique_ranks(tables: dict[str, pd.DataFrame]) -> None:
    chart = tables["chart_entries"]
    doubled = pd.concat([chart, chart[(chart["market"] == "BR") & (chart["rank"] == 7)]], ignore_index=True)
    m = measured({**tables, "chart_entries": doubled})
    assert m.duplicate_ranks == (("BR", 7, 2),)
    result = run(m)["unique_ranks"]
    assert not result.passed and result.value == "market BR rank 7 appears 2 times"
    assert result.threshold == "each (snapshot_date, market, rank) at most once"


def test_features_out_of_range_name_feature_track_value_and_range(tables: dict[str, pd.DataFrame]) -> None:
    tracks = tables["tracks"].copy()
    ids = sorted(tracks.loc[tracks["has_features"], "track_id"])
    tracks.loc[tracks["track_id"] == ids[3], "energy"] = 1.7
    tracks.loc[tracks["track_id"] == ids[1], "energy"] = -0.2
    tracks.loc[tracks["track_id"] == ids[2], "loudness"] = math.inf
    m = measured({**tables, "tracks": tracks})
    assert m.out_of_range["energy"] == OutOfRange(2, ids[1], -0.2)
    assert m.out_of_range["loudness"].count == 1
    result = run(m)["features_in_range"]
    assert not result.passed
    assert f"energy: 2 value(s) outside the range, e.g. track {ids[1]} = -0.2" in result.value
    assert "loudness: 1 value(s)" in result.value
    assert result.threshold.startswith("energy 0..1, loudness -60..5")
    # Missing features are nulls, not out of range; a range can be widened by configuration.
    assert measured(tables).out_of_range == {}
    widened = {**FEATURE_RANGES, "energy": (-1.0, 2.0), "loudness": (-math.inf, math.inf)}
    assert run(m, feature_ranges=widened)["features_in_range"].passed is False  # inf is never a value
    assert set(
        measure(
            arrow(tables["chart_entries"]),
            arrow(tracks),
            snapshot_date=DAY,
            chart_source="x",
            model_features=1,
            ranges=widened,
        ).out_of_range
    ) == {"loudness"}


def test_feature_coverage(tables: dict[str, pd.DataFrame]) -> None:
    m = measured(tables)
    ok = run(m)["feature_coverage"]
    assert ok.passed and ok.value == "1 of 143 tracks without features (0.7%)"
    bad = run(replace(m, tracks_without_features=40))["feature_coverage"]
    assert not bad.passed and bad.value == "40 of 143 tracks without features (28.0%)"
    assert bad.threshold == "at most 25% (PIPELINE_GATE_MAX_SHARE_WITHOUT_FEATURES=0.25)"


def test_rows_against_the_previous_week(tables: dict[str, pd.DataFrame]) -> None:
    m = measured(tables)
    prev = Previous(DAY - timedelta(days=7), {"BR": 50, "GLOBAL": 50, "KR": 50}, 143, 142)
    same = run(m, prev)["rows_vs_previous"]
    assert same.passed and same.value.startswith(f"vs {prev.snapshot_date}: BR 50/50")
    # One market collapsing is caught although the totals are still above half.
    shrunk = replace(m, entries_per_market={"BR": 12, "GLOBAL": 50, "KR": 50})
    result = run(shrunk, prev)["rows_vs_previous"]
    assert not result.passed and result.value == f"BR has 12 entries, 50 on {prev.snapshot_date}"
    assert result.threshold == "at least 0.5 x the previous snapshot (PIPELINE_GATE_MIN_RATIO_VS_PREVIOUS)"
    # The model's rows: a feature gate of their own, compared only over the same set of markets.
    fewer = replace(m, model_features=59)
    model = run(fewer, prev)["model_vs_previous"]
    assert not model.passed and model.value == f"model_features has 59 rows, 142 on {prev.snapshot_date}"
    assert run(fewer, prev)["rows_vs_previous"].passed
    two_markets = replace(fewer, entries_per_market={"BR": 50, "GLOBAL": 50})
    assert run(two_markets, prev)["model_vs_previous"].passed
    assert run(fewer, replace(prev, entries_per_market=None))["model_vs_previous"].passed  # markets unknown
    # No previous week, or the checks turned off.
    assert "no snapshot of chart source spotify-playlist" in run(shrunk, None)["rows_vs_previous"].value
    assert run(shrunk, prev, min_ratio_vs_previous=0.0)["rows_vs_previous"].passed
    assert run(fewer, prev, min_ratio_vs_previous=0.0)["model_vs_previous"].passed


def test_gates_are_split_into_chart_and_feature_gates() -> None:
    assert set(gates.CHART_GATES) | set(gates.FEATURE_GATES) == set(GATES)
    assert not set(gates.CHART_GATES) & set(gates.FEATURE_GATES)


def test_failure_messages_name_each_check_value_threshold_and_the_next_step(tables: dict[str, pd.DataFrame]) -> None:
    chart = tables["chart_entries"]
    m = measured({**tables, "chart_entries": chart[chart["market"] != "KR"]})
    results = evaluate(m, TH, expected_markets=("GLOBAL", "BR", "KR"), expected_from="the run request", previous=None)
    step = "spotify-pipeline run --snapshot-date 2026-03-09 --markets GLOBAL,BR,KR --force-gates"
    report = gates.GateReport(DAY, tuple(r for r in results if r.gate in gates.CHART_GATES), next_step=step)
    text = GateFailed(report).args[0]
    assert text.startswith("data-quality gate markets_present failed for snapshot 2026-03-09; nothing was written")
    assert (
        "[markets_present] value: missing KR (present: BR, GLOBAL); "
        "threshold: every market of the run request: GLOBAL, BR, KR"
    ) in text
    assert text.endswith(step)
    assert isinstance(GateFailed(report), PermanentError)  # acknowledged, recorded as failed, not retried
    forced = replace(report, forced=True, forced_by="--force")
    assert forced.message().startswith("forced past failed gates (--force) for snapshot 2026-03-09: [markets_present]")
    assert forced.as_fields()["gates_failed"] == ["markets_present"]
    features = evaluate(
        measured(tables, tracks_without_features=100),
        TH,
        expected_markets=(),
        expected_from="-",
        previous=None,
    )
    step = "spotify-pipeline replay --from 2026-03-09 --to 2026-03-09 --stage recommend --force"
    skipped = gates.GateReport(DAY, tuple(r for r in features if r.gate in gates.FEATURE_GATES), next_step=step)
    assert skipped.message().startswith("model skipped for snapshot 2026-03-09 (chart data still loaded): gate ")
    assert "[feature_coverage] value: 100 of 143 tracks without features" in skipped.message()


# ------------------------------------------------------------------------ force: request field, run row


def test_force_gates_is_an_optional_run_request_field() -> None:
    s = Settings()
    plain = parse_run_request({}, s, default_run_id="r")
    assert plain.force_gates is False and "force_gates" not in plain.to_message()  # manifests unchanged
    forced = parse_run_request({"force_gates": True}, s, default_run_id="r")
    assert forced.to_message()["force_gates"] is True
    assert parse_run_request(forced.to_message(), s, default_run_id="x") == forced
    with pytest.raises(InvalidEvent, match="'force_gates' = 'yes'"):
        parse_run_request({"force_gates": "yes"}, s, default_run_id="r")


def test_a_forced_stage_records_its_note_as_error_of_a_succeeded_row() -> None:
    from datetime import UTC, datetime

    t0 = datetime(2026, 3, 9, tzinfo=UTC)
    run = StageRun("r", "recommend", t0, DAY)
    assert run.row("succeeded", t0, {"a": 1})["error"] is None
    run.note = "forced past failed gates (--force) for snapshot 2026-03-09: [x]"
    assert run.row("succeeded", t0, {"a": 1})["error"] == run.note
    assert run.row("failed", t0, error="boom")["error"] == "boom"


# ------------------------------------------------------------------------ check_snapshot on a bucket


class MemoryBucket:
    """The read side of BucketStore over a dict; manifests carry a generation."""

    bucket_name = "test-bucket"

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, int]] = {}
        self._gen = 100

    def put(self, name: str, data: bytes) -> int:
        self._gen += 1
        self.objects[name] = (data, self._gen)
        return self._gen

    def file(self, name: str, data: bytes, table_name: str, rows: int) -> FileEntry:
        self.put(name, data)
        return FileEntry(name, hashlib.sha256(data).hexdigest(), len(data), rows, table_name)

    def manifest(self, m: Manifest) -> UpstreamRef:
        name = layout.manifest_name(m.stage, m.snapshot_date)
        gen = self.put(name, m.to_bytes())
        return UpstreamRef(name, gen, hashlib.sha256(m.to_bytes()).hexdigest())

    def names(self, prefix: str) -> list[str]:
        return sorted(n for n in self.objects if n.startswith(prefix))

    def read_verified(self, entry: FileEntry) -> bytes:
        if entry.name not in self.objects:
            raise ObjectMismatch(entry.name)
        return self.objects[entry.name][0]

    def read_manifest(self, name: str, generation: int | None = None) -> tuple[Manifest, int, str]:
        if name not in self.objects:
            raise StaleObject(name)
        data, gen = self.objects[name]
        if generation is not None and generation != gen:
            raise StaleObject(f"{name}#{generation} superseded by {gen}")
        return Manifest.from_bytes(data, name), gen, hashlib.sha256(data).hexdigest()


def store_snapshot(
    bucket: MemoryBucket,
    frames: dict[str, pd.DataFrame],
    day: date,
    *,
    request: dict[str, Any] | None = None,
    loaded: bool = False,
) -> Manifest:
    """Extract and transform manifests for ``frames`` (and a recommend manifest and load receipt)."""
    wanted = request if request is not None else {"markets": ["GLOBAL", "BR", "KR"]}
    raw = Manifest("extract", day, "run", "t0", "t1", (), sources={"chart_source": "spotify-playlist"}, request=wanted)
    raw_ref = bucket.manifest(raw)
    files = tuple(
        bucket.file(
            f"transform/snapshot_date={day}/run=x/{name}.parquet",
            parquet_bytes(to_arrow(frames[name].assign(snapshot_date=day), table(name))),
            name,
            len(frames[name]),
        )
        for name in ("chart_entries", "tracks", "model_features")
    )
    clean = Manifest("transform", day, "run", "t0", "t1", files, raw_ref, {"chart_source": "spotify-playlist"})
    clean_ref = bucket.manifest(clean)
    if loaded:
        model = Manifest("recommend", day, "run", "t0", "t1", (), clean_ref, dict(clean.sources))
        counts = {name: len(frames[name]) for name in ("chart_entries", "tracks", "model_features")}
        per_market = {str(k): int(v) for k, v in frames["chart_entries"].groupby("market").size().items()}
        summary = {"row_counts": counts, "entries_per_market": per_market}
        receipt = Manifest("load", day, "run", "t0", "t1", (), bucket.manifest(model), dict(clean.sources), summary)
        bucket.manifest(receipt)
    return clean


def chart_check(bucket: MemoryBucket, frames: dict[str, pd.DataFrame], **kw: Any) -> gates.GateReport:
    chart = frames["chart_entries"]
    per_market = {str(k): int(v) for k, v in chart.groupby("market").size().items()}
    args: dict[str, Any] = {
        "snapshot": DAY,
        "chart_source": "spotify-playlist",
        "entries_per_market": per_market,
        "duplicate_ranks": (),
        "requested_markets": ("GLOBAL", "BR", "KR"),
        "force": False,
        "next_step": "spotify-pipeline run ... --force-gates",
    }
    return gates.check_chart(bucket, kw.pop("thresholds", TH), **{**args, **kw})  # type: ignore[arg-type]


def test_chart_gates_pass_and_fail_against_the_previous_loaded_week(tables: dict[str, pd.DataFrame]) -> None:
    bucket = MemoryBucket()
    store_snapshot(bucket, tables, DAY - timedelta(days=7), loaded=True)
    assert gates.stored_snapshots(bucket, "load") == [DAY - timedelta(days=7)]  # type: ignore[arg-type]
    report = chart_check(bucket, tables)
    assert report.passed and [r.gate for r in report.results] == list(gates.CHART_GATES)
    assert by_gate(report.results)["rows_vs_previous"].value.startswith(f"vs {DAY - timedelta(days=7)}")
    chart = tables["chart_entries"]
    few = chart[(chart["market"] != "BR") | (chart["rank"] <= 10)]
    with pytest.raises(GateFailed) as info:
        chart_check(bucket, {**tables, "chart_entries": few})
    assert [r.gate for r in info.value.report.failed] == ["rows_vs_previous"]
    assert "BR has 10 entries, 50 on 2026-03-02" in str(info.value)
    with pytest.raises(GateFailed, match="unique_ranks"):
        chart_check(bucket, tables, duplicate_ranks=(("BR", 3, 2),))


def test_chart_gates_forced_by_the_request(tables: dict[str, pd.DataFrame]) -> None:
    bucket = MemoryBucket()
    chart = tables["chart_entries"]
    no_kr = {**tables, "chart_entries": chart[chart["market"] != "KR"]}
    report = chart_check(bucket, no_kr, force=True)
    assert report.forced and report.forced_by == "run request force_gates"
    assert report.message().startswith("forced past failed gates (run request force_gates)")
    with pytest.raises(GateFailed, match="markets_present"):
        chart_check(bucket, no_kr)
    # A chart file without a market filter: the configured expectation applies.
    assert chart_check(bucket, no_kr, requested_markets=()).passed
    with pytest.raises(GateFailed, match="PIPELINE_GATE_EXPECTED_MARKETS: KR"):
        chart_check(bucket, no_kr, requested_markets=(), thresholds=GateThresholds(expected_markets=("KR",)))


def test_feature_gates_report_without_raising_and_can_be_forced(tables: dict[str, pd.DataFrame]) -> None:
    bucket = MemoryBucket()
    clean = store_snapshot(bucket, tables, DAY)
    report = gates.check_features(clean, bucket, TH)  # type: ignore[arg-type]
    assert report.passed and [r.gate for r in report.results] == list(gates.FEATURE_GATES)
    bare = tables["tracks"].assign(has_features=False)
    clean = store_snapshot(bucket, {**tables, "tracks": bare}, DAY, request={"force_gates": True})
    forced = gates.check_features(clean, bucket, TH)  # type: ignore[arg-type]
    assert forced.forced and forced.failed[0].gate == "feature_coverage"
    clean = store_snapshot(bucket, {**tables, "tracks": bare}, DAY)
    failed = gates.check_features(clean, bucket, TH)  # type: ignore[arg-type]
    assert not failed.passed and not failed.forced and "model skipped" in failed.message()
    assert gates.check_features(clean, bucket, TH, force=True).forced  # type: ignore[arg-type]


def test_previous_week_ignores_other_sources_and_old_weeks(tables: dict[str, pd.DataFrame]) -> None:
    bucket = MemoryBucket()
    store_snapshot(bucket, tables, DAY - timedelta(days=20), loaded=True)  # too old
    assert gates.previous_snapshot(bucket, DAY, "spotify-playlist", 14) is None  # type: ignore[arg-type]
    store_snapshot(bucket, tables, DAY - timedelta(days=7), loaded=True)
    assert gates.previous_snapshot(bucket, DAY, "charts-csv", 14) is None  # type: ignore[arg-type]
    prev = gates.previous_snapshot(bucket, DAY, "spotify-playlist", 14)  # type: ignore[arg-type]
    assert prev is not None and prev.entries_per_market == {"BR": 50, "GLOBAL": 50, "KR": 50}
    assert (prev.tracks, prev.model_features) == (143, 142)


def test_the_feature_gates_import_no_pandas(tables: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    """recommend runs them first on every event: measured with pyarrow, so they load no pandas
    (scikit-learn loads it later, when the model runs), checked in a fresh interpreter."""
    bucket = MemoryBucket()
    store_snapshot(bucket, tables, DAY)
    objects = tmp_path / "objects.json"
    objects.write_text(json.dumps({name: data.hex() for name, (data, _) in bucket.objects.items()}))
    name = layout.manifest_name("transform", DAY)
    code = f"""
import json, sys
from spotify_pipeline.gates import GateThresholds, check_features
from spotify_pipeline.manifest import Manifest
from spotify_pipeline.store import StaleObject
objects = {{n: bytes.fromhex(d) for n, d in json.loads(open({str(objects)!r}).read()).items()}}
class Store:
    def names(self, prefix): return sorted(n for n in objects if n.startswith(prefix))
    def read_verified(self, entry): return objects[entry.name]
    def read_manifest(self, name, generation=None):
        if name not in objects: raise StaleObject(name)
        return Manifest.from_bytes(objects[name], name), generation, ""
report = check_features(Manifest.from_bytes(objects[{name!r}], {name!r}), Store(), GateThresholds())
print(json.dumps([report.passed, [m for m in ("pandas", "sklearn", "scipy") if m in sys.modules]]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [True, []]  # passed, and none of them loaded
