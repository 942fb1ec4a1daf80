#!/usr/bin/env bash
# infra/nats.sh COMMAND...: runs COMMAND with NATS_URL naming a nats-server with JetStream.
# Uses the server at NATS_URL (default nats://127.0.0.1:4222) when it answers; otherwise (or
# with MQ_INFRA_OWN=1) starts its own from Debian's package, on a free port in a temporary
# directory, and stops it and removes the directory afterwards. Its own server syncs every
# stream write to disk (`sync_interval: always`) where the version has the setting (2.10 on).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

run_on_answering NATS_URL "nats://127.0.0.1:4222" "$@"

need_package nats-server nats-server
dir="$(mktemp -d -t mq-nats.XXXXXX)"
port="$(free_port)"
sync=""
version="$(nats-server --version | grep -oE '[0-9]+\.[0-9]+' | head -1)"
if [ "$(printf '%s\n2.10\n' "$version" | sort -V | head -1)" = 2.10 ]; then
    sync="sync_interval: always"
fi
cat >"$dir/nats.conf" <<CONF
listen: 127.0.0.1:$port
jetstream { store_dir: "$dir/store" $sync }
CONF
nats-server -c "$dir/nats.conf" >"$dir/server.log" 2>&1 &
stop_at_exit $! "$dir"
wait_for 127.0.0.1 "$port" 20 "nats-server" || { tail -20 "$dir/server.log" >&2; exit 1; }
echo "infra: started nats-server $version on 127.0.0.1:$port${sync:+ (sync_interval: always)}" >&2
NATS_URL="nats://127.0.0.1:$port" "$@"
