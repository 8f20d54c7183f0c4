#!/usr/bin/env bash
# What `make test` needs outside Python, checked before anything else so a fresh machine learns it
# in seconds, not after a 20-minute run. Debian's Chromium and chromedriver (tests/browser) and Java
# (Google's Pub/Sub emulator runs on it) are installed when missing (scripts/apt-install.sh: root or
# sudo, else one line naming them); the Cloud SDK's Pub/Sub emulator is no Debian package, so its
# absence stops here with the command that adds it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  bash scripts/apt-install.sh "the browser tests (tests/browser)" chromium chromium-driver
fi
if ! command -v java >/dev/null 2>&1; then
  bash scripts/apt-install.sh "Google's Pub/Sub emulator" openjdk-17-jre-headless
fi
# Found exactly as `stack up` finds it.
if ! PYTHONPATH=src "${PYTHON:-python3}" -c \
  'import sys; from spotify_pipeline_tools.stack.state import pubsub_emulator_jar; sys.exit(pubsub_emulator_jar() is None)'; then
  echo "error: the tests need the Cloud SDK's Pub/Sub emulator: run \`gcloud components install pubsub-emulator\`" \
    "(or install google-cloud-cli-pubsub-emulator from Google's apt repository), then make again" >&2
  exit 1
fi
