#!/usr/bin/env bash
# Run the playground in the foreground (what `make up` runs after setup):
# Daphne (HTTP + WebSocket), a Celery worker, Celery beat and the engine
# watcher (manage.py watch_engines), their output interleaved with a prefix
# per process.
#
# Ctrl-C (or SIGTERM) stops them all; a second Ctrl-C kills them at once.
# If one of them dies, the others are stopped and this exits non-zero.
# Daemons that the preceding setup started for this run (names listed in
# $PLAYGROUND_STARTED_FILE: engine, redis, registry, postgres) are stopped on the way out too.
#
#   PLAYGROUND_BIND  address Daphne listens on (default 127.0.0.1)
#   PLAYGROUND_PORT  its port (default 8000)
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

VENV="$REPO_ROOT/.venv"
BIND="${PLAYGROUND_BIND:-127.0.0.1}"
PORT="${PLAYGROUND_PORT:-8000}"
STOP_TIMEOUT=20

cd "$REPO_ROOT"
[ -x "$VENV/bin/daphne" ] || die "run: $VENV has no daphne; run scripts/setup.sh first (or make up)"
mkdir -p "$STATE_DIR"
export PYTHONUNBUFFERED=1

names=()
pids=()

# `spawn NAME CMD...`: run CMD in the background, each output line prefixed.
spawn() {
    local name="$1"
    shift
    # The prefixer ignores Ctrl-C so the processes' last words still get out.
    "$@" > >(trap '' INT TERM; exec sed -u "s/^/$(printf '%-7s' "$name")| /") 2>&1 &
    pids+=("$!")
    names+=("$name")
}

log() { printf '%-7s| %s\n' run "$*" 2>/dev/null || true; }

name_of() {
    local i
    for i in "${!pids[@]}"; do
        if [ "${pids[$i]}" = "$1" ]; then printf '%s\n' "${names[$i]}"; return; fi
    done
    printf 'pid %s\n' "$1"
}

stop_owned_daemons() {
    local file="${PLAYGROUND_STARTED_FILE:-}"
    [ -n "$file" ] && [ -f "$file" ] || return 0
    # Stop what setup started for this run, in reverse order of need.
    if grep -qx postgres "$file"; then "$REPO_ROOT/scripts/postgres.sh" stop || true; fi
    if grep -qx registry "$file"; then "$REPO_ROOT/scripts/registry.sh" stop || true; fi
    if grep -qx redis "$file"; then "$REPO_ROOT/scripts/redis.sh" stop || true; fi
    if grep -qx engine "$file"; then "$REPO_ROOT/scripts/engine.sh" stop || true; fi
    rm -f "$file"
}

force=0
shutdown() {
    local rc="$1" pid deadline
    trap 'force=1; log "killing"' INT
    trap '' TERM HUP
    log "stopping ${names[*]}"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    deadline=$((SECONDS + STOP_TIMEOUT))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null; do
            if [ "$force" = 1 ] || [ "$SECONDS" -ge "$deadline" ]; then
                log "$(name_of "$pid") did not stop; killing it"
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.2
        done
    done
    wait 2>/dev/null || true
    stop_owned_daemons
    exit "$rc"
}
trap '' PIPE
trap 'shutdown 130' INT
trap 'shutdown 143' TERM
trap 'shutdown 129' HUP

log "playground at http://$BIND:$PORT/ (Ctrl-C stops it)"
spawn web "$VENV/bin/daphne" -b "$BIND" -p "$PORT" playground.asgi:application
spawn worker "$VENV/bin/celery" -A playground worker --pool threads --concurrency 16 -l info
spawn beat "$VENV/bin/celery" -A playground beat -l info -s "$STATE_DIR/celerybeat-schedule"
# Holds each lab host's event stream: an instance that dies says so at once.
spawn watcher "$VENV/bin/python" manage.py watch_engines

died=""
status=0
wait -n -p died "${pids[@]}" || status=$?
log "$(name_of "$died") exited with status $status; stopping the rest"
shutdown 1
