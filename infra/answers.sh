#!/usr/bin/env bash
# infra/answers.sh URL: exits 0 when the server at URL (scheme://host:port/... or host:port)
# accepts a TCP connection within a second.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
read -r host port <<<"$(host_port "$1")"
answers "$host" "$port"
