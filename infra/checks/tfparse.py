"""Parse a Terraform folder (``*.tf``, not recursive) into plain dicts with python-hcl2 8.x.

``load_dir(path)`` merges every file into::

    {"resource": {type: {name: body}}, "data": {type: {name: body}}, "locals": {name: value},
     "variable": {name: body}, "output": {name: body}, "provider": {name: body},
     "terraform": [body, ...], "files": {file name: text},
     "origin": {"resource.TYPE.NAME" or "data.TYPE.NAME": file name}}

Strings keep Terraform's syntax with the quotes stripped: a literal ``"extract"`` is
``extract``, an expression is ``${...}``. With ``explicit_blocks=True`` every block body carries
``"__is_block__": True``, which tells a block from an attribute holding an object or a list of
objects (the provider-schema validator needs that; the wiring checks do not).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

BLOCK_MARK = "__is_block__"


class Hcl2Missing(ImportError):
    """python-hcl2 8.x is not installed in this interpreter."""


def parse_text(text: str, *, explicit_blocks: bool = False) -> dict[str, Any]:
    # Imported here so that a missing parser fails each check with this message, not the import
    # of every module that uses this one (a pytest collection error would stop the whole suite).
    try:
        import hcl2
        from hcl2 import SerializationOptions
    except ImportError as exc:
        raise Hcl2Missing(
            f"python-hcl2 8.x is needed ({exc}): run `bash infra/checks/setup.sh` (installs it into .venv)"
        ) from exc
    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=explicit_blocks, with_comments=False)
    parsed: dict[str, Any] = hcl2.loads(text, serialization_options=options)
    return parsed


def _strip_mark(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != BLOCK_MARK}


def load_dir(path: Path | str, *, explicit_blocks: bool = False) -> dict[str, Any]:
    root = Path(path)
    merged: dict[str, Any] = {
        "resource": {},
        "data": {},
        "locals": {},
        "variable": {},
        "output": {},
        "provider": {},
        "terraform": [],
        "files": {},
        "origin": {},
    }
    files = sorted(root.glob("*.tf"))
    if not files:
        raise FileNotFoundError(f"no .tf files in {root}")
    for file in files:
        text = file.read_text()
        merged["files"][file.name] = text
        try:
            parsed = parse_text(text, explicit_blocks=explicit_blocks)
        except Hcl2Missing:
            raise
        except Exception as exc:  # lark raises several types; name the file
            raise ValueError(f"{file}: cannot parse: {exc}") from exc
        for kind in ("resource", "data"):
            for entry in parsed.get(kind, []):
                for rtype, named in entry.items():
                    if rtype == BLOCK_MARK:
                        continue
                    for name, body in named.items():
                        if name == BLOCK_MARK:
                            continue
                        if name in merged[kind].setdefault(rtype, {}):
                            raise ValueError(f"{file}: duplicate {kind} {rtype}.{name}")
                        merged[kind][rtype][name] = body
                        merged["origin"][f"{kind}.{rtype}.{name}"] = file.name
        for entry in parsed.get("locals", []):
            for name, value in _strip_mark(entry).items():
                if name in merged["locals"]:
                    raise ValueError(f"{file}: duplicate local {name}")
                merged["locals"][name] = value
        for kind in ("variable", "output", "provider"):
            for entry in parsed.get(kind, []):
                for name, body in _strip_mark(entry).items():
                    merged[kind][name] = body
        merged["terraform"].extend(parsed.get("terraform", []))
    return merged


def blocks(value: Any) -> list[dict[str, Any]]:
    """The bodies of a nested block (``x { ... }`` repeated or not) as a list."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def block(body: dict[str, Any], *names: str) -> dict[str, Any]:
    """The single nested block at ``names`` (``block(fn, "service_config")``); KeyError if absent."""
    current = body
    for name in names:
        found = blocks(current.get(name))
        if len(found) != 1:
            raise KeyError(f"expected exactly one {name!r} block, found {len(found)}")
        current = found[0]
    return current


def expr(value: Any) -> str:
    """An expression string without its ``${ }`` wrapper: ``${var.x}`` -> ``var.x``."""
    text = str(value)
    if text.startswith("${") and text.endswith("}") and text.count("${") == 1:
        return text[2:-1].strip()
    return text
