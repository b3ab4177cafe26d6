#!/usr/bin/env bash
# Bring this machine to a working playground: system packages, the Python
# environment, the lab-host engine, Redis, the sandbox images, the registry
# mirror and the database.
#
# Idempotent and quick when nothing changed (every step checks first), so
# `make up` and `make test` run it every time. Needs root (Debian 12).
# `setup.sh tools` stops after the packages and the venv: what `make lint`
# needs (.ci/run lints first, before any engine or service is started).
#
# Bring your own parts through the environment:
#   PLAYGROUND_LAB_HOSTS    set: no local engine is started (images are then
#                           built only into PLAYGROUND_ENGINE_SOCKET, if set)
#   REDIS_URL               set: no local Redis is started
#   PLAYGROUND_DATABASE     sqlite (default) or postgres: the project's own
#                           PostgreSQL is started, migrated, and what
#                           `make up` runs on (unless DATABASE_URL is set)
#   PLAYGROUND_POSTGRES     on: start the project's PostgreSQL anyway, the
#                           playground staying on SQLite (`make test` sets it
#                           for the concurrency tier)
#   PLAYGROUND_APP_IMAGES   on: also build the images of docker-compose.yml
#                           (scripts/build-app-images.sh; `make test` sets it
#                           for tests/compose)
#   PLAYGROUND_STARTED_FILE a file that engine.sh/redis.sh append "engine" or
#                           "redis" to when they start one (scripts/run.sh
#                           stops those on exit; `make up` sets it)
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# ---- Debian packages ---------------------------------------------------------
# What the quick start, the tests and CI need on a bare Debian 12 machine.
BASE_PACKAGES=(
    docker.io             # dockerd 20.10 + containerd + runc: the lab-host engine
    crun                  # the runtime Docker-in-instance images use inside
    docker-registry       # the lab registry mirror (scripts/registry.sh)
    redis-server          # broker, channel layer, cache (and redis-cli)
    docker-compose        # 1.29: the compose test tier runs docker-compose.yml
    python3-venv          # Debian's python3 makes the app image's wheels (build-app-images.sh)
    postgresql            # 15: the concurrency test tier's database (scripts/postgres.sh)
    debootstrap           # builds the sandbox images from Debian packages
    debian-archive-keyring
    uidmap                # subordinate id tools for --userns-remap
    iptables              # isolation between session networks
    btrfs-progs           # the engine's btrfs data root: hard disk limits per sandbox (engine.sh)
    tini                  # docker --init (PID 1 of every instance)
    gcc libc6-dev         # build the sandbox images' terminal relay (static)
    ca-certificates
    make
    nginx                 # the fault tier's proxy in front of two Daphnes (run by the tests, never as a service)
    shellcheck            # `make lint` checks the shell scripts with it
)
# The browser bundle (scripts/build-frontend.sh) needs node and npm; asked for
# only when they are not on PATH already (Debian's npm is a large install).
FRONTEND_PACKAGES=(nodejs npm)
# End-to-end browser tests: Playwright drives Debian's Chromium (~1 min to
# install on a bare machine).
E2E_PACKAGES=(chromium fonts-dejavu-core)

PYTHON="${PLAYGROUND_PYTHON:-python3}"
VENV="$REPO_ROOT/.venv"
# The runtime (requirements.txt, all the production image holds) and the test
# tools (requirements-dev.txt, which includes it): .venv runs both.
REQUIREMENTS="$REPO_ROOT/requirements.txt"
REQUIREMENTS_DEV="$REPO_ROOT/requirements-dev.txt"

need_root
cd "$REPO_ROOT"
t_start=$SECONDS

install_packages() {
    local wanted=("${BASE_PACKAGES[@]}" "${E2E_PACKAGES[@]}") missing=() p
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        wanted+=("${FRONTEND_PACKAGES[@]}")
    fi
    # A bare Debian has no venv module for its python3 (asked only while
    # there is no venv yet: a pyenv shim costs a third of a second).
    if ! "$VENV/bin/python" -c '' 2>/dev/null &&
            ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        wanted+=(python3 python3-venv)
        PYTHON=/usr/bin/python3
    fi
    for p in "${wanted[@]}"; do
        if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
            missing+=("$p")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        say "packages: all installed"
        return 0
    fi
    say "packages: installing ${missing[*]}"
    local t0=$SECONDS policy_added=0
    # We start our own daemons: keep the packages' init scripts from starting
    # a system dockerd, containerd or redis-server on install.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy_added=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    local rc=0
    {
        apt-get update -q || warn "apt-get update reported errors; trying the install anyway"
        apt-get install -y -q --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${missing[@]}"
    } > "$STATE_DIR/apt.log" 2>&1 || rc=$?
    if [ "$policy_added" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
    if [ "$rc" != 0 ]; then
        tail -n 25 "$STATE_DIR/apt.log" >&2
        die "packages: apt-get failed (full log: $STATE_DIR/apt.log)"
    fi
    say "packages: installed in $((SECONDS - t0))s"
}

setup_venv() {
    with_lock venv
    local want have
    want="$(cat "$REQUIREMENTS" "$REQUIREMENTS_DEV" | sha256sum | cut -d' ' -f1)"
    if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c '' 2>/dev/null; then
        warn "venv: $VENV/bin/python is broken (its Python went away?); recreating"
        rm -rf "$VENV"
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
            || die "venv: $PYTHON is older than 3.11 (set PLAYGROUND_PYTHON to a newer one)"
        say "venv: creating $VENV with $("$PYTHON" --version 2>&1)"
        "$PYTHON" -m venv "$VENV"
    fi
    have="$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)"
    if [ "$have" = "$want" ]; then
        say "venv: up to date"
        return 0
    fi
    local t0=$SECONDS
    say "venv: installing requirements.txt and requirements-dev.txt"
    if ! "$VENV/bin/pip" install --disable-pip-version-check -q -r "$REQUIREMENTS" -r "$REQUIREMENTS_DEV" > "$STATE_DIR/pip.log" 2>&1; then
        tail -n 25 "$STATE_DIR/pip.log" >&2
        die "venv: pip install failed (full log: $STATE_DIR/pip.log)"
    fi
    printf '%s\n' "$want" > "$VENV/.requirements.sha256"
    say "venv: installed in $((SECONDS - t0))s"
}

mkdir -p "$STATE_DIR"
install_packages
setup_venv

if [ "${1:-}" = tools ]; then
    say "setup: tools done in $((SECONDS - t_start))s (packages and venv only)"
    exit 0
fi

if [ -n "${PLAYGROUND_LAB_HOSTS:-}" ]; then
    say "engine: PLAYGROUND_LAB_HOSTS is set, using $PLAYGROUND_LAB_HOSTS (none started)"
else
    "$REPO_ROOT/scripts/engine.sh" start
fi

if [ -n "${REDIS_URL:-}" ]; then
    say "redis: REDIS_URL is set, using it (none started)"
else
    "$REPO_ROOT/scripts/redis.sh" start
fi

case "${PLAYGROUND_DATABASE:-sqlite}" in
    sqlite|postgres) ;;
    *) die "database: PLAYGROUND_DATABASE=$PLAYGROUND_DATABASE is neither sqlite nor postgres" ;;
esac
if [ "${PLAYGROUND_DATABASE:-sqlite}" = postgres ] && [ -z "${DATABASE_URL:-}" ]; then
    "$REPO_ROOT/scripts/postgres.sh" start
    DATABASE_URL="$("$REPO_ROOT/scripts/postgres.sh" url)"
    export DATABASE_URL  # the migration below
elif [ "${PLAYGROUND_POSTGRES:-off}" = on ]; then
    "$REPO_ROOT/scripts/postgres.sh" start
fi

if [ -n "${PLAYGROUND_LAB_HOSTS:-}" ] && [ -z "${PLAYGROUND_ENGINE_SOCKET:-}" ]; then
    say "images: skipped (own lab hosts; build into one with PLAYGROUND_ENGINE_SOCKET=... scripts/build-images.sh)"
else
    "$REPO_ROOT/scripts/build-images.sh"
fi

# The read-only Docker Hub mirror of the docker image's inner engines, filled
# from sandboxes/mirror/ (only when those recipes changed).
if [ -n "${PLAYGROUND_LAB_HOSTS:-}" ] && [ -z "${PLAYGROUND_ENGINE_SOCKET:-}" ]; then
    say "registry: skipped (own lab hosts: run scripts/registry.sh on each)"
else
    "$REPO_ROOT/scripts/registry.sh" start
fi

if [ -x "$REPO_ROOT/scripts/build-frontend.sh" ]; then
    "$REPO_ROOT/scripts/build-frontend.sh"
fi

# The production shape's images (they take the browser bundle above); only
# those whose inputs changed are rebuilt.
if [ "${PLAYGROUND_APP_IMAGES:-off}" = on ]; then
    if [ -n "${PLAYGROUND_LAB_HOSTS:-}" ] && [ -z "${PLAYGROUND_ENGINE_SOCKET:-}" ]; then
        say "app images: skipped (own lab hosts; PLAYGROUND_ENGINE_SOCKET=... scripts/build-app-images.sh)"
    else
        "$REPO_ROOT/scripts/build-app-images.sh"
    fi
fi

if [ -f "$REPO_ROOT/manage.py" ]; then
    if ! "$VENV/bin/python" manage.py migrate --noinput -v 0; then
        die "database: manage.py migrate failed"
    fi
    say "database: migrated"
    # The labs shipped in labs/ (idempotent: unchanged labs are left alone).
    if [ -d "$REPO_ROOT/labs" ]; then
        "$VENV/bin/python" manage.py import_labs "$REPO_ROOT/labs" >/dev/null \
            || die "labs: manage.py import_labs labs/ failed"
        say "labs: imported"
    fi
else
    say "database: manage.py not there yet, skipping migrate"
fi

say "setup: done in $((SECONDS - t_start))s"
