#!/usr/bin/env bash
# The project-owned PostgreSQL: the database of the concurrency test tier and
# of the whole-stack smoke run, and of `make up` when PLAYGROUND_DATABASE=postgres.
#
#   scripts/postgres.sh start    start it (initdb the first time), or adopt one that answers
#   scripts/postgres.sh stop     stop it, if the pidfile names our postgres
#   scripts/postgres.sh status   exit 0 when it answers, 3 when not
#   scripts/postgres.sh url      print the DATABASE_URL of its `playground` database
#
# A cluster of its own under $STATE_DIR/postgres (Debian's PostgreSQL 15
# binaries, run as the `postgres` user since initdb refuses root), on
# 127.0.0.1:5439 (PLAYGROUND_POSTGRES_PORT) and a socket in $RUN_DIR/postgres;
# a system cluster (5432, /var/lib/postgresql) is never touched. The role
# `playground` (password in $STATE_DIR/postgres/password, 0600) owns the
# database `playground` and may create databases: the tests make throwaway ones.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

LOGFILE="$POSTGRES_DIR/postgres.log"
PIDFILE="$POSTGRES_DATA/postmaster.pid"
ROLE=playground
DATABASE=playground

# Debian's 15 when there, else whichever major version is installed.
pg_bin() {
    local dir
    for dir in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/psql" ]; then
            printf '%s\n' "$dir"
            return 0
        fi
    done
    return 1
}

password() { cat "$POSTGRES_PASSWORD_FILE" 2>/dev/null; }

url() {
    local pw
    pw="$(password)" || die "postgres: no password file $POSTGRES_PASSWORD_FILE (run scripts/postgres.sh start first)"
    printf 'postgres://%s:%s@127.0.0.1:%s/%s\n' "$ROLE" "$pw" "$POSTGRES_PORT" "$DATABASE"
}

answers() {
    local bin
    bin="$(pg_bin)" || return 1
    timeout 5 "$bin/pg_isready" -q -h 127.0.0.1 -p "$POSTGRES_PORT" -t 3 >/dev/null 2>&1
}

# Our role logs in to our database over TCP, as the playground will.
logs_in() {
    local bin pw
    bin="$(pg_bin)" || return 1
    pw="$(password)" || return 1
    [ "$(PGPASSWORD="$pw" PGCONNECT_TIMEOUT=3 timeout 10 "$bin/psql" -h 127.0.0.1 -p "$POSTGRES_PORT" \
        -U "$ROLE" -d "$DATABASE" -qAtX -c 'SELECT 1' 2>/dev/null)" = 1 ]
}

our_pid() {
    local pid
    pid="$(head -n 1 "$PIDFILE" 2>/dev/null)" || return 1
    pid_is postgres "$pid" "$POSTGRES_DATA" || return 1
    printf '%s\n' "$pid"
}

# The postgres user's commands run from / (it may not read the caller's directory).
as_postgres() { (cd / && runuser -u postgres -- "$@"); }

show_log() {
    printf -- '--- last lines of %s ---\n' "$1" >&2
    tail -n 15 "$1" >&2 || true
}

init_cluster() {
    local bin="$1"
    if [ -f "$POSTGRES_DATA/PG_VERSION" ]; then
        return 0
    fi
    say "postgres: initdb $POSTGRES_DATA"
    rm -rf "$POSTGRES_DATA"  # a half-made one from an interrupted initdb
    mkdir -p "$POSTGRES_DATA"
    chown postgres:postgres "$POSTGRES_DATA"
    chmod 700 "$POSTGRES_DATA"
    # Peer authentication on the socket (the postgres user only: it sets the
    # role up), passwords on TCP; UTF-8 whatever the caller's locale.
    if ! as_postgres "$bin/initdb" -D "$POSTGRES_DATA" -U postgres --auth-local=peer \
            --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 --no-instructions \
            > "$POSTGRES_DIR/initdb.log" 2>&1; then
        show_log "$POSTGRES_DIR/initdb.log"
        rm -rf "$POSTGRES_DATA"
        die "postgres: initdb failed (full log: $POSTGRES_DIR/initdb.log)"
    fi
}

# The role and database the playground uses, with the password of our file.
ensure_role() {
    local bin="$1"
    {
        cat <<'SQL'
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'playground') THEN
        CREATE ROLE playground LOGIN CREATEDB;
    END IF;
END $$;
SELECT 'CREATE DATABASE playground OWNER playground'
    WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'playground')\gexec
SQL
        # On standard input, never on a command line (ps would show it).
        printf "ALTER ROLE playground WITH LOGIN CREATEDB PASSWORD '%s';\n" "$(password)"
    } | as_postgres "$bin/psql" -h "$POSTGRES_SOCKET_DIR" -p "$POSTGRES_PORT" -d postgres \
            -qAtX -v ON_ERROR_STOP=1 >/dev/null \
        || die "postgres: could not set up the role and database $ROLE"
}

start() {
    need_root
    with_lock postgres
    if answers && logs_in; then
        say "postgres: running (reused) on 127.0.0.1:$POSTGRES_PORT"
        return 0
    fi
    local bin
    bin="$(pg_bin)" || die "postgres: PostgreSQL is missing (apt-get install postgresql, or run scripts/setup.sh)"
    id postgres >/dev/null 2>&1 || die "postgres: no 'postgres' user (Debian's postgresql package makes it)"
    mkdir -p "$POSTGRES_DIR"
    chmod 755 "$POSTGRES_DIR"
    if [ ! -s "$POSTGRES_PASSWORD_FILE" ]; then
        (umask 077 && od -An -tx1 -N24 /dev/urandom | tr -d ' \n' > "$POSTGRES_PASSWORD_FILE")
    fi
    if answers; then
        # Ours, with a role that lost its password or its database: set them up again.
        our_pid >/dev/null || die "postgres: something else answers on 127.0.0.1:$POSTGRES_PORT" \
            "(no pidfile of ours, and our role cannot log in); stop it or set PLAYGROUND_POSTGRES_PORT"
        ensure_role "$bin"
        say "postgres: running (reused, role $ROLE set up again) on 127.0.0.1:$POSTGRES_PORT"
        return 0
    fi
    init_cluster "$bin"
    mkdir -p "$POSTGRES_SOCKET_DIR"
    chown postgres:postgres "$POSTGRES_SOCKET_DIR"
    touch "$LOGFILE"
    chown postgres:postgres "$LOGFILE"
    # Settings on the command line, so the port follows PLAYGROUND_POSTGRES_PORT.
    # Loopback only. synchronous_commit=off: a crash may lose the last commits
    # (not corrupt anything), and tests commit a lot.
    local options="-c listen_addresses=127.0.0.1 -c port=$POSTGRES_PORT"
    options+=" -c unix_socket_directories=$POSTGRES_SOCKET_DIR -c synchronous_commit=off"
    # `detached` keeps our lock and pipes out of the server; pg_ctl -w returns
    # once it accepts connections.
    detached runuser -u postgres -- "$bin/pg_ctl" -D "$POSTGRES_DATA" -l "$LOGFILE" -o "$options" \
        -w -t 30 start </dev/null >>"$POSTGRES_DIR/pg_ctl.log" 2>&1 &
    wait $! || true
    local deadline=$((SECONDS + 30))
    until answers; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            show_log "$LOGFILE"
            die "postgres: the server did not answer on 127.0.0.1:$POSTGRES_PORT within 30s"
        fi
        sleep 0.2
    done
    ensure_role "$bin"
    logs_in || die "postgres: role $ROLE cannot log in to 127.0.0.1:$POSTGRES_PORT/$DATABASE (see $LOGFILE)"
    say "postgres: started (pid $(our_pid || echo '?')) on 127.0.0.1:$POSTGRES_PORT"
    note_started postgres
}

stop() {
    need_root
    with_lock postgres
    local pid
    if ! pid="$(our_pid)"; then
        if answers; then
            say "postgres: the server on 127.0.0.1:$POSTGRES_PORT is not ours (no matching pidfile); leaving it"
        else
            say "postgres: not running"
        fi
        return 0
    fi
    say "postgres: stopping pid $pid"
    # SIGINT is PostgreSQL's fast shutdown: sessions are ended, data is safe.
    kill -INT "$pid"
    if ! wait_gone 30 "$pid"; then
        warn "postgres: pid $pid still alive after 30s; immediate shutdown"
        kill -QUIT "$pid" 2>/dev/null || true
        wait_gone 10 "$pid" || kill -KILL "$pid" 2>/dev/null || true
    fi
    say "postgres: stopped"
}

status() {
    local pid
    if answers; then
        if pid="$(our_pid)"; then
            echo "postgres: running (pid $pid) on 127.0.0.1:$POSTGRES_PORT"
        else
            echo "postgres: answering on 127.0.0.1:$POSTGRES_PORT (not started through our pidfile)"
        fi
        return 0
    fi
    echo "postgres: not running"
    return 3
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    url) url ;;
    *) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
