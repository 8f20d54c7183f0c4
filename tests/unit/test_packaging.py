"""packaging.build: four self-contained, reproducible function zips that import on their own, each
holding exactly the core package (``spotify_pipeline``), which never imports the dev tools."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from spotify_pipeline.schema import tables
from spotify_pipeline_tools import packaging

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "src" / "spotify_pipeline"
TOOLS_PACKAGE = "spotify_pipeline_tools"
FUNCTIONS = ("extract", "transform", "recommend", "load")
HEAVY = {"pandas": "pandas", "numpy": "numpy", "pyarrow": "pyarrow", "sklearn": "scikit-learn", "scipy": "scipy"}
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][A-Za-z0-9.+!-]*)$")

# Runs inside the extracted zip; argv: function name, stage module, heavy modules to report, the
# checkout's src/ folder.
# The editable install puts the repository's src/ on sys.path (a .pth file) and may add an
# import finder; both are removed before anything is imported.
SNIPPET = """
import json, sys
sys.path = [p for p in sys.path if 'work/main/src' not in p and p.rstrip('/') != sys.argv[4]]
sys.meta_path = [f for f in sys.meta_path
                 if 'editable' not in type(f).__module__.lower() and '__editable__' not in repr(f)]
import main
import spotify_pipeline
import importlib
importlib.import_module('spotify_pipeline.' + sys.argv[2])
from spotify_pipeline.schema import tables
try:
    import spotify_pipeline_tools.stack
    dev_tools = True
except ImportError:
    dev_tools = False
entry = getattr(main, sys.argv[1], None)
print(json.dumps({
    'main': main.__file__,
    'package': spotify_pipeline.__file__,
    'entry_callable': callable(entry),
    'tables': len(tables()),
    'dev_tools_importable': dev_tools,
    'heavy': sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[3].split(','))),
}))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    return packaging.build(REPO / "functions", tmp_path_factory.mktemp("zips"))


@pytest.fixture(scope="module")
def imported(
    built: dict[str, tuple[Path, str]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, object]]:
    """Each zip extracted into an empty folder and imported in its own interpreter (concurrently)."""
    procs: dict[str, tuple[Path, subprocess.Popen[str]]] = {}
    for fn, (path, _) in built.items():
        folder = tmp_path_factory.mktemp(f"run-{fn}")
        with zipfile.ZipFile(path) as zf:
            zf.extractall(folder)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env.update({"PYTHONPATH": str(folder), "PYTHONDONTWRITEBYTECODE": "1"})
        procs[fn] = (
            folder,
            subprocess.Popen(
                [sys.executable, "-c", SNIPPET, fn, fn, ",".join(HEAVY), str(REPO / "src")],
                cwd=folder,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
    results: dict[str, dict[str, object]] = {}
    for fn, (folder, proc) in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{fn}: import failed:\n{err}"
        result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
        result["folder"] = str(folder)
        results[fn] = result
    return results


def names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def requirements(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        text = zf.read("requirements.txt").decode("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_four_zips(built: dict[str, tuple[Path, str]]) -> None:
    assert set(built) == set(FUNCTIONS)
    for fn, (path, sha) in built.items():
        assert path.name == f"{fn}.zip" and path.is_file()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_zip_contents(built: dict[str, tuple[Path, str]], fn: str) -> None:
    path = built[fn][0]
    listed = names(path)
    for required in (
        "main.py",
        "requirements.txt",
        "spotify_pipeline/__init__.py",
        "spotify_pipeline/schemas/tables.json",
        "spotify_pipeline/entrypoints.py",
    ):
        assert required in listed, required
    stage = {f"spotify_pipeline/{fn}.py", f"spotify_pipeline/{fn}/__init__.py"}  # a module or a package
    assert stage & set(listed), stage
    dev = [n for n in listed if n.startswith(TOOLS_PACKAGE)]
    assert dev == []
    assert not [n for n in listed if "__pycache__" in n or n.endswith(".pyc")]
    assert len(listed) == len(set(listed))
    with zipfile.ZipFile(path) as zf:
        assert zf.read("main.py") == (REPO / "functions" / fn / "main.py").read_bytes()
        assert zf.read("requirements.txt") == (REPO / "functions" / fn / "requirements.txt").read_bytes()
        packaged = zf.read("spotify_pipeline/schemas/tables.json")
    src = REPO / "src" / "spotify_pipeline" / "schemas" / "tables.json"
    assert packaged == src.read_bytes()


def _core_files() -> set[str]:
    return {
        f"spotify_pipeline/{p.relative_to(CORE).as_posix()}"
        for p in CORE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def test_each_zip_is_the_core_package_as_is(built: dict[str, tuple[Path, str]]) -> None:
    """Exactly main.py, requirements.txt and every file of src/spotify_pipeline, byte for byte."""
    expected = {"main.py", "requirements.txt"} | _core_files()
    for path, _ in built.values():
        assert set(names(path)) == expected
        with zipfile.ZipFile(path) as zf:
            for name in expected - {"main.py", "requirements.txt"}:
                assert zf.read(name) == (CORE.parent / name).read_bytes(), name


def _imported_modules(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_the_core_never_imports_the_tools() -> None:
    """The boundary that makes the zip the core as is: no import (lazy ones included) of the tools."""
    offenders = {
        path.relative_to(CORE).as_posix(): sorted(
            m for m in _imported_modules(path) if m.split(".")[0] == TOOLS_PACKAGE
        )
        for path in sorted(CORE.rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_functions_never_import_the_tools() -> None:
    for fn in FUNCTIONS:
        main = REPO / "functions" / fn / "main.py"
        assert not [m for m in _imported_modules(main) if m.split(".")[0] == TOOLS_PACKAGE], fn
        assert TOOLS_PACKAGE not in (REPO / "functions" / fn / "requirements.txt").read_text("utf-8")


def test_builds_are_reproducible(built: dict[str, tuple[Path, str]], tmp_path: Path) -> None:
    again = packaging.build(REPO / "functions", tmp_path / "again")
    assert {fn: sha for fn, (_, sha) in again.items()} == {fn: sha for fn, (_, sha) in built.items()}


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_requirements_are_pinned(built: dict[str, tuple[Path, str]], fn: str) -> None:
    reqs = requirements(built[fn][0])
    assert reqs, fn
    bad = [r for r in reqs if not REQUIREMENT.match(r)]
    assert bad == [], f"{fn}: unpinned requirement lines {bad}"


def test_extract_needs_no_data_science_stack(built: dict[str, tuple[Path, str]]) -> None:
    reqs = {REQUIREMENT.match(r).group(1).lower() for r in requirements(built["extract"][0])}  # type: ignore[union-attr]
    assert not reqs & {"pandas", "scikit-learn", "sklearn", "scipy"}, reqs
    assert "spotipy" in reqs


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_zip_imports_on_its_own(imported: dict[str, dict[str, object]], fn: str) -> None:
    result = imported[fn]
    folder = Path(str(result["folder"])).resolve()
    assert Path(str(result["main"])).resolve().parent == folder
    assert Path(str(result["package"])).resolve().is_relative_to(folder)
    assert result["entry_callable"] is True, f"main.{fn} is not callable"
    assert result["tables"] == len(tables())  # the schema file is readable from inside the zip
    assert result["dev_tools_importable"] is False  # proves the repository's src/ was not used


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_imported_heavy_modules_are_in_requirements(
    built: dict[str, tuple[Path, str]], imported: dict[str, dict[str, object]], fn: str
) -> None:
    reqs = {REQUIREMENT.match(r).group(1).lower() for r in requirements(built[fn][0])}  # type: ignore[union-attr]
    loaded = imported[fn]["heavy"]
    assert isinstance(loaded, list)
    missing = [m for m in loaded if HEAVY[m] not in reqs]
    assert missing == [], f"{fn} imports {missing} but its requirements.txt does not install them"
