"""``spotify-pipeline recommend``: the recommend stage alone, on a features file.

The same code as the ``recommend`` function (:func:`spotify_pipeline.recommend.catalogue` and
:func:`~spotify_pipeline.recommend.run_model`): clusters, then exact ranked neighbours streamed
to OUT in chunks. Heavy imports happen when the command runs, not when the parser is built.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from spotify_pipeline.errors import DataError
from spotify_pipeline_tools.cli.app import Command
from spotify_pipeline_tools.cli.errors import BAD_INPUT, CliError

if TYPE_CHECKING:
    import pyarrow as pa

ID_COLUMNS = ("track_id", "spotify_id", "id")  # the first present names the track
FEATURES = ("danceability", "energy", "loudness", "valence")
Z_FEATURES = tuple(f"{c}_z" for c in FEATURES)
MARKET_LIST_COLUMNS = ("markets",)  # list<string>, or a string of codes separated by ; , | or spaces
MARKET_ROW_COLUMNS = ("market", "country")  # one market per row; an empty country is GLOBAL (Kaggle)
_SPLIT = r"[;,|\s]+"
TABLE_FILES = (".parquet", ".pq", ".csv", ".csv.gz")  # what recommend_export.TableWriter / write_table write


@dataclass(frozen=True)
class RecommendOptions:
    """The options of ``spotify-pipeline recommend``, as given."""

    features: str
    out: str
    top_k: int
    clusters: int
    all_pairs_max: int
    random_state: int
    snapshot_date: str | None
    csv_export: bool
    track_clusters_out: str | None
    clusters_out: str | None
    stats: str | None
    quiet: bool


@click.command(
    "recommend",
    cls=Command,
    short_help="the recommend stage alone: features file in, ranked neighbours (and clusters) out",
    help=(
        "Exact ranked neighbours and KMeans clusters for the tracks of a features file, with the "
        "recommend function's code. IN: Parquet or CSV with track_id (or spotify_id) and "
        "danceability, energy, loudness, valence; markets optional (a list, or codes joined by ';'). "
        "One row per track is modelled: repeated rows of a track are merged, rows missing a "
        "feature are skipped. OUT: the recommendations table, Parquet or CSV by extension "
        "(.parquet, .csv, .csv.gz)."
    ),
)
@click.option("--features", required=True, metavar="IN", help="input features, .parquet or .csv")
@click.option("--out", required=True, metavar="OUT", help="recommendations, .parquet / .csv / .csv.gz")
@click.option(
    "--top-k", type=click.IntRange(min=1), default=100, metavar="K", help="neighbours per track (default 100)"
)
@click.option("--clusters", type=click.IntRange(min=1), default=5, metavar="C", help="KMeans clusters (default 5)")
@click.option(
    "--all-pairs-max",
    type=int,
    default=2000,
    metavar="N",
    help="up to N tracks, write every pair instead of the top K (default 2000; 0 = never)",
)
@click.option("--random-state", type=int, default=42, metavar="S", help="KMeans seed (default 42)")
@click.option(
    "--snapshot-date",
    metavar="YYYY-MM-DD",
    help="date written in snapshot_date; with a snapshot_date column in IN, only that date's rows are "
    "modelled (default: IN's latest snapshot_date, else today UTC)",
)
@click.option("--csv-export", is_flag=True, help="also write the recommendations as CSV beside OUT")
@click.option("--track-clusters-out", metavar="PATH", help="also write track_clusters (.parquet or .csv)")
@click.option("--clusters-out", metavar="PATH", help="also write clusters (.parquet or .csv)")
@click.option("--stats", metavar="PATH", help="write timings, counts and peak RSS as JSON")
@click.option("--quiet", is_flag=True, help="print nothing but errors")
def recommend_command(**options: Any) -> int:
    return cmd_recommend(RecommendOptions(**options))


class InputError(DataError):
    """The features file cannot be used as model input."""


def check_output(path: str, flag: str, features: Path, *, table: bool = True) -> None:
    """Refuse, before any work, an output the command cannot write: a folder, no such folder, the
    features file itself, or (``table``) an extension the writers cannot produce."""
    folder = Path(path).parent
    if Path(path).is_dir():
        example = Path(path) / ("recommendations.parquet" if table else "stats.json")
        raise CliError(f"{flag} {path} is a folder", f"name a file, e.g. {example}", BAD_INPUT)
    if folder.exists() and not folder.is_dir():
        raise CliError(f"{flag} {path}: {folder} is a file, not a folder", "name a file in a folder", BAD_INPUT)
    if not folder.is_dir():
        raise CliError(f"{flag} {path}: no folder {folder}", f"create it first (mkdir -p {folder})", BAD_INPUT)
    if table and not path.lower().endswith(TABLE_FILES):
        ext = Path(path).suffix or "a name without extension"
        raise CliError(
            f"{flag} {path}: recommend writes {', '.join(TABLE_FILES)} files, not {ext}",
            f"name the file with one of those extensions, e.g. {Path(path).with_suffix('.parquet').name}",
            BAD_INPUT,
        )
    if Path(path).resolve() == features.resolve():
        raise CliError(f"{flag} {path} is the features file itself", "write the output elsewhere", BAD_INPUT)


# --- reading -----------------------------------------------------------------------------------


def _csv_header(path: Path) -> list[str]:
    import csv
    import gzip

    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
        return next(csv.reader(fh), [])


def read_features(path: Path, snapshot: date | None) -> tuple[pa.Table, date, list[str]]:
    """IN as one row per distinct track: track_id, the four features (or their ``_z`` columns),
    markets (list<string>). Returns the table, the snapshot date and notes for the user."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty; expected a Parquet or CSV features file")
    is_csv = path.name.endswith((".csv", ".csv.gz"))
    names = _csv_header(path) if is_csv else pq.read_schema(path).names
    id_col = next((c for c in ID_COLUMNS if c in names), None)
    if id_col is None:
        raise InputError(f"{path}: no track id column (one of {', '.join(ID_COLUMNS)}); columns: {', '.join(names)}")
    value_cols: tuple[str, ...]
    if all(c in names for c in FEATURES):
        value_cols = FEATURES
    elif all(c in names for c in Z_FEATURES):
        value_cols = Z_FEATURES
    else:
        missing = [c for c in FEATURES if c not in names]
        raise InputError(f"{path}: missing feature columns {', '.join(missing)}")
    list_col = next((c for c in MARKET_LIST_COLUMNS if c in names), None)
    row_col = None if list_col else next((c for c in MARKET_ROW_COLUMNS if c in names), None)
    wanted = [id_col, *value_cols, *([list_col] if list_col else []), *([row_col] if row_col else [])]
    if "snapshot_date" in names:
        wanted.append("snapshot_date")

    if is_csv:
        types: dict[str, pa.DataType] = {id_col: pa.string(), **{c: pa.float64() for c in value_cols}}
        for c in (list_col, row_col, "snapshot_date"):
            if c:
                types[c] = pa.string()
        tbl = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=True),
            convert_options=pacsv.ConvertOptions(column_types=types, include_columns=wanted, strings_can_be_null=True),
        )
    else:
        tbl = pq.read_table(path, columns=wanted)
    notes: list[str] = []

    # Snapshot: filter to the requested date, or take the latest present.
    if "snapshot_date" in tbl.column_names:
        days = _as_dates(tbl["snapshot_date"])
        distinct = pc.unique(days.drop_null())
        if snapshot is not None:
            tbl = tbl.filter(pc.equal(days, pa.scalar(snapshot, pa.date32())).fill_null(False))
            if tbl.num_rows == 0:
                raise InputError(f"{path}: no rows of snapshot_date {snapshot}")
            if len(distinct) > 1:
                notes.append(f"kept the {tbl.num_rows} rows of {snapshot} ({len(distinct)} snapshot dates in IN)")
        elif len(distinct):
            snapshot = pc.max(distinct).as_py()
            if len(distinct) > 1:
                notes.append(f"{len(distinct)} snapshot dates in IN: modelling every distinct track, dated {snapshot}")
        tbl = tbl.drop_columns(["snapshot_date"])
    snapshot = snapshot or datetime.now(UTC).date()

    n_in = tbl.num_rows

    # Columns as the model wants them.
    tbl = tbl.rename_columns(["track_id" if c == id_col else c for c in tbl.column_names])
    tbl = tbl.set_column(tbl.column_names.index("track_id"), "track_id", tbl["track_id"].cast(pa.string()))
    markets = None
    if list_col:
        col = tbl[list_col]
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = pc.split_pattern_regex(pc.utf8_trim_whitespace(col.cast(pa.string())), _SPLIT)
        markets = col
        tbl = tbl.drop_columns([list_col])
    elif row_col:
        col = tbl[row_col].cast(pa.string())
        if row_col == "country":
            col = pc.if_else(pc.equal(pc.utf8_length(col.fill_null("")), 0), "GLOBAL", col)
        markets = pc.split_pattern_regex(col.fill_null(""), _SPLIT)
        tbl = tbl.drop_columns([row_col])
    if markets is not None:
        tbl = tbl.append_column("markets", markets)

    # Rows with every feature, one per track.
    complete = pc.is_valid(tbl["track_id"])
    for c in value_cols:
        complete = pc.and_(complete, pc.and_(pc.is_valid(tbl[c]), pc.invert(pc.is_nan(tbl[c].cast(pa.float64())))))
    complete = complete.fill_null(False)
    if not pc.all(complete).as_py():
        tbl = tbl.filter(complete)
        notes.append(f"skipped {n_in - tbl.num_rows} rows without a track id or all four features")
    if tbl.num_rows == 0:
        raise InputError(f"{path}: no row with a track id and all four features")
    return tbl, snapshot, notes


def _as_dates(col: pa.ChunkedArray) -> pa.ChunkedArray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_date(col.type):
        return col.cast(pa.date32())
    if pa.types.is_timestamp(col.type):
        return col.cast(pa.date32())
    text = col.cast(pa.string())
    iso = pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=True)
    us = pc.strptime(text, format="%m/%d/%Y", unit="s", error_is_null=True)  # some Kaggle exports
    return pc.coalesce(iso, us).cast(pa.date32())


# --- the command -------------------------------------------------------------------------------


def csv_sibling(out: Path) -> Path:
    name = out.name
    for ext in (".parquet", ".pq", ".csv.gz", ".csv"):
        if name.endswith(ext):
            return out.with_name(name[: -len(ext)] + ".csv")
    return out.with_name(name + ".csv")


def cmd_recommend(options: RecommendOptions) -> int:
    began = time.perf_counter()
    import pyarrow as pa

    from spotify_pipeline.recommend import ModelParams, catalogue, preload, run_model, wire_schema
    from spotify_pipeline_tools.cli.recommend_export import TableWriter, write_table

    preload()
    imported = time.perf_counter()

    def say(msg: str) -> None:
        if not options.quiet:
            print(msg, file=sys.stderr, flush=True)

    try:
        snapshot = date.fromisoformat(options.snapshot_date) if options.snapshot_date else None
    except ValueError:
        raise CliError(f"--snapshot-date {options.snapshot_date!r} is not YYYY-MM-DD", code=BAD_INPUT) from None
    for path, flag in (
        (options.out, "--out"),
        (options.track_clusters_out, "--track-clusters-out"),
        (options.clusters_out, "--clusters-out"),
        (options.stats, "--stats"),
    ):
        if path:
            check_output(path, flag, Path(options.features), table=flag != "--stats")
    out = Path(options.out)
    params = ModelParams(
        n_clusters=options.clusters,
        random_state=options.random_state,
        top_k=options.top_k,
        all_pairs_max_tracks=options.all_pairs_max,
    )
    try:
        tbl, snapshot, notes = read_features(Path(options.features), snapshot)
        cat = catalogue(tbl, merge_duplicates=True)
        del tbl
    except pa.ArrowInvalid as exc:  # Arrow's message does not name the file
        raise CliError(
            f"{options.features}: {exc}", "check that it is a Parquet or CSV features file", BAD_INPUT
        ) from exc
    read = time.perf_counter()

    if cat.merged_rows:
        notes.append(f"merged {cat.merged_rows} repeated rows into their track's first row (markets united)")
    if cat.conflicting_tracks:
        notes.append(f"{cat.conflicting_tracks} tracks had rows with different features: kept each one's first row")
    for note in notes:
        say(f"note: {note}")
    schema = wire_schema(cat.markets)
    timings: dict[str, float] = {}
    writers = [TableWriter(out, schema)]
    csv_export = options.csv_export and not out.name.endswith((".csv", ".csv.gz"))  # OUT CSV already: no copy
    if csv_export:
        writers.append(TableWriter(csv_sibling(out), schema))
    try:

        def sink(batch: pa.RecordBatch) -> None:
            for w in writers:
                w.write(batch)

        result = run_model(cat, snapshot, params, sink, timings)
    finally:
        for w in writers:
            w.close()
    if options.track_clusters_out:
        write_table(result.track_clusters, options.track_clusters_out)
    if options.clusters_out:
        write_table(result.clusters, options.clusters_out)
    done = time.perf_counter()

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size = out.stat().st_size
    say(
        f"recommend: {result.tracks} tracks, {result.neighbours_per_track} neighbours each -> "
        f"{result.recommendation_rows} rows in {out} ({size / 2**20:.1f} MiB)"
        + (f" and {csv_sibling(out)}" if csv_export else "")
    )
    sizes = ", ".join(str(s) for s in result.clusters["size"].to_pylist())
    say(f"clusters: {result.clusters.num_rows} (sizes {sizes}); snapshot_date {snapshot}")
    say(
        f"seconds: imports {imported - began:.2f}, read {read - imported:.2f}, "
        f"clusters {timings.get('clusters', 0):.2f}, neighbours+write {timings.get('neighbours', 0):.2f}, "
        f"total {done - began:.2f}; peak RSS {peak_mib:.0f} MiB"
    )
    if options.stats:
        stats = {
            "tracks": result.tracks,
            "neighbours_per_track": result.neighbours_per_track,
            "rows": result.recommendation_rows,
            "out_bytes": size,
            "seconds": {
                "imports": imported - began,
                "read": read - imported,
                "clusters": timings.get("clusters", 0.0),
                "neighbours_and_write": timings.get("neighbours", 0.0),
                "stage": done - imported,
                "total": done - began,
            },
            "peak_rss_mib": peak_mib,
        }
        Path(options.stats).write_text(json.dumps(stats, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the subcommand on its own (``python -m spotify_pipeline_tools.cli.recommend ...``)."""
    from spotify_pipeline_tools.cli.app import make_group, run

    group = make_group("the recommend command of spotify-pipeline", [recommend_command])
    return run(group, ["recommend", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
