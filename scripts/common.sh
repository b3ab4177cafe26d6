# shellcheck shell=bash disable=SC2034  # (variables used by the scripts sourcing this)
# Shared by the scripts in this folder; sourced, never run.
#
# Every path the scripts use is here, so the state layout documented in
# docs/operations.md has a single source.

# Daemons started by the scripts need the sbin directories (iptables, modprobe,
# useradd for dockerd's --userns-remap) even when the caller's PATH lacks them.
case ":$PATH:" in
    *:/usr/sbin:*) ;;
    *) PATH="/usr/local/sbin:/usr/sbin:/sbin:$PATH" ;;
esac
export PATH

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${PLAYGROUND_STATE_DIR:-/var/lib/playground}"
RUN_DIR="${PLAYGROUND_RUN_DIR:-/run/playground}"
LOCK_DIR="$RUN_DIR/locks"

ENGINE_SOCKET_PATH="$RUN_DIR/docker.sock"
ENGINE_PIDFILE="$RUN_DIR/docker.pid"
ENGINE_EXEC_ROOT="$RUN_DIR/exec"
ENGINE_DATA_ROOT="$STATE_DIR/engine"
# The engine's data root on btrfs (hard per-sandbox disk limits, engine.sh):
# a sparse loop file, mounted at its own path. ENGINE_DATA_ROOT above is the
# overlay2 data root of a kernel without btrfs (and of older installs).
ENGINE_DISK_FILE="$STATE_DIR/engine-btrfs.img"
ENGINE_BTRFS_ROOT="$STATE_DIR/engine-btrfs"
ENGINE_LOG="$STATE_DIR/engine.log"
# The engine's TLS certificates when it serves TCP (PLAYGROUND_ENGINE_TLS_LISTEN):
# ca.pem cert.pem key.pem, as scripts/lab-host-certs.sh makes them.
ENGINE_TLS_DIR="${PLAYGROUND_ENGINE_TLS_DIR:-$STATE_DIR/engine-tls}"
# The engine the images are built into and the tools talk to; any Docker host
# URL works (tcp:// with DOCKER_TLS_VERIFY/DOCKER_CERT_PATH for a TLS engine).
ENGINE_URL="${PLAYGROUND_ENGINE_SOCKET:-unix://$ENGINE_SOCKET_PATH}"

REDIS_PORT="${PLAYGROUND_REDIS_PORT:-6399}"
REDIS_DIR="$STATE_DIR/redis"

# The project's own PostgreSQL cluster (scripts/postgres.sh): never a system one.
POSTGRES_PORT="${PLAYGROUND_POSTGRES_PORT:-5439}"
POSTGRES_DIR="$STATE_DIR/postgres"
POSTGRES_DATA="$POSTGRES_DIR/data"
POSTGRES_PASSWORD_FILE="$POSTGRES_DIR/password"
POSTGRES_SOCKET_DIR="$RUN_DIR/postgres"

# Prefer Debian's CLI (it matches the 20.10 engine), else whatever is on PATH.
if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi

# Progress lines never fail the script: a closed output (a pager or tee that
# took the Ctrl-C) must not stop a shutdown half-way.
say() { printf '==> %s\n' "$*" 2>/dev/null || true; }
warn() { printf 'warning: %s\n' "$*" >&2 2>/dev/null || true; }
die() { printf 'error: %s\n' "$*" >&2 2>/dev/null || true; exit 1; }

need_root() {
    [ "$(id -u)" -eq 0 ] || die "$(basename "$0") must run as root (it manages daemons and /run/playground)"
}

# Serialise a critical section across engineers running the scripts at once:
# `with_lock NAME` takes an exclusive lock held until the calling shell exits.
with_lock() {
    mkdir -p "$LOCK_DIR"
    local fd
    exec {fd}>"$LOCK_DIR/$1.lock"
    flock "$fd"
}

# `pid_is CMD PID ARG`: PID is alive, runs the program CMD, and its command
# line contains ARG. Guards every kill against a recycled pid.
pid_is() {
    local want="$1" pid="$2" arg="$3" cmdline
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/cmdline" ] || return 1
    cmdline="$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" || return 1
    case "$cmdline" in
        *"$want"*"$arg"*) return 0 ;;
        *) return 1 ;;
    esac
}

# Replace this (background) shell with a daemon that has none of our file
# descriptors beyond 0-2, in a session of its own: a daemon that inherited a
# lock or a caller's pipe would hold it for its whole life (and so would every
# process it starts). Use as `detached CMD... &`: $! is then the daemon's pid.
detached() {
    local fd
    for fd in /proc/"$BASHPID"/fd/*; do
        fd="${fd##*/}"
        if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec setsid "$@"
}

# Tell scripts/run.sh that this run started a daemon (so it stops it on exit).
note_started() {
    if [ -n "${PLAYGROUND_STARTED_FILE:-}" ]; then
        printf '%s\n' "$1" >> "$PLAYGROUND_STARTED_FILE"
    fi
}

# Wait up to $1 seconds for PID $2 to exit.
wait_gone() {
    local deadline=$((SECONDS + $1))
    while kill -0 "$2" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# The Debian mirror this machine's apt uses (its sources), for debootstrap:
# the repository names no mirror of its own. PLAYGROUND_DEBIAN_MIRROR wins;
# a machine whose sources name no Debian archive (Ubuntu) must set it.
debian_mirror() {
    if [ -n "${PLAYGROUND_DEBIAN_MIRROR:-}" ]; then
        printf '%s\n' "${PLAYGROUND_DEBIAN_MIRROR%/}"
        return 0
    fi
    local uri
    uri="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
        awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }')"
    if [ -z "$uri" ]; then
        uri="$(grep -hE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\/.*\/debian\/?$/) { print $i; exit } }')"
    fi
    [ -n "$uri" ] || die "no Debian archive in this machine's apt sources: set PLAYGROUND_DEBIAN_MIRROR to a Debian mirror"
    printf '%s\n' "${uri%/}"
}
