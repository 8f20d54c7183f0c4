"""``spotify-pipeline package``: one self-contained, reproducible zip per function.

Each zip holds the function's ``main.py`` and ``requirements.txt`` and the core package as it is
(the local stack, the stand-ins and the CLI live in ``spotify_pipeline_tools``, which never runs in
the cloud, so nothing needs excluding). Entries
are sorted and time-stamped 1980-01-01, so the same source gives the same bytes and the
zip's SHA-256 can name the object Terraform uploads (a code change redeploys, nothing else).
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import spotify_pipeline

FUNCTIONS = ("extract", "transform", "recommend", "load")


def _package_files() -> list[tuple[str, Path]]:
    root = Path(spotify_pipeline.__file__).parent
    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_dir() or "__pycache__" in rel.parts or path.suffix == ".pyc":
            continue
        out.append((f"spotify_pipeline/{rel.as_posix()}", path))
    return out


def build(functions_dir: Path, out_dir: Path) -> dict[str, tuple[Path, str]]:
    """Write ``<out_dir>/<function>.zip``; return function -> (path, sha256)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    core = _package_files()
    result: dict[str, tuple[Path, str]] = {}
    for fn in FUNCTIONS:
        src = functions_dir / fn
        entries = [("main.py", src / "main.py"), ("requirements.txt", src / "requirements.txt"), *core]
        target = out_dir / f"{fn}.zip"
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for arcname, path in sorted(entries):
                info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())
        result[fn] = (target, hashlib.sha256(target.read_bytes()).hexdigest())
    return result
