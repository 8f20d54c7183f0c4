#!/usr/bin/env bash
# apt-install.sh WHY PACKAGE...: install Debian packages a make target needs (the caller checked they
# are missing), as root or through sudo; otherwise stop at once with one line naming them.
# Used by `make test` (Chromium, chromedriver, Java) and infra/checks/setup.sh (node, npm).
set -euo pipefail
why="$1"
shift
if [ "$(id -u)" -eq 0 ]; then
  run=(env)
elif command -v sudo >/dev/null 2>&1 && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then
  run=(sudo env)  # may ask for the password when make runs in a terminal
else
  echo "error: $why need(s) the Debian packages $*: run \`sudo apt-get install -y $*\` as root, then make again" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: $why need(s) $* (Debian package names) and this machine has no apt-get: install them, then make again" >&2
  exit 1
fi
echo "installing $* for $why (apt-get, needs root)"
"${run[@]}" DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${run[@]}" DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
