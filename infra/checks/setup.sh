#!/usr/bin/env bash
# Installs what the offline Terraform checks (tests/infra) need, idempotently; CI calls it after
# `make setup` (which creates .venv). Safe to run again: each step is skipped when in place.
#
#   python-hcl2      into .venv          (the wiring and provider-schema checks parse infra/*.tf)
#   checkov          into .venv-infra    (its pins - packaging<24, bc-python-hcl2, which also
#                                         installs a module named hcl2 - conflict with .venv)
#   @cdktf/provider-google (npm ci here) (the google provider's schema, read from its .jsii)
#
# terraform itself (for `terraform fmt -check`) must be on PATH: no registry this machine
# reaches ships it, so this script only reports when it is missing.
set -euo pipefail
CHECKS="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$CHECKS/../.." && pwd)"
PY="$ROOT/.venv/bin/python"
INFRA_VENV="$ROOT/.venv-infra"
HCL2_VERSION="$(sed -n 's/^python-hcl2==//p' "$CHECKS/requirements-hcl2.txt")"
CHECKOV_VERSION="$(sed -n 's/^checkov==//p' "$CHECKS/requirements-checkov.txt")"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

if [ ! -x "$PY" ]; then
  echo "error: $PY is missing: run \`make setup\` at the repository root first" >&2
  exit 1
fi

# 1. python-hcl2 into the project's venv (the tests run there).
if [ "$("$PY" -c 'import importlib.metadata as m; print(m.version("python-hcl2"))' 2>/dev/null)" != "$HCL2_VERSION" ]; then
  echo "infra checks: installing python-hcl2 $HCL2_VERSION into .venv"
  "$PY" -m pip install -q -r "$CHECKS/requirements-hcl2.txt"
fi

# 2. checkov in its own venv.
if [ "$("$INFRA_VENV/bin/checkov" --version 2>/dev/null)" != "$CHECKOV_VERSION" ]; then
  echo "infra checks: installing checkov $CHECKOV_VERSION into .venv-infra"
  python3 -m venv "$INFRA_VENV"
  "$INFRA_VENV/bin/pip" install -q --upgrade pip
  "$INFRA_VENV/bin/pip" install -q -r "$CHECKS/requirements-checkov.txt"
fi

# 3. The provider schema package (only its .jsii file is read; .npmrc skips peers and scripts).
if ! command -v npm >/dev/null 2>&1; then
  bash "$ROOT/scripts/apt-install.sh" "the infra checks (tests/infra)" nodejs npm
fi
WANT="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["dependencies"]["@cdktf/provider-google"])' "$CHECKS/package.json")"
HAVE="$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' \
  "$CHECKS/node_modules/@cdktf/provider-google/package.json" 2>/dev/null || true)"
if [ "$HAVE" != "$WANT" ] || [ ! -f "$CHECKS/node_modules/@cdktf/provider-google/.jsii" ]; then
  echo "infra checks: npm ci (@cdktf/provider-google $WANT)"
  (cd "$CHECKS" && npm ci --no-audit --no-fund --loglevel=error)
fi
# Extract the compact schema once (about 2 s), so the tests read the cache.
"$PY" "$CHECKS/provider_schema.py" --build-cache

if ! command -v terraform >/dev/null 2>&1; then
  echo "warning: terraform is not on PATH: the \`terraform fmt -check\` test will fail" >&2
fi
echo "infra checks: ready (python-hcl2 $HCL2_VERSION, checkov $CHECKOV_VERSION, provider schema $WANT)"
