#!/usr/bin/env bash
# infra/moto.sh COMMAND...: runs COMMAND with AWS_ENDPOINT_URL naming a DynamoDB endpoint that
# answers, and dummy credentials and a region unless some are set.
# Uses the endpoint at AWS_ENDPOINT_URL when it answers; otherwise (or with MQ_INFRA_OWN=1) runs
# moto's server (PyPI `moto[server]`, installed once into a virtualenv in a cache outside the
# clone, keyed by version) on a free port of 127.0.0.1, and stops it afterwards. moto keeps its
# state in memory: a test makes its own table name per run.
#
# infra/moto.sh --hold: prints AWS_ENDPOINT_URL on one line and an empty one after it (the
# other infra scripts' control-script line), and keeps the server until its standard input closes.
# infra/moto.sh --install: only installs moto (CI does it once, before the tests).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

version=5.2.5
venv="${MESSAGE_QUEUE_CACHE:-$HOME/.cache/message-queue}/moto-$version"

install_moto() {
    [ -x "$venv/bin/moto_server" ] && return 0
    echo "infra: installing moto $version into $venv (once)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet "moto[server]==$version" >&2
}

if [ "${1:-}" = --install ]; then
    install_moto
    exit 0
fi
if [ "${1:-}" = --hold ]; then
    set -- bash -c 'echo "$AWS_ENDPOINT_URL"; echo; exec cat >/dev/null'
fi

export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
export AWS_REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-$AWS_REGION}"
if [ -n "${AWS_ENDPOINT_URL:-}" ]; then
    run_on_answering AWS_ENDPOINT_URL "$AWS_ENDPOINT_URL" "$@"
fi

install_moto
dir="$(mktemp -d -t mq-moto.XXXXXX)"
port="$(free_port)"
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/server.log" 2>&1 &
stop_at_exit $! "$dir"
wait_for 127.0.0.1 "$port" 60 "moto's server" || { tail -20 "$dir/server.log" >&2; exit 1; }
echo "infra: started moto $version on 127.0.0.1:$port" >&2
AWS_ENDPOINT_URL="http://127.0.0.1:$port" "$@"
