#!/usr/bin/env bash
# infra/postgres.sh COMMAND...: runs COMMAND with MQ_POSTGRES_URL naming a PostgreSQL server.
# Uses the server at MQ_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres) when it
# answers; otherwise (or with MQ_INFRA_OWN=1) starts its own with initdb and pg_ctl, on a free
# port of 127.0.0.1 in a temporary directory (installing Debian's package when the binaries are
# missing), and stops it and removes the directory afterwards. With its own server COMMAND also
# gets MQ_POSTGRES_CTL, a pg_ctl for that server (`"$MQ_POSTGRES_CTL" stop -m fast`, `... start`).
#
# infra/postgres.sh --hold: prints the URL on one line and MQ_POSTGRES_CTL on the next (empty for
# a server that answered), and keeps the server until its standard input closes (how the test
# suites get a server: they hold the pipe while they run).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if [ "${1:-}" = --hold ]; then
    set -- bash -c 'echo "$MQ_POSTGRES_URL"; echo "${MQ_POSTGRES_CTL:-}"; exec cat >/dev/null'
fi
run_on_answering MQ_POSTGRES_URL "postgres://postgres@127.0.0.1:5432/postgres" "$@"

newest_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
if [ -z "$(newest_bin)" ]; then
    need_package /usr/lib/postgresql/none/bin/initdb postgresql
fi
bin="$(newest_bin)"
dir="$(mktemp -d -t mq-postgres.XXXXXX)"
port="$(free_port)"
# initdb refuses to run as root: the server then runs as Debian's postgres user.
as=()
if [ "$(id -u)" = 0 ]; then
    chown postgres "$dir"
    as=(runuser -u postgres --)
fi
"${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
CONF
cat >"$dir/ctl" <<CTL
#!/bin/sh
exec ${as[*]} "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w "\$@"
CTL
chmod 755 "$dir/ctl"
stop() {
    "$dir/ctl" stop -m fast >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap stop EXIT
"$dir/ctl" start >/dev/null || { tail -20 "$dir/server.log" >&2; exit 1; }
echo "infra: started PostgreSQL $("$bin/postgres" --version | grep -oE "[0-9]+\.[0-9]+" | head -1) on 127.0.0.1:$port" >&2
MQ_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres" MQ_POSTGRES_CTL="$dir/ctl" "$@"
