"""msgspec's validation errors as the contract reports them: the field's path and its value.

msgspec says what is wrong and where (``Expected `int`, got `str` - at `$.files[0].bytes```) but not
the value; every error of the contract names the object, the field and the value, so the value is
looked up again in the decoded JSON at the path msgspec reports.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

_AT = re.compile(r"^(?P<reason>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_NAMED_FIELD = re.compile(r"(?:missing required|unknown) field `(?P<name>[^`]+)`")
_STEP = re.compile(r"\.(?P<key>[^.\[]+)|\[(?P<index>\d+)\]")


def value_at(body: object, path: str) -> object:
    """The value at a msgspec path (``.files[0].bytes``) of decoded JSON; None where there is none."""
    for step in _STEP.finditer(path):
        if step["key"] is not None and isinstance(body, dict):
            body = body.get(step["key"])
        elif step["index"] is not None and isinstance(body, list) and int(step["index"]) < len(body):
            body = body[int(step["index"])]
        else:
            return None
    return body


def field_error(exc: msgspec.ValidationError, body: Any) -> tuple[str, object, str]:
    """(field path, value, reason) of a validation error of ``body``: the path as the contract
    writes it (``files[0].bytes``); for a missing or unknown field, the path names that field."""
    found = _AT.match(str(exc))
    reason, path = (found["reason"], found["path"] or "") if found else (str(exc), "")
    named = _NAMED_FIELD.search(reason)
    if named:
        path += "." + named["name"]
    path = path.split("[...]")[0]  # msgspec's "some value of this object": the object is what is named
    reason = reason[:1].lower() + reason[1:]
    return path.lstrip("."), value_at(body, path), reason
