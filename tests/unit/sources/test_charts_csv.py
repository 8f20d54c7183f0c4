"""Chart files: both formats, detected by header; golden parses of the committed fixtures
(tests/fixtures/charts/, made by make_charts.py; expected/*.json reviewed by hand once), then
every quirk and every error message on small inline files."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

import pytest
from unit.sources.harness import CHARTS

from spotify_pipeline.errors import DataError
from spotify_pipeline.sources.charts_csv import parse_chart_csv

FIXTURES = sorted(p.name for p in CHARTS.glob("*.csv"))
KAGGLE_HEADER = (
    "spotify_id,name,artists,daily_rank,daily_movement,weekly_movement,country,snapshot_date,popularity,"
    "is_explicit,duration_ms,album_name,album_release_date,danceability,energy,key,loudness,mode,speechiness,"
    "acousticness,instrumentalness,liveness,valence,tempo,time_signature"
)
CHARTS_HEADER = "rank,uri,artist_names,track_name,source,peak_rank,previous_rank,weeks_on_chart,streams"
TID = "3n3Ppam7vgaVa1iaRUc9Lp"
TID2 = "0VjIjW4GlUZAMYd2vXMi3b"


def kaggle(*rows: str) -> bytes:
    return ("\n".join([KAGGLE_HEADER, *rows]) + "\n").encode()


def kaggle_row(tid: str = TID, rank: int = 1, country: str = "", day: str = "2026-11-19", feats: str = "") -> str:
    features = feats or "0.5,0.6,5,-6.1,1,0.05,0.1,0.0,0.1,0.7,120.0,4"
    return f'{tid},"Song","Artist A, Artist B",{rank},0,0,{country},{day},80,True,200000,Album,2025-01-01,{features}'


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_matches_golden_parse(name: str) -> None:
    chart = parse_chart_csv((CHARTS / name).read_bytes(), name)
    expected = json.loads((CHARTS / "expected" / (Path(name).stem + ".json")).read_text())
    assert chart.format == expected["format"]
    assert [d.isoformat() for d in chart.dates] == expected["dates"]
    assert chart.markets == expected["markets"]
    assert [e.to_json() for e in chart.entries] == expected["entries"]


def test_spotify_charts_file_facts() -> None:
    name = "regional-global-weekly-2026-11-19.csv"
    raw = (CHARTS / name).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw  # BOM and CRLF, as downloaded
    chart = parse_chart_csv(raw, "inbox/2026/" + name)
    assert chart.format == "spotify-charts" and chart.dates == [date(2026, 11, 19)] and chart.markets == ["GLOBAL"]
    assert [e.rank for e in chart.entries] == list(range(1, 51))
    multi = [e for e in chart.entries if len(e.artist_names) > 1]
    assert multi, "the fixture has quoted comma-joined artist lists"
    row = next(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert chart.entries[0].track_id == row["uri"].removeprefix("spotify:track:")
    assert chart.entries[0].extra["streams"] == int(row["streams"])
    assert all(e.features is None for e in chart.entries)  # charts.spotify.com carries no features


def test_kaggle_files_iso_and_us_dates_agree_on_shape() -> None:
    iso = parse_chart_csv((CHARTS / "kaggle-top-songs-iso.csv").read_bytes(), "iso.csv")
    mdy = parse_chart_csv((CHARTS / "kaggle-top-songs-mdy.csv").read_bytes(), "mdy.csv")
    assert iso.dates == [date(2026, 11, 12), date(2026, 11, 19)]
    assert mdy.dates == [date(2026, 11, 5), date(2026, 11, 12)]  # 11/5/2026: one-digit day
    assert "GLOBAL" in iso.markets and "" not in iso.markets  # empty country = GLOBAL
    assert iso.has_features and mdy.has_features
    assert sum(e.features is None for e in mdy.entries) == 2  # the featureless track, on both dates
    duo = [e for e in mdy.entries if e.rank == 2]
    assert all(e.artist_names == ("Synthetic Duo", "Synthetic Featured Guest") for e in duo)
    assert iso.select(["KR"], date(2026, 11, 19)) == [
        e for e in iso.entries if e.market == "KR" and e.snapshot_date == date(2026, 11, 19)
    ]


def test_kaggle_values_are_typed() -> None:
    (entry,) = parse_chart_csv(kaggle(kaggle_row(country="mx")), "k.csv").entries
    assert entry.market == "MX"
    assert entry.features == {
        "danceability": 0.5,
        "energy": 0.6,
        "key": 5,
        "loudness": -6.1,
        "mode": 1,
        "speechiness": 0.05,
        "acousticness": 0.1,
        "instrumentalness": 0.0,
        "liveness": 0.1,
        "valence": 0.7,
        "tempo": 120.0,
        "time_signature": 4,
    }
    assert entry.extra["explicit"] is True and entry.extra["popularity"] == 80
    assert entry.artist_names == ("Artist A", "Artist B")


def test_renamed_spotify_charts_file_needs_market_and_date() -> None:
    body = f'\ufeff{CHARTS_HEADER}\n1,spotify:track:{TID},"A, B",Song,Label,1,2,3,1000\n'.encode()
    with pytest.raises(DataError, match=r"chart\.csv: .*only in its file name.*--markets XX --snapshot-date D"):
        parse_chart_csv(body, "inbox/chart.csv")
    chart = parse_chart_csv(body, "inbox/chart.csv", snapshot_date=date(2026, 1, 8), market="KR")
    assert (chart.entries[0].market, chart.entries[0].snapshot_date) == ("KR", date(2026, 1, 8))
    daily = parse_chart_csv(body, "regional-br-daily-2026-01-08.csv")
    assert daily.markets == ["BR"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"a,b,c\n1,2,3\n", r"x\.csv: header \['a', 'b', 'c'\] is neither a charts\.spotify\.com"),
        (
            kaggle(kaggle_row(day="2026-13-40")),
            r"x\.csv: line 2: column 'snapshot_date' = '2026-13-40': expected a date",
        ),
        (kaggle(kaggle_row(day="19.11.2026")), r"line 2: column 'snapshot_date' = '19\.11\.2026'"),
        (kaggle(kaggle_row(tid="not-an-id")), r"line 2: column 'spotify_id' = 'not-an-id': expected a 22-character"),
        (kaggle(kaggle_row(country="Brazil")), r"line 2: column 'country' = 'Brazil': expected empty \(= GLOBAL\)"),
        (kaggle(kaggle_row(rank=0)), r"line 2: column 'daily_rank' = '0': expected an integer >= 1"),
        (kaggle(kaggle_row(feats="x,0.6,5,-6.1,1,0.05,0.1,0.0,0.1,0.7,120.0,4")), r"column 'danceability' = 'x'"),
        (
            kaggle(kaggle_row(), kaggle_row(tid=TID2)),
            r"line 3: market GLOBAL on 2026-11-19 has rank 1 twice \(also line 2\)",
        ),
        (kaggle(), r"x\.csv: the chart file holds no rows"),
        (b"\xff\xfe" + kaggle(kaggle_row()), r"x\.csv: byte 0 is not UTF-8"),
    ],
)
def test_errors_name_file_line_column_and_value(body: bytes, message: str) -> None:
    with pytest.raises(DataError, match=message):
        parse_chart_csv(body, "x.csv")


def test_bad_uri_in_spotify_charts_file() -> None:
    body = f"{CHARTS_HEADER}\n1,spotify:album:{TID},A,Song,L,1,1,1,5\n".encode()
    with pytest.raises(DataError, match=r"line 2: column 'uri' = 'spotify:album:"):
        parse_chart_csv(body, "regional-global-weekly-2026-01-01.csv")


def test_blank_lines_are_skipped_and_quoted_newlines_kept() -> None:
    body = kaggle(kaggle_row(), "", kaggle_row(tid=TID2, rank=2).replace('"Song"', '"Two\nlines"'))
    entries = parse_chart_csv(body, "k.csv").entries
    assert [e.rank for e in entries] == [1, 2] and entries[1].track_name == "Two\nlines"
