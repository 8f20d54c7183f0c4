"""week.merge_week: how one run's markets enter a stored week (pure, no bucket)."""

from __future__ import annotations

from datetime import date

from spotify_pipeline.manifest import FileEntry, Manifest, Part
from spotify_pipeline.week import merge_week

DAY = date(2026, 11, 23)
ROOT = "extract/snapshot_date=2026-11-23/"


def entry(name: str) -> FileEntry:
    return FileEntry(ROOT + name, "0" * 64, 1, 1)


def run_files(run: str, markets: tuple[str, ...], chart_file: bool = False) -> list[FileEntry]:
    charts = (
        [f"run={run}.0.00000000/charts/{m}.json" for m in markets]
        if chart_file
        else [f"run={run}.0.00000000/playlists/{m}/p{m}/page-000.json" for m in markets]
    )
    shared = [f"run={run}.0.00000000/artists/batch-000.json", f"run={run}.0.00000000/cached/tracks.json"]
    return [entry(n) for n in charts + shared]


def week(*runs: tuple[str, tuple[str, ...], list[FileEntry]]) -> Manifest:
    files: list[FileEntry] = []
    parts: list[Part] = []
    for run_id, markets, entries in runs:
        files += entries
        parts.append(Part(run_id, markets, tuple(e.name for e in entries)))
    return Manifest("extract", DAY, runs[-1][0], "t0", "t1", tuple(files), parts=tuple(parts))


def test_a_first_run_is_the_whole_week() -> None:
    files = run_files("a", ("BR", "GLOBAL", "KR"))
    part = Part("a", ("BR", "GLOBAL", "KR"), tuple(f.name for f in files))
    merged, parts = merge_week(None, files, part, ())
    assert merged == tuple(files) and parts == (part,)


def test_a_run_replaces_its_markets_and_keeps_the_others_with_their_shared_objects() -> None:
    a = run_files("a", ("BR", "GLOBAL", "KR"))
    previous = week(("a", ("BR", "GLOBAL", "KR"), a))
    b = run_files("b", ("BR",))
    merged, parts = merge_week(previous, b, Part("b", ("BR",), tuple(f.name for f in b)), ())
    assert [(p.run_id, p.markets) for p in parts] == [("a", ("GLOBAL", "KR")), ("b", ("BR",))]
    names = {f.name for f in merged}
    assert not any("run=a" in n and "/playlists/BR/" in n for n in names)  # a's BR pages left the week
    assert {n for n in names if "run=a" in n} == {f.name for f in a if "/playlists/BR/" not in f.name}
    assert set(parts[0].files) <= names and set(parts[1].files) <= names


def test_a_chart_file_of_several_markets_replaces_exactly_those() -> None:
    a = run_files("a", ("BR", "GLOBAL", "KR"))
    previous = week(("a", ("BR", "GLOBAL", "KR"), a))
    f = run_files("f", ("BR", "KR"), chart_file=True)
    merged, parts = merge_week(previous, f, Part("f", ("BR", "KR"), tuple(e.name for e in f)), ())
    assert [(p.run_id, p.markets) for p in parts] == [("a", ("GLOBAL",)), ("f", ("BR", "KR"))]
    assert sum("/charts/" in n.name for n in merged) == 2


def test_removing_is_explicit_and_a_part_left_without_markets_is_dropped() -> None:
    a = run_files("a", ("GLOBAL", "KR"))
    b = run_files("b", ("BR",))
    previous = week(("a", ("GLOBAL", "KR"), a), ("b", ("BR",), b))
    merged, parts = merge_week(previous, [], None, ("BR",))
    assert [(p.run_id, p.markets) for p in parts] == [("a", ("GLOBAL", "KR"))]
    assert not any("run=b" in f.name for f in merged)
    _, parts = merge_week(previous, [], None, ("KR",))
    assert [(p.run_id, p.markets) for p in parts] == [("a", ("GLOBAL",)), ("b", ("BR",))]


def test_a_week_written_before_parts_is_one_part() -> None:
    a = run_files("a", ("BR", "GLOBAL"))
    legacy = Manifest(
        "extract", DAY, "a", "t0", "t1", tuple(a), summary={"entries_per_market": {"BR": 50, "GLOBAL": 50}}
    )
    assert [(p.run_id, p.markets) for p in legacy.week_parts()] == [("a", ("BR", "GLOBAL"))]
    b = run_files("b", ("GLOBAL",))
    _, parts = merge_week(legacy, b, Part("b", ("GLOBAL",), tuple(f.name for f in b)), ())
    assert [(p.run_id, p.markets) for p in parts] == [("a", ("BR",)), ("b", ("GLOBAL",))]


def test_parts_survive_the_manifest_round_trip() -> None:
    a = run_files("a", ("GLOBAL",))
    m = week(("a", ("GLOBAL",), a))
    assert Manifest.from_bytes(m.to_bytes(), "m") == m


def test_a_part_naming_an_unlisted_file_is_refused() -> None:
    import json

    import pytest

    from spotify_pipeline.manifest import ManifestError

    a = run_files("a", ("GLOBAL",))
    body = json.loads(week(("a", ("GLOBAL",), a)).to_bytes())
    body["parts"][0]["files"].append("extract/elsewhere.json")
    with pytest.raises(ManifestError, match=r"parts\[0\]\.files.*not listed"):
        Manifest.from_bytes(json.dumps(body).encode(), "gs://b/m")
