"""Validation libraries for the contract (run request, manifest): msgspec vs pydantic v2.

Measures, on this machine:

* import time of each library in a fresh process (median of ``--repeat``): what it adds to a
  function's cold start;
* parse + validate time of a real run request and of a real manifest (the golden fixture's
  extract manifest), ``--loops`` times each: the project's parsers (``parse_run_request``,
  ``Manifest.from_bytes``: types, then the cross-field rules), the same shapes decoded by msgspec
  alone (the project's own Structs) and by pydantic models of the same shape.

Measured before msgspec was adopted (the hand-written ``_Fields`` and ``parse_run_request``, 2 busy
cores): run request 20-25 us, manifest 70-110 us per parse; msgspec alone 1 and 5 us, pydantic 4-5
and 21-28 us; import with one class defined, after the standard modules a function imports anyway: msgspec 9-25 ms,
pydantic 210-340 ms. Hence msgspec.

    .venv/bin/pip install pydantic   # not a dependency of the project; without it its rows say so
    .venv/bin/python benchmarks/validation.py
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_MANIFEST = ROOT / "tests/fixtures/golden/raw/extract/snapshot_date=2026-11-23/_manifest.json"
RUN_REQUEST = {
    "snapshot_date": "2026-11-23",
    "markets": ["GLOBAL", "BR", "KR"],
    "run_id": "bench-0001",
    "chart_source": "spotify-playlist",
    "feature_providers": ["spotify", "reccobeats"],
    "dataset_features": True,
}
# (imported first, untimed; timed) per probe. Each library is timed with one class defined, since
# pydantic defers most of its imports until the first model; "after the stdlib" is what a function
# pays on top of the standard modules every function imports anyway.
STDLIB = "import dataclasses, datetime, enum, json, re, typing"
MSGSPEC = "import msgspec\nclass M(msgspec.Struct):\n    a: int"
PYDANTIC = "import pydantic\nclass M(pydantic.BaseModel):\n    a: int"
IMPORT_PROBES = {
    "msgspec": ("", MSGSPEC),
    "pydantic": ("", PYDANTIC),
    "spotify_pipeline.events": ("", "import spotify_pipeline.events"),
    "msgspec after the stdlib": (STDLIB, MSGSPEC),
    "pydantic after the stdlib": (STDLIB, PYDANTIC),
}
PROBE = "{setup}\nimport time\nt = time.perf_counter()\n{code}\nprint(time.perf_counter() - t)"


def import_seconds(setup: str, code: str, repeat: int) -> float:
    """Median seconds to run ``code`` in a fresh interpreter (the interpreter's own start excluded);
    NaN when it fails (a library not installed)."""
    times = []
    for _ in range(repeat):
        probe = PROBE.format(setup=setup, code=code)
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
        if out.returncode != 0:
            return float("nan")
        times.append(float(out.stdout))
    return statistics.median(times)


def per_call_us(parse: Callable[[bytes], object], data: bytes, loops: int) -> float:
    parse(data)  # warm: first-call caches (regexes, validators) are not what a warm instance pays
    began = time.perf_counter()
    for _ in range(loops):
        parse(data)
    return (time.perf_counter() - began) / loops * 1e6


def msgspec_parsers() -> tuple[Callable[[bytes], object], Callable[[bytes], object]]:
    import msgspec

    from spotify_pipeline.events import RunRequestMessage
    from spotify_pipeline.manifest import Manifest

    return msgspec.json.Decoder(RunRequestMessage).decode, msgspec.json.Decoder(Manifest).decode


def pydantic_parsers() -> tuple[Callable[[bytes], object], Callable[[bytes], object]]:
    import pydantic

    strict = pydantic.ConfigDict(extra="forbid", strict=True)

    class RunRequestModel(pydantic.BaseModel):
        model_config = strict
        snapshot_date: date | None = None
        markets: list[str] | None = None
        run_id: str | None = None
        playlists: dict[str, str] | None = None
        chart_source: str | None = None
        charts_csv: str | None = None
        feature_providers: list[str] | None = None
        dataset_features: bool | None = None
        force_gates: bool | None = None
        remove_markets: list[str] | None = None

    class FileEntryModel(pydantic.BaseModel):
        model_config = strict
        name: str
        sha256: str
        bytes: int
        rows: int | None = None
        table: str | None = None

    class UpstreamModel(pydantic.BaseModel):
        name: str
        generation: int
        sha256: str

    class PartModel(pydantic.BaseModel):
        run_id: str
        markets: list[str]
        files: list[str]
        sources: dict[str, str] = {}

    class ManifestModel(pydantic.BaseModel):
        format: int
        stage: str
        snapshot_date: date
        run_id: str
        started_at: str
        finished_at: str
        files: list[FileEntryModel]
        upstream: UpstreamModel | None = None
        sources: dict[str, str] = {}
        summary: dict[str, Any] = {}
        request: dict[str, Any] | None = None
        parts: list[PartModel] = []

    return RunRequestModel.model_validate_json, ManifestModel.model_validate_json


def project_parsers() -> tuple[Callable[[bytes], object], Callable[[bytes], object]]:
    from spotify_pipeline.config import Settings
    from spotify_pipeline.events import parse_run_request
    from spotify_pipeline.manifest import Manifest

    settings = Settings()
    today = date(2026, 11, 23)

    def request(data: bytes) -> object:
        return parse_run_request(json.loads(data), settings, default_run_id="d", today=today)

    def manifest(data: bytes) -> object:
        return Manifest.from_bytes(data, "bench")

    return request, manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="fresh processes per import time")
    parser.add_argument("--loops", type=int, default=10_000, help="parses per timing")
    args = parser.parse_args()

    request_bytes = json.dumps(RUN_REQUEST).encode()
    manifest_bytes = GOLDEN_MANIFEST.read_bytes()
    print(f"import time, median of {args.repeat} fresh processes:")
    for label, (setup, code) in IMPORT_PROBES.items():
        print(f"  {label:<28} {import_seconds(setup, code, args.repeat) * 1000:7.1f} ms")
    print(f"parse + validate, microseconds per call (mean of {args.loops:,}):")
    print(f"  {'':<28} {'run request':>12} {'manifest':>10}")
    for label, make in (
        ("spotify_pipeline", project_parsers),
        ("msgspec decode alone", msgspec_parsers),
        ("pydantic decode alone", pydantic_parsers),
    ):
        try:
            request, manifest = make()
        except ImportError as exc:
            print(f"  {label:<28} not installed ({exc.name})")
            continue
        print(
            f"  {label:<28} {per_call_us(request, request_bytes, args.loops):12.1f}"
            f" {per_call_us(manifest, manifest_bytes, args.loops):10.1f}"
        )


if __name__ == "__main__":
    main()
