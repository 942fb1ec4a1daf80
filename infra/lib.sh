# Shared by the infra scripts: free ports, waiting for a port, Debian packages.
# Sourced, not run.

# A TCP port nobody listens on now, on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# answers HOST PORT: true when something accepts a connection there within a second.
answers() {
    timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

# wait_for HOST PORT SECONDS WHAT: waits until HOST:PORT answers, or fails.
wait_for() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        answers "$1" "$2" && return 0
        sleep 0.1
    done
    echo "$4 did not answer on $1:$2 within $3 s" >&2
    return 1
}

# need_package COMMAND PACKAGE: installs PACKAGE from Debian when COMMAND is missing.
need_package() {
    [ -x "$1" ] || command -v "$1" >/dev/null 2>&1 && return 0
    echo "installing Debian package $2" >&2
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >&2
}

# host_port URL: "host port" of scheme://user:password@host:port/path, or of host:port.
host_port() {
    local rest="${1#*://}"
    rest="${rest##*@}"
    rest="${rest%%/*}"
    echo "${rest%:*} ${rest##*:}"
}

# run_on_answering VAR DEFAULT COMMAND...: when the server at $VAR (else DEFAULT) answers and
# MQ_INFRA_OWN is not 1, runs COMMAND in this process's place with VAR naming it; otherwise returns,
# and the caller starts a server of its own.
run_on_answering() {
    local var="$1" url="${!1:-$2}" host port
    shift 2
    read -r host port <<<"$(host_port "$url")"
    if [ "${MQ_INFRA_OWN:-0}" != 1 ] && answers "$host" "$port"; then
        export "$var=$url"
        exec "$@"
    fi
}

# stop_at_exit PID DIR: when the script exits, stops the server PID (SIGTERM, then waits for it)
# and removes its directory DIR.
stop_at_exit() {
    _server_pid="$1" _server_dir="$2"
    trap 'kill "$_server_pid" 2>/dev/null || true; wait "$_server_pid" 2>/dev/null || true; rm -rf "$_server_dir"' EXIT
}
