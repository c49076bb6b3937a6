#!/usr/bin/env bash
# Stop the local stack that infra/local/up.sh started from the same folder: exactly the
# process groups recorded in its pid files (worker and API first, then the stores),
# nothing else. Logs and data stay for inspection unless --purge is given.
#
#   infra/local/down.sh [--dir DIR] [--timeout SECONDS] [--purge]
#
# --timeout is how long each service gets to shut down gracefully after SIGTERM
# (a Celery worker finishes or hands back its task) before it is killed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="$here/.run"
timeout=30
purge=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dir) dir="$2"; shift 2 ;;
        --timeout) timeout="$2"; shift 2 ;;
        --purge) purge=1; shift ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "down.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
# shellcheck source=infra/local/lib.sh
source "$here/lib.sh"

if [[ ! -d "$dir/pids" ]]; then
    echo "down.sh: no stack recorded in $dir (nothing to stop)"
    exit 0
fi
status=0
for name in worker api s3 redis; do
    pidfile="$dir/pids/$name.pid"
    [[ -e "$pidfile" ]] || continue
    if ! group_alive "$pidfile"; then
        echo "$name was not running"
    elif started=$SECONDS && stop_group "$pidfile" "$timeout"; then
        echo "stopped $name ($((SECONDS - started)) s)"
    else
        echo "down.sh: could not stop $name (pid $(cut -d' ' -f1 "$pidfile"))" >&2
        status=1
        continue
    fi
    rm -f "$pidfile"
done
leftover=("$dir"/pids/*.pid)
if [[ -e "${leftover[0]}" ]]; then
    echo "down.sh: unexpected pid files left in $dir/pids: ${leftover[*]}" >&2
    status=1
fi
if [[ $status -eq 0 && $purge -eq 1 ]]; then
    rm -rf "$dir"
    echo "removed $dir"
fi
exit $status
