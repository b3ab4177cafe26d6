#!/usr/bin/env bash
# The lab registry mirror: Debian's docker-registry (the CNCF distribution
# registry), read-only, on tcp/$PLAYGROUND_MIRROR_PORT (default 5099) of this
# host. Every inner engine of the `docker` image uses it as its Docker Hub
# mirror (sandboxes reach it at their network's gateway address), so that
# `docker run nginx` works inside an instance without internet.
#
#   scripts/registry.sh start       fill it if its recipes changed, then serve it
#                                   (or adopt the one that already answers)
#   scripts/registry.sh stop        stop it, if the pidfile names our registry
#   scripts/registry.sh status      exit 0 when it answers, 3 when not
#   scripts/registry.sh fill [-f]   build sandboxes/mirror/* on the project's
#                                   engine and push them (-f: even if unchanged)
#
# Filling runs a second, writable registry on the same storage, on loopback
# only (127.0.0.1:$PLAYGROUND_MIRROR_FILL_PORT, default 5098), for the time of
# the pushes: the served one never accepts a push (storage.maintenance.readonly),
# so one learner's image can never reach another.
#
# To make it a pull-through cache of Docker Hub instead (a host with internet),
# serve a config with `proxy: {remoteurl: https://registry-1.docker.io}` and
# without the readonly maintenance block: see docs/operations.md.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

MIRROR_PORT="${PLAYGROUND_MIRROR_PORT:-5099}"
FILL_PORT="${PLAYGROUND_MIRROR_FILL_PORT:-5098}"
REGISTRY_DIR="$STATE_DIR/registry"
DATA_DIR="$REGISTRY_DIR/data"
PIDFILE="$REGISTRY_DIR/registry.pid"
LOGFILE="$REGISTRY_DIR/registry.log"
SERVE_CONFIG="$REGISTRY_DIR/serve.yml"
FILL_CONFIG="$REGISTRY_DIR/fill.yml"
STAMP="$REGISTRY_DIR/filled"
RECIPES="$REPO_ROOT/sandboxes/mirror"
REGISTRY_BIN=/usr/bin/docker-registry
REGISTRY_USER=docker-registry
SUITE=bookworm
DEB_CACHE="$STATE_DIR/cache/debootstrap"
BUILD_DIR="$STATE_DIR/build"
# Bump when the way recipes become images changes, to refill.
FILL_FORMAT=1
# Built first: the others may start from it.
ORDER=(debian nginx python busybox hello-world registry)

umask 022

engine() { "$DOCKER" -H "$ENGINE_URL" "$@"; }

answers() {
    curl -sf -o /dev/null --max-time 3 "http://127.0.0.1:$1/v2/"
}

# A registry config: $1 file, $2 listen address, $3 read-only (true|false).
write_config() {
    cat > "$1" <<EOF
# Written by scripts/registry.sh; edits are lost on the next start.
version: 0.1
log:
  level: info
  fields:
    service: playground-mirror
storage:
  filesystem:
    rootdirectory: $DATA_DIR
  delete:
    enabled: false
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: $3
http:
  addr: $2
  headers:
    X-Content-Type-Options: [nosniff]
EOF
}

# Start a registry with config $1 in the background (as the unprivileged
# docker-registry user); print its pid.
spawn() {
    local config="$1" pid
    detached setpriv --reuid="$REGISTRY_USER" --regid="$REGISTRY_USER" --init-groups \
        "$REGISTRY_BIN" serve "$config" </dev/null >>"$LOGFILE" 2>&1 &
    pid=$!
    printf '%s\n' "$pid"
}

# $1 port, $2 pid: wait up to 15 s for it to answer.
wait_answers() {
    local deadline=$((SECONDS + 15))
    until answers "$1"; do
        if ! kill -0 "$2" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
            printf -- '--- last lines of %s ---\n' "$LOGFILE" >&2
            tail -n 15 "$LOGFILE" >&2 || true
            return 1
        fi
        sleep 0.1
    done
}

our_pid() {
    local pid
    pid="$(cat "$PIDFILE" 2>/dev/null)" || return 1
    pid_is docker-registry "$pid" "$SERVE_CONFIG" || return 1
    printf '%s\n' "$pid"
}

prepare() {
    [ -x "$REGISTRY_BIN" ] || die "registry: $REGISTRY_BIN is missing (apt-get install docker-registry, or run scripts/setup.sh)"
    id -u "$REGISTRY_USER" >/dev/null 2>&1 || die "registry: no user $REGISTRY_USER (reinstall docker-registry)"
    mkdir -p "$DATA_DIR"
    chown "$REGISTRY_USER:$REGISTRY_USER" "$DATA_DIR"
}

serve() {
    with_lock registry
    if answers "$MIRROR_PORT"; then
        say "registry: running (reused) on tcp/$MIRROR_PORT"
        return 0
    fi
    prepare
    write_config "$SERVE_CONFIG" ":$MIRROR_PORT" true
    local pid
    pid="$(spawn "$SERVE_CONFIG")"
    printf '%s\n' "$pid" > "$PIDFILE"
    wait_answers "$MIRROR_PORT" "$pid" || die "registry: it did not answer on tcp/$MIRROR_PORT within 15s"
    say "registry: serving read-only (pid $pid) on tcp/$MIRROR_PORT"
    note_started registry
}

stop() {
    with_lock registry
    local pid
    if ! pid="$(our_pid)"; then
        if answers "$MIRROR_PORT"; then
            say "registry: the one on tcp/$MIRROR_PORT is not ours (no matching pidfile); leaving it"
        else
            say "registry: not running"
        fi
        return 0
    fi
    say "registry: stopping pid $pid"
    kill -TERM "$pid"
    if ! wait_gone 10 "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    say "registry: stopped"
}

status() {
    if answers "$MIRROR_PORT"; then
        echo "registry: answering on tcp/$MIRROR_PORT"
        return 0
    fi
    echo "registry: not running"
    return 3
}

# ---- filling -------------------------------------------------------------------
recipes_hash() {
    (
        cd "$RECIPES"
        printf 'format=%s suite=%s\n' "$FILL_FORMAT" "$SUITE"
        find . -type f -print0 | LC_ALL=C sort -z |
            while IFS= read -r -d '' f; do
                x=-; [ -x "$f" ] && x=x
                printf '%s %s %s\n' "$f" "$x" "$(sha256sum < "$f" | cut -d' ' -f1)"
            done
        sha256sum < "$REGISTRY_BIN" | cut -d' ' -f1
    ) | sha256sum | cut -c1-16
}

recipe_lines() {
    sed -e 's/[[:space:]]#.*$//' -e '/^[[:space:]]*#/d' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$1"
}

# Every tag of every recipe is in the served registry.
complete() {
    local name tag
    for name in "${ORDER[@]}"; do
        while IFS= read -r tag; do
            curl -sf -o /dev/null --max-time 3 -I \
                -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
                "http://127.0.0.1:$MIRROR_PORT/v2/library/$name/manifests/$tag" || return 1
        done < <(recipe_lines "$RECIPES/$name/tags")
    done
}

unmount_under() {
    local dir="$1" m
    awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

WORK=""
FILL_PID=""
MADE_IMAGES=()  # ids of the images a fill made on the engine
cleanup() {
    local i
    # Newest first: an image built on another (registry on debian) goes first.
    for ((i = ${#MADE_IMAGES[@]} - 1; i >= 0; i--)); do
        engine image rm -f "${MADE_IMAGES[$i]}" >/dev/null 2>&1 || true
    done
    MADE_IMAGES=()
    if [ -n "$FILL_PID" ] && pid_is docker-registry "$FILL_PID" "$FILL_CONFIG"; then
        kill -TERM "$FILL_PID" 2>/dev/null || true
        wait_gone 10 "$FILL_PID" || kill -KILL "$FILL_PID" 2>/dev/null || true
    fi
    FILL_PID=""
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        unmount_under "$WORK"
        rm -rf --one-file-system "$WORK"
    fi
    WORK=""
}

# Run apt-get in the root $1 (a debootstrap minbase), with the host's resolver
# and without starting any service.
in_root() {
    local root="$1"; shift
    chroot "$root" env DEBIAN_FRONTEND=noninteractive "$@"
}

slim() {
    local root="$1"
    rm -f "$root/usr/sbin/policy-rc.d"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
        "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/debconf/*-old \
        "$root"/var/lib/dpkg/*-old "$root"/tmp/* "$root"/var/tmp/* \
        "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/bootstrap.log
    find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    find "$root/var/log" -type f -exec truncate -s 0 {} +
    find "$root/dev" -mindepth 1 -delete
    rm -f "$root/etc/hostname" "$root/etc/resolv.conf" "$root/etc/machine-id"
}

# Import root $2 as image $3 with the image.conf lines of recipe $1.
import_root() {
    local recipe="$1" root="$2" image="$3" line
    local changes=(-c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
    if [ -f "$recipe/image.conf" ]; then
        while IFS= read -r line; do changes+=(-c "$line"); done < <(recipe_lines "$recipe/image.conf")
    fi
    tar --numeric-owner -C "$root" -c . | engine import "${changes[@]}" - "$image" >/dev/null
}

fill() {
    local force="${1:-}"
    with_lock images      # debootstrap's package cache is shared with build-images.sh
    with_lock registry-fill
    local hash
    hash="$(recipes_hash)"
    if [ "$force" != "-f" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$hash" ] && complete; then
        say "registry: images up to date ($hash)"
        return 0
    fi
    prepare
    command -v debootstrap >/dev/null || die "registry: debootstrap is missing (run scripts/setup.sh)"
    engine version >/dev/null 2>&1 || die "registry: no engine answers at $ENGINE_URL (scripts/engine.sh start)"
    say "registry: filling from $RECIPES ($hash)"
    local t0=$SECONDS
    trap cleanup EXIT
    trap 'exit 130' INT TERM

    write_config "$FILL_CONFIG" "127.0.0.1:$FILL_PORT" false
    FILL_PID="$(spawn "$FILL_CONFIG")"
    wait_answers "$FILL_PORT" "$FILL_PID" || die "registry: the filling registry did not answer on 127.0.0.1:$FILL_PORT"

    mkdir -p "$BUILD_DIR" "$DEB_CACHE"
    WORK="$(mktemp -d "$BUILD_DIR/mirror.XXXXXX")"
    local log="$BUILD_DIR/mirror.log" base="$WORK/base"
    : > "$log"
    say "registry: debootstrap $SUITE (log: $log)"
    if ! debootstrap --variant=minbase --cache-dir="$DEB_CACHE" "$SUITE" "$base" "$(debian_mirror)" >>"$log" 2>&1; then
        tail -n 25 "$log" >&2
        die "registry: debootstrap failed (full log: $log)"
    fi
    unmount_under "$base"
    cp /etc/resolv.conf "$base/etc/resolv.conf"
    printf '#!/bin/sh\nexit 101\n' > "$base/usr/sbin/policy-rc.d"
    chmod 755 "$base/usr/sbin/policy-rc.d"
    in_root "$base" apt-get update -q >>"$log" 2>&1 || { tail -n 25 "$log" >&2; die "registry: apt-get update failed"; }

    local fill_ref="127.0.0.1:$FILL_PORT/library" name recipe root tags ctx packages
    local -a pushed=()
    for name in "${ORDER[@]}"; do
        recipe="$RECIPES/$name"
        mapfile -t tags < <(recipe_lines "$recipe/tags")
        [ "${#tags[@]}" -gt 0 ] || die "registry: $recipe/tags names no tag"
        if [ -f "$recipe/packages" ]; then
            root="$WORK/root-$name"
            cp -a "$base" "$root"
            packages="$(recipe_lines "$recipe/packages" | paste -sd' ' -)"
            if [ -n "$packages" ]; then
                # shellcheck disable=SC2086  # a list of package names
                in_root "$root" apt-get install -y -q --no-install-recommends $packages >>"$log" 2>&1 ||
                    { tail -n 25 "$log" >&2; die "registry: installing $packages for $name failed"; }
            fi
            if [ -x "$recipe/customize" ]; then
                "$recipe/customize" "$root" >>"$log" 2>&1 || { tail -n 25 "$log" >&2; die "registry: $recipe/customize failed"; }
            fi
            slim "$root"
            import_root "$recipe" "$root" "$fill_ref/$name:${tags[0]}" || die "registry: importing $name failed"
            rm -rf --one-file-system "$root"
        else
            ctx="$WORK/ctx-$name"
            cp -R "$recipe/." "$ctx"
            context_extras "$ctx"
            engine build -q --network none --build-arg "DEBIAN=$fill_ref/debian:${DEBIAN_TAG}" \
                -t "$fill_ref/$name:${tags[0]}" "$ctx" >>"$log" 2>&1 ||
                { tail -n 25 "$log" >&2; die "registry: building $name failed"; }
        fi
        [ "$name" != debian ] || DEBIAN_TAG="${tags[0]}"
        MADE_IMAGES+=("$(engine image inspect -f '{{.Id}}' "$fill_ref/$name:${tags[0]}")")
        local tag
        for tag in "${tags[@]}"; do
            [ "$tag" = "${tags[0]}" ] || engine tag "$fill_ref/$name:${tags[0]}" "$fill_ref/$name:$tag"
            engine push "$fill_ref/$name:$tag" >>"$log" 2>&1 ||
                { tail -n 25 "$log" >&2; die "registry: pushing $name:$tag failed"; }
            pushed+=("$fill_ref/$name:$tag")
        done
        say "registry: $name (${tags[*]}) pushed"
    done
    # The images live in the registry now; the engine need not keep them.
    engine image rm "${pushed[@]}" >/dev/null 2>&1 || true
    cleanup  # (removes what is left of them)
    trap - EXIT
    printf '%s\n' "$hash" > "$STAMP"
    say "registry: filled in $((SECONDS - t0))s"
}

DEBIAN_TAG=bookworm

# What a Dockerfile recipe's context gets besides its own files: the static
# busybox (bin/busybox and a link per applet) and the registry binary.
context_extras() {
    local ctx="$1" tools="$WORK/root-tools" applet
    if [ ! -x "$tools/bin/busybox" ]; then
        cp -a "$WORK/base" "$tools"
        in_root "$tools" apt-get install -y -q --no-install-recommends busybox-static >>"$BUILD_DIR/mirror.log" 2>&1 ||
            die "registry: installing busybox-static failed"
    fi
    mkdir -p "$ctx/bin"
    cp "$tools/bin/busybox" "$ctx/bin/busybox"
    for applet in $("$tools/bin/busybox" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$ctx/bin/$applet"
    done
    if grep -q docker-registry "$ctx/Dockerfile"; then
        cp "$REGISTRY_BIN" "$ctx/docker-registry"
    fi
}

case "${1:-}" in
    start)
        need_root
        serve   # first: whether the images are there is asked of it
        fill
        ;;
    stop) need_root; stop ;;
    status) status ;;
    fill) need_root; serve; fill "${2:-}" ;;
    *) echo "usage: $0 start|stop|status|fill [-f]" >&2; exit 2 ;;
esac
