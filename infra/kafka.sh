#!/usr/bin/env bash
# infra/kafka.sh COMMAND...: runs COMMAND with KAFKA_BROKERS naming a Kafka-protocol broker.
# Uses the broker at KAFKA_BROKERS (default 127.0.0.1:9092) when it answers; otherwise (or with
# MQ_INFRA_OWN=1) runs its own: the tansu broker (installed once with cargo into a cache outside
# the clone, keyed by version), on a free port of 127.0.0.1, storing in SQLite in a temporary
# directory, and stops it and removes the directory afterwards. With its own broker COMMAND
# also gets MQ_KAFKA_CTL, a script that kills the broker with SIGKILL (`"$MQ_KAFKA_CTL" kill`)
# and starts it again on the same port and storage (`"$MQ_KAFKA_CTL" start`).
#
# infra/kafka.sh --hold: prints KAFKA_BROKERS on one line and MQ_KAFKA_CTL on the next (empty
# for a broker that answered), and keeps the broker until its standard input closes.
# infra/kafka.sh --install: only installs the broker (CI does it once, before the tests).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

version=0.6.0
cache="${MESSAGE_QUEUE_CACHE:-$HOME/.cache/message-queue}/tansu-$version"
tansu="$cache/bin/tansu"

install_tansu() {
    [ -x "$tansu" ] && return 0
    echo "infra: installing the tansu broker $version into $cache (once; 10 to 16 minutes)" >&2
    # Its own target directory, so the build never touches the project's.
    CARGO_TARGET_DIR="$cache/build" cargo install --quiet --locked tansu --version "$version" \
        --features libsql --root "$cache" >&2
    rm -rf "$cache/build"
}

if [ "${1:-}" = --install ]; then
    install_tansu
    exit 0
fi
if [ "${1:-}" = --hold ]; then
    set -- bash -c 'echo "$KAFKA_BROKERS"; echo "${MQ_KAFKA_CTL:-}"; exec cat >/dev/null'
fi
run_on_answering KAFKA_BROKERS "127.0.0.1:9092" "$@"

install_tansu
dir="$(mktemp -d -t mq-kafka.XXXXXX)"
port="$(free_port)"
cat >"$dir/ctl" <<CTL
#!/usr/bin/env bash
# kill: SIGKILL the broker; start: start it again on port $port with the same storage.
set -euo pipefail
cd "$dir"
case "\$1" in
    kill)
        [ -f broker.pid ] && kill -9 "\$(cat broker.pid)" 2>/dev/null || true
        while [ -f broker.pid ] && kill -0 "\$(cat broker.pid)" 2>/dev/null; do sleep 0.05; done
        rm -f broker.pid ;;
    start)
        "$tansu" broker \\
            --storage-engine "sqlite://tansu.db" \\
            --listener-url "tcp://127.0.0.1:$port" \\
            --advertised-listener-url "tcp://127.0.0.1:$port" \\
            --cluster-id mq-local >>broker.log 2>&1 &
        echo \$! >broker.pid
        . "$(cd "$(dirname "$0")" && pwd)/lib.sh"
        wait_for 127.0.0.1 $port 30 "the tansu broker" || { tail -20 broker.log >&2; exit 1; }
        # tansu 0.6 reads each fetched record's headers with a query its schema has no index
        # for (a scan of every header per record); the index makes fetches of long partitions
        # take milliseconds, not minutes. Answers are unchanged (docs/kafka.md).
        python3 -c "import sqlite3; sqlite3.connect('tansu.db', timeout=30).execute('create index if not exists header_by_record on header (topition, offset_id)')" ;;
    *) echo "usage: \$0 kill|start" >&2; exit 2 ;;
esac
CTL
chmod 755 "$dir/ctl"
stop() {
    "$dir/ctl" kill >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap stop EXIT
"$dir/ctl" start
echo "infra: started the tansu broker $version on 127.0.0.1:$port" >&2
KAFKA_BROKERS="127.0.0.1:$port" MQ_KAFKA_CTL="$dir/ctl" "$@"
