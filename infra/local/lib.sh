# Process bookkeeping shared by up.sh and down.sh (sourced, not run).
# Each service runs in its own session, so its process group id is the pid in its pid
# file, and stopping the group stops the children it forked, and nothing else. A pid
# file holds "PID STARTTIME"; the start time (field 22 of /proc/PID/stat) tells our
# process from a later one that reuses the pid.

# proc_start PID: the kernel's start time of PID, empty when PID does not exist.
proc_start() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
    stat="${stat##*) }"
    awk '{print $20}' <<<"$stat"
}

# record_pid PIDFILE PID
record_pid() { echo "$2 $(proc_start "$2")" >"$1"; }

# group_alive PIDFILE: true while any process of the recorded group runs. A live process
# with the recorded pid but another start time is someone else's: not ours, not alive.
# (Linux never hands out a pid that is still some group's id, so group members are ours.)
group_alive() {
    local pid start now
    read -r pid start <"$1" || return 1
    now="$(proc_start "$pid")"
    [[ -n "$now" && "$now" != "$start" ]] && return 1
    kill -0 -- "-$pid" 2>/dev/null
}

# wait_gone PIDFILE SECONDS: true once the group has exited, false if time runs out.
wait_gone() {
    local end=$((SECONDS + $2))
    while group_alive "$1"; do
        ((SECONDS < end)) || return 1
        sleep 0.2
    done
}

# stop_group PIDFILE SECONDS: SIGTERM to the group's leader (a graceful shutdown: Celery
# finishes or hands back its task), then SIGTERM to the rest of the group, then SIGKILL.
stop_group() {
    local pid start
    read -r pid start <"$1" || return 0
    group_alive "$1" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$1" "$2" && return 0
    kill -TERM -- "-$pid" 2>/dev/null || true
    wait_gone "$1" 5 && return 0
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait_gone "$1" 5
}
