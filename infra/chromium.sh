#!/usr/bin/env bash
# Prints the path of a headless-capable Chromium, installing Debian's package when there is none.
# The dashboard's page test runs it (`--headless --dump-dom`, `--screenshot`) against a live server.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
for candidate in "${CHROMIUM:-}" chromium chromium-browser google-chrome; do
    [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 && { command -v "$candidate"; exit 0; }
done
# Test processes may ask at once: one installs, the others wait for it.
exec 9>"${TMPDIR:-/tmp}/message-queue-chromium-install.lock"
flock 9
need_package chromium chromium
command -v chromium
