"""transform.build_tables on real-shaped extract objects (tests/fixtures/golden/raw/).

The raw objects were generated once from the Spotify stand-in's demo catalogue by
tests/fixtures/golden/make_golden.py; the expected CSVs next to them were computed there by an
independent implementation. Facts below are derived from the raw objects themselves.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import re
from collections import defaultdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from spotify_pipeline.errors import DataError
from spotify_pipeline.features import MODEL_FEATURES
from spotify_pipeline.manifest import FileEntry, Manifest, UpstreamRef
from spotify_pipeline.schema import table
from spotify_pipeline.tabular import parquet_bytes, to_arrow
from spotify_pipeline.transform import TABLES, build_tables, run_transform

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
SNAPSHOT = date(2026, 11, 23)
PREFIX = f"extract/snapshot_date={SNAPSHOT.isoformat()}/"
MANIFEST_NAME = PREFIX + "_manifest.json"
RUN_ID = "golden-run-0001"
CHART_SOURCE, FEATURE_SOURCE = "spotify-playlist", "spotify"
SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")

Raw = list[tuple[str, Any]]
Tables = dict[str, pd.DataFrame]


def load_manifest() -> Manifest:
    return Manifest.from_bytes((GOLDEN / "raw" / MANIFEST_NAME).read_bytes(), MANIFEST_NAME)


def load_raw() -> Raw:
    """The raw objects in manifest order, parsed, after checking the fixture's checksums."""
    out: Raw = []
    for entry in load_manifest().files:
        data = (GOLDEN / "raw" / entry.name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry.sha256, f"fixture {entry.name} was edited"
        out.append((entry.name, json.loads(data)))
    return out


def build(raw: Raw) -> Tables:
    return build_tables(raw, SNAPSHOT, chart_source=CHART_SOURCE, feature_source=FEATURE_SOURCE)


def pages(raw: Raw) -> list[tuple[str, dict[str, Any]]]:
    return [(name, body) for name, body in raw if "/playlists/" in name]


def market_of(name: str) -> str:
    return name.split("/playlists/")[1].split("/")[0]


def chart_tracks(raw: Raw) -> dict[str, dict[str, Any]]:
    """track id -> track object, from the playlist rows (``item``, the 2026 field name)."""
    return {row["item"]["id"]: row["item"] for _, body in pages(raw) for row in body["items"]}


def raw_artists(raw: Raw) -> dict[str, dict[str, Any]]:
    return {a["id"]: a for name, body in raw if "/artists/" in name for a in body["artists"]}


def repage(page: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """Split one page of items into API pages of ``limit`` items with the matching offsets."""
    items = page["items"]
    return [{**page, "items": items[o : o + limit], "limit": limit, "offset": o} for o in range(0, len(items), limit)]


def read_csv(name: str) -> list[dict[str, str]]:
    with (GOLDEN / "expected" / name).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def raw() -> Raw:
    return load_raw()


@pytest.fixture(scope="module")
def tables(raw: Raw) -> Tables:
    return build(copy.deepcopy(raw))


def test_fixture_is_shaped_like_extract_output(raw: Raw) -> None:
    names = [name for name, _ in raw]
    assert all(
        re.fullmatch(
            re.escape(PREFIX) + r"(playlists/(GLOBAL|BR|KR)/[A-Za-z0-9]{22}/page-\d{3}|"
            r"artists/batch-\d{3}|audio_features/batch-\d{3})\.json",
            n,
        )
        for n in names
    ), names
    for name, body in pages(raw):
        assert body["limit"] == 50 and body["offset"] == 0 and body["total"] == 50 and body["next"] is None, name
    assert all(len(body["artists"]) <= 50 for n, body in raw if "/artists/" in n)
    assert all(len(body["audio_features"]) <= 100 for n, body in raw if "/audio_features/" in n)


# --- chart_entries ----------------------------------------------------------------------------


def test_chart_entries_has_fifty_ranks_per_market(tables: Tables) -> None:
    chart = tables["chart_entries"]
    assert len(chart) == 150
    for market in ("GLOBAL", "BR", "KR"):
        assert sorted(chart.loc[chart["market"] == market, "rank"]) == list(range(1, 51)), market
    assert not chart.duplicated(["market", "rank"]).any()
    assert set(chart["snapshot_date"]) == {SNAPSHOT}
    assert set(chart["chart_source"]) == {CHART_SOURCE}


def test_chart_entries_rank_is_playlist_position(raw: Raw, tables: Tables) -> None:
    chart = tables["chart_entries"].set_index(["market", "rank"])
    for name, body in pages(raw):
        market, playlist = market_of(name), name.split("/")[-2]
        for position, row in enumerate(body["items"], start=1):
            got = chart.loc[(market, position)]
            assert got["track_id"] == row["item"]["id"]
            assert got["playlist_id"] == playlist
            assert got["added_at"] == pd.Timestamp(row["added_at"])


def test_chart_entries_do_not_depend_on_page_size(raw: Raw, tables: Tables) -> None:
    """The same playlists fetched 20 rows a page (offsets 0, 20, 40) give the same chart."""
    small: Raw = []
    for name, body in raw:
        if "/playlists/" in name:
            base = name.rsplit("/", 1)[0]
            small += [(f"{base}/page-{i:03d}.json", p) for i, p in enumerate(repage(body, 20))]
        else:
            small.append((name, body))
    assert len(small) == len(raw) + 2 * 3
    pd.testing.assert_frame_equal(build(small)["chart_entries"], tables["chart_entries"])


def test_chart_entries_match_golden_csv(tables: Tables) -> None:
    expected = pd.DataFrame(read_csv("chart_entries.csv"))
    got = tables["chart_entries"].reset_index(drop=True)
    assert list(got.columns) == list(expected.columns) == table("chart_entries").column_names
    assert [d.isoformat() for d in got["snapshot_date"]] == expected["snapshot_date"].tolist()
    assert got["rank"].tolist() == [int(r) for r in expected["rank"]]
    for col in ("market", "track_id", "playlist_id", "chart_source"):
        assert got[col].tolist() == expected[col].tolist(), col
    assert got["added_at"].tolist() == [pd.Timestamp(t) for t in expected["added_at"]]


# --- tracks -----------------------------------------------------------------------------------


def test_tracks_one_row_per_distinct_track(raw: Raw, tables: Tables) -> None:
    tracks = tables["tracks"]
    assert len(tracks) == 143
    assert sorted(tracks["track_id"]) == sorted(chart_tracks(raw))
    assert tracks["track_id"].is_unique
    assert all(SNAKE.match(c) for c in tracks.columns)
    assert list(tracks.columns) == table("tracks").column_names


def test_tracks_markets_and_best_rank(raw: Raw, tables: Tables) -> None:
    charts: dict[str, dict[str, int]] = defaultdict(dict)  # track -> market -> rank
    for name, body in pages(raw):
        for position, row in enumerate(body["items"], start=1):
            charts[row["item"]["id"]][market_of(name)] = position
    tracks = tables["tracks"].set_index("track_id")
    multi = [t for t, ranks in charts.items() if len(ranks) > 1]
    assert len(multi) == 6  # the catalogue's cross-market hits: one in all three charts, five in two
    for tid, ranks in charts.items():
        assert list(tracks.loc[tid, "markets"]) == sorted(ranks), tid
        assert tracks.loc[tid, "best_rank"] == min(ranks.values()), tid
    assert sorted(len(tracks.loc[t, "markets"]) for t in multi) == [2, 2, 2, 2, 2, 3]


def test_tracks_carry_all_artists_in_credit_order(raw: Raw, tables: Tables) -> None:
    objs = chart_tracks(raw)
    tracks = tables["tracks"].set_index("track_id")
    for tid, obj in objs.items():
        assert list(tracks.loc[tid, "artist_ids"]) == [a["id"] for a in obj["artists"]]
        assert list(tracks.loc[tid, "artist_names"]) == [a["name"] for a in obj["artists"]]
        assert tracks.loc[tid, "primary_artist_id"] == obj["artists"][0]["id"]
        assert tracks.loc[tid, "track_name"] == obj["name"]
        assert tracks.loc[tid, "album_id"] == obj["album"]["id"]
        assert tracks.loc[tid, "isrc"] == obj["external_ids"]["isrc"]
        assert tracks.loc[tid, "duration_ms"] == obj["duration_ms"]


def test_featureless_track(raw: Raw, tables: Tables) -> None:
    with_features = {f["id"] for n, b in raw if "/audio_features/" in n for f in b["audio_features"] if f}
    featureless = set(chart_tracks(raw)) - with_features
    assert len(featureless) == 1
    (tid,) = featureless
    tracks = tables["tracks"].set_index("track_id")
    row = tracks.loc[tid]
    assert not row["has_features"]
    assert pd.isna(row["feature_source"])
    for col in (*MODEL_FEATURES, "acousticness", "tempo", "key", "mode", "time_signature"):
        assert pd.isna(row[col]), col
    assert tracks.drop(index=tid)["has_features"].all()
    assert tid not in set(tables["model_features"]["track_id"])
    assert len(tables["model_features"]) == 142
    # Missing features are nulls in the Parquet file, not NaN values.
    arrow = to_arrow(tables["tracks"], table("tracks"))
    assert all(arrow.column(c).null_count == 1 for c in (*MODEL_FEATURES, "key", "feature_source"))


def test_track_features_are_the_api_values(raw: Raw, tables: Tables) -> None:
    feats = {f["id"]: f for n, b in raw if "/audio_features/" in n for f in b["audio_features"] if f}
    tracks = tables["tracks"].set_index("track_id")
    for tid, f in feats.items():
        for col in (*MODEL_FEATURES, "tempo", "speechiness", "key", "mode", "time_signature"):
            assert tracks.loc[tid, col] == f[col], (tid, col)
        assert tracks.loc[tid, "feature_source"] == FEATURE_SOURCE


# --- artists, track_artists, artist_genres ---------------------------------------------------


def test_every_credited_artist_is_present(raw: Raw, tables: Tables) -> None:
    credits = {(tid, a["id"], pos) for tid, obj in chart_tracks(raw).items() for pos, a in enumerate(obj["artists"])}
    assert any(pos > 0 for _, _, pos in credits), "fixture must have featured artists"
    ta = tables["track_artists"]
    got = set(zip(ta["track_id"], ta["artist_id"], ta["artist_position"], strict=True))
    assert got == credits
    assert len(ta) == len(credits)
    assert set(tables["artists"]["artist_id"]) == {a for _, a, _ in credits}
    assert tables["artists"]["artist_id"].is_unique


def test_artist_position_zero_is_primary_artist(tables: Tables) -> None:
    primary = tables["track_artists"].query("artist_position == 0").set_index("track_id")["artist_id"]
    tracks = tables["tracks"].set_index("track_id")
    assert len(primary) == len(tracks)
    assert (primary.sort_index() == tracks["primary_artist_id"].sort_index()).all()


def test_artist_genres_and_main_genre(raw: Raw, tables: Tables) -> None:
    api = raw_artists(raw)
    artists = tables["artists"].set_index("artist_id")
    genres = tables["artist_genres"]
    no_genre = [a for a, obj in api.items() if not obj["genres"]]
    assert len(no_genre) == 4  # the catalogue strips the genres of four artists
    for aid in no_genre:
        assert pd.isna(artists.loc[aid, "main_genre"])
        assert list(artists.loc[aid, "genres"]) == []
        assert aid not in set(genres["artist_id"])
    for aid, obj in api.items():
        assert artists.loc[aid, "artist_name"] == obj["name"]
        assert artists.loc[aid, "followers"] == obj["followers"]["total"]
        if obj["genres"]:
            assert artists.loc[aid, "main_genre"] == obj["genres"][0]
            assert list(artists.loc[aid, "genres"]) == obj["genres"]
            mine = genres[genres["artist_id"] == aid].sort_values("genre_position")
            assert mine["genre"].tolist() == obj["genres"]
            assert mine["genre_position"].tolist() == list(range(len(obj["genres"])))
            assert mine["is_main"].tolist() == [True] + [False] * (len(obj["genres"]) - 1)
    assert len(genres) == sum(len(o["genres"]) for o in api.values())


def test_bidi_controls_are_removed_from_every_display_name_and_kept_in_the_raw_objects(raw: Raw) -> None:
    """A right-to-left override (U+202E) and an isolate in names reach no table; ids stay as they are."""
    rlo, isolate, pop = "\u202e", "\u2067", "\u2069"
    spoofed = copy.deepcopy(raw)
    tid, obj = next(iter(chart_tracks(spoofed).items()))
    for _, body in pages(spoofed):  # the same track object in every market's page
        for row in body["items"]:
            if row["item"]["id"] == tid:
                row["item"]["name"] = f"{rlo}Track fdp.exe"
                row["item"]["album"]["name"] = f"Album {isolate}X{pop}"
                row["item"]["artists"][0]["name"] = f"{rlo}Artist"
    aid = obj["artists"][0]["id"]
    artist = raw_artists(spoofed)[aid]
    artist["name"], artist["genres"] = f"{rlo}Artist", [f"{rlo}pop", f"{isolate}{pop}"]  # a genre of controls only
    before = json.dumps(spoofed)
    out = build(spoofed)
    assert json.dumps(spoofed) == before  # the raw objects are not changed
    track = out["tracks"].set_index("track_id").loc[tid]
    assert (track["track_name"], track["album_name"]) == ("Track fdp.exe", "Album X")
    assert track["artist_names"][0] == "Artist"
    row = out["artists"].set_index("artist_id").loc[aid]
    assert (row["artist_name"], list(row["genres"]), row["main_genre"]) == ("Artist", ["pop"], "pop")
    assert out["artist_genres"].query("artist_id == @aid")["genre"].tolist() == ["pop"]
    text = pd.concat([out[t].astype(str) for t in TABLES], axis=1).to_string()
    assert not re.search("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]", text)


# --- model_features ---------------------------------------------------------------------------


def test_model_features_z_scores_are_standardised(tables: Tables) -> None:
    mf = tables["model_features"]
    assert mf["track_id"].is_unique
    for col in MODEL_FEATURES:
        z = mf[f"{col}_z"].to_numpy()
        assert abs(z.mean()) < 1e-12, col
        assert z.std(ddof=0) == pytest.approx(1.0, abs=1e-12), col
        assert z.std(ddof=1) != pytest.approx(1.0, abs=1e-6), col  # population, not sample, std


def test_model_features_match_golden_csv(tables: Tables) -> None:
    expected = read_csv("model_features.csv")
    got = tables["model_features"]
    assert list(got.columns) == list(expected[0]) == table("model_features").column_names
    assert got["track_id"].tolist() == [r["track_id"] for r in expected]
    for col in (*MODEL_FEATURES, *(f"{c}_z" for c in MODEL_FEATURES)):
        want = np.array([float(r[col]) for r in expected])
        np.testing.assert_allclose(got[col].to_numpy(dtype=float), want, rtol=1e-12, atol=1e-12, err_msg=col)
    assert set(got["feature_source"]) == {FEATURE_SOURCE}
    assert [d.isoformat() for d in got["snapshot_date"]] == [r["snapshot_date"] for r in expected]


def test_constant_feature_has_zero_z_score(raw: Raw) -> None:
    flat = copy.deepcopy(raw)
    for name, body in flat:
        if "/audio_features/" in name:
            for f in body["audio_features"]:
                if f:
                    f["valence"] = 0.5
    mf = build(flat)["model_features"]
    assert (mf["valence_z"] == 0.0).all()
    assert np.isfinite(mf[[f"{c}_z" for c in MODEL_FEATURES]].to_numpy()).all()


# --- bad input --------------------------------------------------------------------------------


def test_two_pages_with_the_same_offset_is_a_data_error(raw: Raw) -> None:
    bad = copy.deepcopy(raw)
    name, body = pages(bad)[0]
    bad.insert(1, (name.replace("page-000", "page-001"), copy.deepcopy(body)))  # offset 0 again
    with pytest.raises(DataError) as info:
        build(bad)
    message = str(info.value)
    assert market_of(name) in message and "rank 1" in message


def test_unexpected_object_is_a_data_error(raw: Raw) -> None:
    stray = PREFIX + "notes/readme.json"
    with pytest.raises(DataError, match=re.escape(stray)):
        build([*raw, (stray, {})])


def test_only_empty_playlists_is_a_data_error(raw: Raw) -> None:
    empty = [(n, {**b, "items": []}) if "/playlists/" in n else (n, b) for n, b in raw]
    with pytest.raises(DataError, match="no chart entries"):
        build(empty)


# --- serialisation ----------------------------------------------------------------------------


def test_every_table_converts_to_its_schema(tables: Tables) -> None:
    assert set(tables) == set(TABLES)
    for name, df in tables.items():
        arrow = to_arrow(df, table(name))
        assert arrow.schema.equals(table(name).arrow_schema()), name
        assert arrow.num_rows == len(df)


def test_parquet_bytes_are_reproducible(raw: Raw) -> None:
    first, second = build(copy.deepcopy(raw)), build(copy.deepcopy(raw))
    for name in TABLES:
        a = parquet_bytes(to_arrow(first[name], table(name)))
        b = parquet_bytes(to_arrow(second[name], table(name)))
        assert a == b, name


class MemoryStore:
    """The BucketStore surface run_transform uses, in memory."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = dict(objects)
        self.manifests: dict[str, Manifest] = {}

    def read_verified(self, entry: FileEntry) -> bytes:
        data = self.objects[entry.name]
        assert hashlib.sha256(data).hexdigest() == entry.sha256
        return data

    def write(
        self, name: str, data: bytes, content_type: str, *, rows: int | None = None, table: str | None = None
    ) -> FileEntry:
        self.objects[name] = data
        return FileEntry(name, hashlib.sha256(data).hexdigest(), len(data), rows, table)

    def write_manifest(self, manifest: Manifest, name: str) -> int:
        self.objects[name] = manifest.to_bytes()
        self.manifests[name] = manifest
        return 1

    def delete_stale(self, prefix: str, keep: set[str]) -> list[str]:
        stale = [n for n in self.objects if n.startswith(prefix) and n not in keep]
        for n in stale:
            del self.objects[n]
        return stale


def test_run_transform_writes_six_tables_and_a_manifest() -> None:
    manifest = load_manifest()
    objects = {f.name: (GOLDEN / "raw" / f.name).read_bytes() for f in manifest.files}
    objects["transform/snapshot_date=2026-11-23/old.parquet"] = b"left over by an earlier run"
    store = MemoryStore(objects)
    upstream = UpstreamRef(MANIFEST_NAME, 7, "0" * 64)
    out, _ = run_transform(manifest, upstream, store, lambda: datetime(2026, 11, 23, 7, tzinfo=UTC))  # type: ignore[arg-type]
    assert out.stage == "transform" and out.snapshot_date == SNAPSHOT and out.run_id == RUN_ID
    assert out.upstream == upstream
    raw = load_raw()
    credits = sum(len(t["artists"]) for t in chart_tracks(raw).values())
    genres = sum(len(a["genres"]) for a in raw_artists(raw).values())
    assert out.row_counts == {
        "chart_entries": 150,
        "tracks": 143,
        "artists": len(raw_artists(raw)),
        "track_artists": credits,
        "artist_genres": genres,
        "model_features": 142,
    }
    assert out.summary["tracks_without_features"] == 1
    assert out.summary["markets"] == ["BR", "GLOBAL", "KR"]
    for entry in out.files:
        assert hashlib.sha256(store.objects[entry.name]).hexdigest() == entry.sha256
    assert "transform/snapshot_date=2026-11-23/old.parquet" not in store.objects
    assert "transform/snapshot_date=2026-11-23/_manifest.json" in store.manifests
