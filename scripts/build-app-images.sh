#!/usr/bin/env bash
# Build the images of the production shape (docker-compose.yml) from Debian
# packages, without any image registry, into the engine at
# $PLAYGROUND_ENGINE_SOCKET (default: the project's engine).
#
#   scripts/build-app-images.sh [-f|--force] [NAME...]
#
# NAME is one of (default: app redis postgres):
#   app       playground-app: the code, collected static files and user 10001
#             on top of playground-appbase (Debian's python3 and a venv with
#             the Python packages); web, worker, beat and migrate run it
#   redis     playground-redis: Debian's redis-server
#   postgres  playground-postgres: Debian's PostgreSQL 15
#   labhost   playground-labhost: Debian's Docker Engine (the privileged
#             one-machine lab host; not built unless named)
#
# The bases (appbase, redis, postgres, labhost) are recipes in deploy/images/,
# built by scripts/build-images.sh like the sandbox images: an image whose
# recipe hash label matches is left alone. The recipes are staged first with
# the files they are made of from the rest of the repository (requirements.txt
# for appbase: the runtime alone, never requirements-dev.txt's test tools; the
# image scripts and sandbox recipes for labhost), so a change to those
# rebuilds them too. pip cannot reach its index from a container or a chroot
# here, so the host's pip makes the wheels (cached per requirements hash) and
# the recipe installs only those.
#
# playground-app is `docker build` of ./Dockerfile on playground-appbase
# (no network, nothing pulled), labelled with a hash of its inputs (the base's
# id, Dockerfile, .dockerignore and the files it copies) and skipped when that
# is unchanged. The browser bundle must exist (scripts/build-frontend.sh).
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

RECIPES="$REPO_ROOT/deploy/images"
BUILD_DIR="$STATE_DIR/build"
WHEEL_CACHE="$STATE_DIR/cache/app-wheels"
# The wheels are made by the host's Debian python3, the very version the image
# runs: a dependency can hang on the exact version (redis needs async-timeout
# below 3.11.3), so the project's venv (any 3.11) cannot stand in for it.
HOST_PYTHON=/usr/bin/python3
WHEEL_VENV="$WHEEL_CACHE/venv"
# What the app image copies from the repository: keep in step with Dockerfile
# and .dockerignore.
APP_PATHS=(manage.py playground sandboxes templates static labs)
# Bump when the way the app image is made changes, to rebuild it.
APP_FORMAT=1

umask 022

usage() { echo "usage: $0 [-f|--force] [app|redis|postgres|labhost ...]" >&2; exit 2; }

force=()
names=()
for arg in "$@"; do
    case "$arg" in
        -f|--force) force=(-f) ;;
        app|redis|postgres|labhost) names+=("$arg") ;;
        *) usage ;;
    esac
done
[ "${#names[@]}" -gt 0 ] || names=(app redis postgres)

engine() { "$DOCKER" -H "$ENGINE_URL" "$@"; }

WORK=""
cleanup() {
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then rm -rf --one-file-system "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The recipes plus what each takes from the rest of the repository.
stage_recipes() {
    local staged="$WORK/recipes"
    cp -R "$RECIPES/." "$staged/"
    # appbase: the runtime's pinned tree, requirements.txt, as it is (the test
    # tools are in requirements-dev.txt, which no image reads).
    cp "$REPO_ROOT/requirements.txt" "$staged/appbase/requirements-app.txt"
    local opt="$staged/labhost/rootfs/opt/playground"
    mkdir -p "$opt/scripts" "$opt/sandboxes"
    cp "$REPO_ROOT/scripts/common.sh" "$REPO_ROOT/scripts/build-images.sh" "$opt/scripts/"
    cp -R "$REPO_ROOT/sandboxes/images" "$opt/sandboxes/images"
    printf '%s\n' "$staged"
}

# Wheels for the staged appbase recipe $1, made once per requirements hash;
# prints their folder.
wheels() {
    local recipe="$1" hash dir
    hash="$(sha256sum < "$recipe/requirements-app.txt" | cut -c1-16)"
    dir="$WHEEL_CACHE/$hash"
    if [ ! -f "$dir/.complete" ]; then
        say "app images: making the wheels for requirements $hash (log: $BUILD_DIR/app-wheels.log)" >&2
        if [ ! -x "$WHEEL_VENV/bin/pip" ]; then
            "$HOST_PYTHON" -m venv "$WHEEL_VENV" ||
                die "app images: $HOST_PYTHON -m venv failed (apt-get install python3-venv)"
        fi
        rm -rf "$dir"
        mkdir -p "$dir"
        if ! "$WHEEL_VENV/bin/pip" wheel --disable-pip-version-check -q -w "$dir" \
                -r "$recipe/requirements-app.txt" >"$BUILD_DIR/app-wheels.log" 2>&1; then
            tail -n 25 "$BUILD_DIR/app-wheels.log" >&2
            die "app images: pip wheel failed (full log: $BUILD_DIR/app-wheels.log)"
        fi
        cp "$recipe/requirements-app.txt" "$dir/"
        touch "$dir/.complete"
        # Only the current set is worth keeping.
        find "$WHEEL_CACHE" -mindepth 1 -maxdepth 1 -type d ! -name "$hash" ! -name venv -exec rm -rf {} +
    fi
    printf '%s\n' "$dir"
}

# A digest of everything playground-app is made of.
app_inputs_hash() {
    local base_id="$1"
    (
        cd "$REPO_ROOT"
        printf 'format=%s base=%s\n' "$APP_FORMAT" "$base_id"
        sha256sum Dockerfile .dockerignore
        find "${APP_PATHS[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -name '.lock' -print0 |
            LC_ALL=C sort -z | xargs -0 sha256sum
    ) | sha256sum | cut -c1-16
}

build_app() {
    local image=playground-app:latest base=playground-appbase:latest base_id hash current old_id
    base_id="$(engine image inspect -f '{{.Id}}' "$base")" || die "app images: $base is missing"
    [ -f "$REPO_ROOT/static/build/session.js" ] ||
        die "app images: static/build/ has no bundle (run scripts/build-frontend.sh)"
    hash="$(app_inputs_hash "$base_id")"
    current="$(engine image inspect -f '{{index .Config.Labels "playground.inputs"}}' "$image" 2>/dev/null || true)"
    if [ "$current" = "$hash" ] && [ "${#force[@]}" -eq 0 ]; then
        say "image $image: up to date ($hash)"
        return 0
    fi
    say "image $image: building $hash (was: ${current:-none})"
    local t0=$SECONDS log="$BUILD_DIR/app.log"
    old_id="$(engine image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
    # --network none: the engine has no default bridge, and nothing is fetched.
    if ! engine build --network none --pull=false -f "$REPO_ROOT/Dockerfile" \
            --build-arg "BASE=$base" --label "playground.inputs=$hash" \
            -t "$image" "$REPO_ROOT" >"$log" 2>&1; then
        tail -n 25 "$log" >&2
        die "app images: docker build failed (full log: $log)"
    fi
    local new_id
    new_id="$(engine image inspect -f '{{.Id}}' "$image")"
    if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
        engine image rm "$old_id" >/dev/null 2>&1 || true
    fi
    # Intermediate images of earlier builds (the classic builder keeps them).
    engine image prune -f --filter "label=playground.inputs" >/dev/null 2>&1 || true
    say "image $image: built in $((SECONDS - t0))s"
}

need_root
# One build at a time (the wheel cache and the app image); build-images.sh
# takes the images lock inside this one, never the other way round.
with_lock app-images
engine version >/dev/null 2>&1 || die "app images: no engine answers at $ENGINE_URL (start it: scripts/engine.sh start)"
mkdir -p "$BUILD_DIR" "$WHEEL_CACHE"
WORK="$(mktemp -d "$BUILD_DIR/app-images.XXXXXX")"
mkdir -p "$WORK/recipes"
staged="$(stage_recipes)"

bases=()
for name in "${names[@]}"; do
    case "$name" in
        app) bases+=(appbase) ;;
        *) bases+=("$name") ;;
    esac
done
if [[ " ${bases[*]} " == *" appbase "* ]]; then
    PLAYGROUND_APP_WHEELS="$(wheels "$staged/appbase")"
    export PLAYGROUND_APP_WHEELS
fi
PLAYGROUND_IMAGE_RECIPES="$staged" "$REPO_ROOT/scripts/build-images.sh" "${force[@]}" "${bases[@]}"

if [[ " ${names[*]} " == *" app "* ]]; then
    build_app
fi
