#!/usr/bin/env bash
# The project-owned Redis: Celery broker, channel layer and cache.
#
#   scripts/redis.sh start    start it, or adopt one that already answers
#   scripts/redis.sh stop     stop it, if the pidfile names our redis-server
#   scripts/redis.sh status   exit 0 when it answers, 3 when not
#
# Loopback only, port 6399 (beside any system Redis on 6379), no persistence:
# everything in it is either short-lived or rebuilt from the database.
# No password by default: sandboxes never reach the host's loopback (nor any
# other host address: the engine's firewall), and the cache holds no pickle.
# With PLAYGROUND_REDIS_PASSWORD (or _FILE) set, as settings.py reads it, the
# server requires it (given on stdin, never on a command line).
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PIDFILE="$REDIS_DIR/redis.pid"
LOGFILE="$REDIS_DIR/redis.log"

REDIS_PASSWORD="${PLAYGROUND_REDIS_PASSWORD:-}"
if [ -z "$REDIS_PASSWORD" ] && [ -n "${PLAYGROUND_REDIS_PASSWORD_FILE:-}" ]; then
    REDIS_PASSWORD="$(cat "$PLAYGROUND_REDIS_PASSWORD_FILE")" || die "redis: cannot read $PLAYGROUND_REDIS_PASSWORD_FILE"
fi
if [ -n "$REDIS_PASSWORD" ]; then
    export REDISCLI_AUTH="$REDIS_PASSWORD"   # redis-cli's way, off its command line
fi

answers() {
    [ "$(timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]
}

our_pid() {
    local pid
    pid="$(cat "$PIDFILE" 2>/dev/null)" || return 1
    pid_is redis-server "$pid" ":$REDIS_PORT" || return 1
    printf '%s\n' "$pid"
}

start() {
    with_lock redis
    if answers; then
        say "redis: running (reused) on 127.0.0.1:$REDIS_PORT"
        return 0
    fi
    command -v redis-server >/dev/null || die "redis: redis-server is missing (apt-get install redis-server, or run scripts/setup.sh)"
    mkdir -p "$REDIS_DIR"
    rm -f "$PIDFILE"
    # --daemonize forks once the server is set up; `detached` keeps our lock
    # and pipes out of it.
    # The configuration's first lines come from stdin ("-"): the password, if any.
    local config=""
    if [ -n "$REDIS_PASSWORD" ]; then
        config="requirepass \"${REDIS_PASSWORD//\"/\\\"}\""
    fi
    detached redis-server - \
        --bind 127.0.0.1 --port "$REDIS_PORT" \
        --daemonize yes \
        --dir "$REDIS_DIR" --pidfile "$PIDFILE" --logfile "$LOGFILE" \
        --save "" --appendonly no --databases 64 \
        <<<"$config" >/dev/null 2>&1 &
    wait $! || true
    local deadline=$((SECONDS + 10))
    until answers; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            printf -- '--- last lines of %s ---\n' "$LOGFILE" >&2
            tail -n 15 "$LOGFILE" >&2 || true
            die "redis: redis-server did not answer on 127.0.0.1:$REDIS_PORT within 10s"
        fi
        sleep 0.1
    done
    say "redis: started (pid $(cat "$PIDFILE" 2>/dev/null || echo '?')) on 127.0.0.1:$REDIS_PORT"
    note_started redis
}

stop() {
    with_lock redis
    local pid
    if ! pid="$(our_pid)"; then
        if answers; then
            say "redis: the server on 127.0.0.1:$REDIS_PORT is not ours (no matching pidfile); leaving it"
        else
            say "redis: not running"
        fi
        return 0
    fi
    say "redis: stopping pid $pid"
    kill -TERM "$pid"
    if ! wait_gone 15 "$pid"; then
        warn "redis: pid $pid still alive after 15s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    say "redis: stopped"
}

status() {
    local pid
    if answers; then
        if pid="$(our_pid)"; then
            echo "redis: running (pid $pid) on 127.0.0.1:$REDIS_PORT"
        else
            echo "redis: answering on 127.0.0.1:$REDIS_PORT (not started through our pidfile)"
        fi
        return 0
    fi
    echo "redis: not running"
    return 3
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
