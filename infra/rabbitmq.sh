#!/usr/bin/env bash
# infra/rabbitmq.sh COMMAND...: runs COMMAND with RABBITMQ_URL naming a RabbitMQ that answers.
# Uses the server at RABBITMQ_URL (default amqp://guest:guest@127.0.0.1:5672/%2f) when it
# answers; otherwise (or with MQ_INFRA_OWN=1) starts its own from Debian's package, on a
# free port in a temporary directory, and stops it and removes the directory afterwards.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

run_on_answering RABBITMQ_URL "amqp://guest:guest@127.0.0.1:5672/%2f" "$@"

server=/usr/lib/rabbitmq/bin/rabbitmq-server
need_package "$server" rabbitmq-server
dir="$(mktemp -d -t mq-rabbitmq.XXXXXX)"
port="$(free_port)"
node="mqinfra$$@localhost"
stop() {
    HOME="$dir" /usr/lib/rabbitmq/bin/rabbitmqctl -n "$node" shutdown >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
}
echo '[].' >"$dir/enabled_plugins"
HOME="$dir" RABBITMQ_NODENAME="$node" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$port" \
    RABBITMQ_DIST_PORT="$(free_port)" RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" RABBITMQ_CONFIG_FILE="$dir/rabbitmq" \
    "$server" >"$dir/server.log" 2>&1 &
pid=$!
trap stop EXIT
wait_for 127.0.0.1 "$port" 60 "RabbitMQ" || { tail -20 "$dir/server.log" >&2; exit 1; }
echo "infra: started RabbitMQ on 127.0.0.1:$port" >&2
RABBITMQ_URL="amqp://guest:guest@127.0.0.1:$port/%2f" "$@"
