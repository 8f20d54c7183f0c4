"""The parsed Terraform folder the offline checks read (python-hcl2, through tfparse), and helpers
shared by wiring.py (infra against the code) and fresh_project.py (what a first apply needs).
"""

from __future__ import annotations

import ast
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHECKS_DIR = Path(__file__).resolve().parent
if str(CHECKS_DIR) not in sys.path:
    sys.path.insert(0, str(CHECKS_DIR))

from tfparse import expr, load_dir  # noqa: E402

STAGES = ("extract", "transform", "recommend", "load")
# Deployments whose source is another function's zip: `ingest` is the extract source on the
# bucket's events (chart files under inbox/), deployed when functions/extract/main.py defines it.
SECOND_DEPLOYMENTS = {"ingest": "extract"}
# What a reference to another block looks like inside an expression: resources, data sources, locals.
REFERENCE = re.compile(r"(?<![\w.])((?:data\.)?(?:google|time)_\w+\.[A-Za-z_][\w-]*|local\.\w+)")


def norm(text: Any) -> str:
    """An expression without its ``${ }`` and whitespace, for comparisons."""
    return re.sub(r"\s+", "", expr(text))


@dataclass
class FunctionInstance:
    stage: str  # the deployment: a stage, or a second deployment such as ingest
    address: str
    body: dict[str, Any]
    key_exprs: set[str] = field(default_factory=set)  # how the body may name its source

    @property
    def source(self) -> str:
        """The function folder whose zip it runs (and whose identity and settings it shares)."""
        return SECOND_DEPLOYMENTS.get(self.stage, self.stage)


@dataclass
class Infra:
    infra_dir: Path
    repo: Path
    config: dict[str, Any]

    @classmethod
    def load(cls, infra_dir: Path | str, repo: Path | str | None = None) -> Infra:
        infra = Path(infra_dir).resolve()
        return cls(infra, Path(repo).resolve() if repo else infra.parent, load_dir(infra))

    def resources(self, rtype: str) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = self.config["resource"].get(rtype, {})
        return found

    def resource(self, address: str) -> dict[str, Any]:
        rtype, name = address.split(".", 1)
        return self.resources(rtype)[name]

    def local(self, name: str) -> Any:
        return self.config["locals"][name]

    def variable_default(self, name: str) -> Any:
        return self.config["variable"][name].get("default")

    def resolve_list(self, value: Any) -> list[str] | None:
        """A literal list, ``local.x`` / ``toset(local.x)`` of one, or ``toset([...])``."""
        if isinstance(value, list):
            return [str(v) for v in value]
        text = norm(value)
        inner = re.fullmatch(r"toset\((.*)\)", text)
        if inner:
            text = inner.group(1)
        if text.startswith("local."):
            name = text[len("local.") :]
            if name in self.config["locals"]:
                return self.resolve_list(self.config["locals"][name])
            return None
        if text.startswith("[") and text.endswith("]"):
            try:
                return [str(v) for v in json.loads(text)]
            except json.JSONDecodeError:
                return None
        return None

    def function_instances(self) -> list[FunctionInstance]:
        out = []
        for name, body in self.resources("google_cloudfunctions2_function").items():
            address = f"google_cloudfunctions2_function.{name}"
            if "for_each" in body:
                keys = self.resolve_list(body["for_each"]) or []
                for key in keys:
                    out.append(FunctionInstance(key, f'{address}["{key}"]', body, {"each.key", f'"{key}"'}))
            else:
                source = SECOND_DEPLOYMENTS.get(name, name)
                suffix = "[0]" if "count" in body else ""
                out.append(FunctionInstance(name, address + suffix, body, {f'"{source}"'}))
        return out

    def addresses(self) -> dict[str, dict[str, Any]]:
        """Every resource and data source by address (``type.name``, ``data.type.name``)."""
        found: dict[str, dict[str, Any]] = {}
        for kind, prefix in (("resource", ""), ("data", "data.")):
            for rtype, named in self.config[kind].items():
                found.update({f"{prefix}{rtype}.{name}": body for name, body in named.items()})
        return found

    def references(self, value: Any) -> set[str]:
        """Resource and data-source addresses an expression (any nested value) refers to, through locals."""
        pending = [json.dumps(value)]
        seen_locals: set[str] = set()
        found: set[str] = set()
        while pending:
            for ref in REFERENCE.findall(pending.pop()):
                name = ref.removeprefix("local.")
                if ref == name:
                    found.add(ref)
                elif name not in seen_locals and name in self.config["locals"]:
                    seen_locals.add(name)
                    pending.append(json.dumps(self.config["locals"][name]))
        return found & set(self.addresses())

    def expand_locals(self, text: Any) -> str:
        """``text`` with each ``${local.x}`` whose value is a string put in its place."""

        def value(found: re.Match[str]) -> str:
            local = self.config["locals"].get(found.group(1))
            return self.expand_locals(local) if isinstance(local, str) else found.group(0)

        return re.sub(r"\$\{local\.(\w+)\}", value, str(text))

    def direct_dependencies(self, address: str) -> set[str]:
        """Addresses ``address`` refers to or names in depends_on."""
        return self.references(self.addresses()[address]) - {address}

    def dependencies(self, address: str) -> set[str]:
        """Everything Terraform creates before ``address`` (the transitive closure)."""
        found: set[str] = set()
        pending = [address]
        while pending:
            for dep in self.direct_dependencies(pending.pop()) - found:
                found.add(dep)
                pending.append(dep)
        return found

    def tf_path(self, value: str) -> Path:
        """A path expression of the form ``${path.module}/...`` as a file."""
        return (self.infra_dir / str(value).replace("${path.module}/", "")).resolve()


def names(key_exprs: set[str], template: str) -> set[str]:
    return {norm(template.format(key=k)) for k in key_exprs}


def defines(main: Path, name: str) -> bool:
    if not main.is_file():
        return False
    return any(isinstance(n, ast.FunctionDef) and n.name == name for n in ast.parse(main.read_text()).body)


def expected_deployments(infra: Infra) -> list[str]:
    second = [d for d, src in SECOND_DEPLOYMENTS.items() if defines(infra.repo / "functions" / src / "main.py", d)]
    return sorted([*STAGES, *second])


def evaluate_default(infra: Infra, value: Any) -> str | None:
    """The value an environment variable gets with every variable at its default (simple forms)."""
    text = norm(value)
    m = re.fullmatch(r"(join\(\",\",|tostring\(|jsonencode\()?var\.(\w+)\)?", text)
    if not m or m.group(2) not in infra.config["variable"]:
        return None
    default = infra.variable_default(m.group(2))
    if default is None:
        return None
    if m.group(1) and m.group(1).startswith("join"):
        return ",".join(str(v) for v in default)
    if m.group(1) == "jsonencode(":
        return json.dumps(default)
    if isinstance(default, bool):
        return str(default).lower()
    return str(default)


def member(body: dict[str, Any]) -> str:
    return norm(body.get("member", body.get("members", "")))


def seconds(duration: Any) -> float | None:
    """A Terraform/Google duration literal (``"60s"``, ``"2m"``, ``"1h"``) in seconds; None if not literal."""
    found = re.fullmatch(r"(\d+(?:\.\d+)?)(s|m|h)", str(duration).strip())
    if not found:
        return None
    return float(found.group(1)) * {"s": 1, "m": 60, "h": 3600}[found.group(2)]
