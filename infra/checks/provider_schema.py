"""Validate attribute and block names in infra/*.tf against the google provider's schema, offline.

``terraform validate`` needs the provider binary, which cannot be downloaded here. The npm
package ``@cdktf/provider-google`` (installed by setup.sh into infra/checks/node_modules) is
generated from the provider's schema and ships it in its ``.jsii`` assembly:

* every resource / data source is a class whose base is ``cdktf.TerraformResource`` /
  ``cdktf.TerraformDataSource``; its doc summary links the registry page, ending in the
  Terraform type name (``... docs/resources/storage_bucket google_storage_bucket}``);
* the class initializer's ``config`` parameter names an interface (``...StorageBucketConfig``)
  whose properties are the arguments; a property is required unless ``optional``;
* properties are camelCase; the Terraform name is the anchor of the registry link in the
  property's docs (``...#lifecycle_rule StorageBucket#lifecycle_rule}``) - authoritative where
  naive camel->snake conversion is wrong (``detectMd5Hash`` is ``detect_md5hash``);
* a property whose type is (a list of) another provider interface is a nested block, whose
  own interface gives the block's arguments, recursively;
* the class's own non-static properties (minus the ``...Input`` getters) are the attributes a
  reference such as ``google_service_account.x.email`` may read.

The compact schema extracted from the 100 MB ``.jsii`` is cached in ``.cache/``.

Checks: unknown resource / data source types; unknown attribute or block names (with a
suggestion); a block written as an attribute or the reverse; missing required arguments and
blocks; ``dynamic`` blocks; references to undeclared resources or to attributes a resource does
not export. Non-google types need an entry in ``OTHER_PROVIDERS``.

Usage: ``python infra/checks/provider_schema.py [INFRA_DIR]`` (exit 1 on problems);
``--build-cache`` only extracts the schema.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from pathlib import Path
from typing import Any

CHECKS_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(CHECKS_DIR))

from tfparse import BLOCK_MARK, load_dir  # noqa: E402

PACKAGE_DIR = CHECKS_DIR / "node_modules" / "@cdktf" / "provider-google"
CACHE_DIR = CHECKS_DIR / ".cache"
SCHEMA_FORMAT = 1

META_ATTRIBUTES = {"count", "for_each", "depends_on", "provider"}
META_BLOCKS = {"lifecycle", "provisioner", "connection"}

# Providers other than google, by hand from their registry docs (pinned in versions.tf).
OTHER_PROVIDERS: dict[str, dict[str, Any]] = {
    "time_sleep": {
        "arguments": {
            "attributes": {
                "create_duration": {"required": False},
                "destroy_duration": {"required": False},
                "triggers": {"required": False},
            },
            "blocks": {},
        },
        "exported": ["id", "create_duration", "destroy_duration", "triggers"],
    },
}

_TYPE_LINK = re.compile(r"docs/(resources|data-sources)/(\w+) (\w+)\}")
_ANCHOR = re.compile(r"#(\w+) \w+#\w+\}")
_REFERENCE = re.compile(
    r"(?<![\w.])(data\.)?((?:google|time)_[a-z0-9_]+)\.([A-Za-z_][A-Za-z0-9_-]*)"
    r"(?:\[[^\]]*\])?(?:\.([A-Za-z_][A-Za-z0-9_]*))?"
)


class SchemaMissing(RuntimeError):
    """The npm package is not installed: run infra/checks/setup.sh."""


def _snake_variants(camel: str) -> set[str]:
    """Terraform names a camelCase getter may stand for (``md5Hash`` -> md5_hash, md5hash)."""
    base = camel[: -len("Attribute")] if camel.endswith("Attribute") and len(camel) > 9 else camel
    naive = re.sub(r"(?<!^)([A-Z])", r"_\1", base).lower()
    after_digit_joined = re.sub(r"(?<![0-9])(?<!^)([A-Z])", r"_\1", base).lower()
    return {naive, after_digit_joined, camel.lower()}


def _tf_name(prop: dict[str, Any]) -> str:
    docs = prop.get("docs", {})
    match = _ANCHOR.search(docs.get("summary", "") + " " + docs.get("remarks", ""))
    if match:
        return match.group(1)
    return re.sub(r"(?<!^)([A-Z])", r"_\1", prop["name"]).lower()


def _struct_fqn(type_ref: dict[str, Any], types: dict[str, Any]) -> str | None:
    if "fqn" in type_ref:
        fqn = type_ref["fqn"]
        t = types.get(fqn)
        if t is not None and t.get("kind") == "interface" and t.get("datatype"):
            return str(fqn)
        return None
    if "union" in type_ref:
        for member in type_ref["union"]["types"]:
            found = _struct_fqn(member, types)
            if found:
                return found
        return None
    if "collection" in type_ref:
        return _struct_fqn(type_ref["collection"]["elementtype"], types)
    return None


def build_schema(jsii_path: Path) -> dict[str, Any]:
    """The compact schema of every resource and data source in the assembly."""
    assembly = json.loads(jsii_path.read_text())
    types: dict[str, Any] = assembly["types"]
    structs: dict[str, dict[str, Any]] = {}

    def visit(fqn: str) -> None:
        if fqn in structs:
            return
        structs[fqn] = {"attributes": {}, "blocks": {}}
        for prop in types[fqn].get("properties", []):
            name = _tf_name(prop)
            required = not prop.get("optional", False)
            nested = _struct_fqn(prop["type"], types)
            if nested is not None:
                structs[fqn]["blocks"][name] = {"type": nested, "required": required}
                visit(nested)
            else:
                structs[fqn]["attributes"][name] = {"required": required}

    kinds = {"cdktf.TerraformResource": "resource", "cdktf.TerraformDataSource": "data"}
    schema: dict[str, Any] = {"format": SCHEMA_FORMAT, "resource": {}, "data": {}, "provider": None, "structs": structs}
    for t in types.values():
        if t.get("kind") != "class":
            continue
        config = next(
            (p["type"]["fqn"] for p in t.get("initializer", {}).get("parameters", []) if p["name"] == "config"), None
        )
        if config is None:
            continue
        if t.get("base") == "cdktf.TerraformProvider":
            visit(config)
            schema["provider"] = {"name": "google", "config": config}
            continue
        kind = kinds.get(t.get("base", ""))
        match = _TYPE_LINK.search(t.get("docs", {}).get("summary", ""))
        if kind is None or match is None:
            continue
        tf_type = match.group(3)
        visit(config)
        exported: set[str] = set()
        for prop in t.get("properties", []):
            if prop.get("static") or prop["name"].endswith("Input"):
                continue
            exported |= _snake_variants(prop["name"])
        exported |= set(structs[config]["attributes"]) | set(structs[config]["blocks"]) | {"id"}
        schema[kind][tf_type] = {"config": config, "exported": sorted(exported)}
    package = json.loads((jsii_path.parent / "package.json").read_text())
    schema["package_version"] = package["version"]
    schema["provider_version"] = package.get("cdktf", {}).get("provider", {}).get("version")
    return schema


def load_schema(package_dir: Path = PACKAGE_DIR, cache_dir: Path = CACHE_DIR) -> dict[str, Any]:
    jsii = package_dir / ".jsii"
    if not jsii.is_file():
        raise SchemaMissing(f"{jsii} is missing: run infra/checks/setup.sh (npm ci in infra/checks)")
    stat = jsii.stat()
    cache = cache_dir / f"google-schema-{stat.st_size}-{int(stat.st_mtime)}.json"
    if cache.is_file():
        cached: dict[str, Any] = json.loads(cache.read_text())
        if cached.get("format") == SCHEMA_FORMAT:
            return cached
    schema = build_schema(jsii)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for old in cache_dir.glob("google-schema-*.json"):
        old.unlink()
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(schema, separators=(",", ":")))
    tmp.replace(cache)
    return schema


def _is_block(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and v.get(BLOCK_MARK) for v in value)


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=2, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


class Validator:
    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.structs: dict[str, Any] = dict(schema["structs"])
        self.types: dict[str, dict[str, Any]] = {"resource": dict(schema["resource"]), "data": dict(schema["data"])}
        for tf_type, spec in OTHER_PROVIDERS.items():
            key = f"hand:{tf_type}"
            self.structs[key] = spec["arguments"]
            self.types["resource"][tf_type] = {"config": key, "exported": spec["exported"]}

    def check_body(self, body: dict[str, Any], fqn: str, where: str, top: bool, problems: list[str]) -> None:
        struct = self.structs[fqn]
        attributes: dict[str, Any] = struct["attributes"]
        nested: dict[str, Any] = struct["blocks"]
        present: set[str] = set()
        for key, value in body.items():
            if key == BLOCK_MARK:
                continue
            if top and (key in META_ATTRIBUTES or key in META_BLOCKS):
                continue
            if key == "dynamic":
                for entry in value if isinstance(value, list) else [value]:
                    for name, spec in entry.items():
                        if name == BLOCK_MARK:
                            continue
                        present.add(name)
                        if name not in nested:
                            problems.append(
                                f"{where}: dynamic {name!r} is not a block of this type"
                                + _suggest(name, sorted(nested))
                            )
                            continue
                        for content in spec.get("content", []):
                            self.check_body(content, nested[name]["type"], f"{where}.{name}", False, problems)
                continue
            present.add(key)
            if key in attributes:
                if _is_block(value):
                    problems.append(f"{where}: {key!r} is an attribute: write `{key} = ...`, not a block")
            elif key in nested:
                if not _is_block(value):
                    problems.append(f"{where}: {key!r} is a block: write `{key} {{ ... }}`, not `{key} = ...`")
                    continue
                for item in value:
                    self.check_body(item, nested[key]["type"], f"{where}.{key}", False, problems)
            else:
                problems.append(
                    f"{where}: unknown attribute or block {key!r}" + _suggest(key, sorted({*attributes, *nested}))
                )
        for name, spec in {**attributes, **nested}.items():
            if spec["required"] and name not in present:
                kind = "block" if name in nested else "attribute"
                problems.append(f"{where}: required {kind} {name!r} is missing")

    def check_references(self, config: dict[str, Any], problems: list[str]) -> None:
        declared = {kind: {(t, n) for t, named in config[kind].items() for n in named} for kind in ("resource", "data")}

        def strings(value: Any) -> list[str]:
            if isinstance(value, str):
                return [value] if "${" in value else []
            if isinstance(value, dict):
                return [s for v in value.values() for s in strings(v)]
            if isinstance(value, list):
                return [s for v in value for s in strings(v)]
            return []

        everything = [config[k] for k in ("resource", "data", "locals", "output", "provider")]
        seen: set[str] = set()
        for text in strings(everything):
            for match in _REFERENCE.finditer(text):
                is_data, tf_type, name, attr = match.groups()
                kind = "data" if is_data else "resource"
                label = f"{'data.' if is_data else ''}{tf_type}.{name}"
                if (tf_type, name) not in declared[kind]:
                    msg = f"reference to undeclared {label}"
                    if msg not in seen:
                        seen.add(msg)
                        problems.append(msg)
                    continue
                spec = self.types[kind].get(tf_type)
                if attr and spec is not None and attr not in spec["exported"]:
                    msg = f"reference {label}.{attr}: {tf_type} has no attribute {attr!r}" + _suggest(
                        attr, spec["exported"]
                    )
                    if msg not in seen:
                        seen.add(msg)
                        problems.append(msg)

    def validate(self, config: dict[str, Any]) -> list[str]:
        problems: list[str] = []
        for kind in ("resource", "data"):
            for tf_type, named in sorted(config[kind].items()):
                for name, body in sorted(named.items()):
                    label = f"{'data.' if kind == 'data' else ''}{tf_type}.{name}"
                    where = f"{config['origin'].get(f'{kind}.{tf_type}.{name}', '?')}: {label}"
                    spec = self.types[kind].get(tf_type)
                    if spec is None:
                        what = "resource type" if kind == "resource" else "data source"
                        problems.append(
                            f"{where}: unknown {what} {tf_type!r}" + _suggest(tf_type, sorted(self.types[kind]))
                        )
                        continue
                    self.check_body(body, spec["config"], where, True, problems)
        provider = self.schema.get("provider")
        for name, body in config["provider"].items():
            if provider and name == provider["name"]:
                self.check_body(body, provider["config"], f"provider {name!r}", True, problems)
            elif name != "time":
                problems.append(f"provider {name!r}: no schema to check it against")
        self.check_references(config, problems)
        return problems


def validate_dir(infra_dir: Path, schema: dict[str, Any] | None = None) -> list[str]:
    config = load_dir(infra_dir, explicit_blocks=True)
    return Validator(schema or load_schema()).validate(config)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--build-cache"]:
        schema = load_schema()
        print(
            f"google provider {schema['provider_version']} schema: {len(schema['resource'])} resources, "
            f"{len(schema['data'])} data sources (cached in {CACHE_DIR})"
        )
        return 0
    infra_dir = Path(argv[0]) if argv else CHECKS_DIR.parent
    try:
        problems = validate_dir(infra_dir)
    except SchemaMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    config = load_dir(infra_dir)
    count = sum(len(named) for kind in ("resource", "data") for named in config[kind].values())
    print(f"provider schema: {count} resources/data sources checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
