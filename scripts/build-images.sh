#!/usr/bin/env bash
# Build the sandbox images from their recipes, without any image registry.
#
#   scripts/build-images.sh [-f|--force] [NAME...]
#
# Each folder sandboxes/images/NAME/ is a recipe:
#   packages     Debian packages, one per line, added to debootstrap's minbase
#   rootfs/      an overlay copied over the built root (owned by root)
#   image.conf   `docker import --change` lines (CMD, ENV, LABEL, ...)
#   customize    optional executable, run as `customize ROOTDIR` after the overlay
#   base         optional: the name of another recipe this one extends; its
#                packages, rootfs/, customize and image.conf come first
# and becomes playground-NAME:latest on the engine at $PLAYGROUND_ENGINE_SOCKET
# (default: the project engine), labelled playground.recipe=<hash of the recipe>.
# An image whose label matches its recipe is left alone, so this is cheap to
# run on every setup. -f rebuilds anyway (e.g. to pick up Debian updates).
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SUITE=bookworm
# Another folder of recipes in the same format (scripts/build-app-images.sh
# builds deploy/images/ this way).
RECIPES="${PLAYGROUND_IMAGE_RECIPES:-$REPO_ROOT/sandboxes/images}"
BUILD_DIR="$STATE_DIR/build"
DEB_CACHE="$STATE_DIR/cache/debootstrap"
# Bump when the way a recipe becomes an image changes, to rebuild them all.
RECIPE_FORMAT=1

umask 022

usage() { echo "usage: $0 [-f|--force] [NAME...]" >&2; exit 2; }

force=0
names=()
for arg in "$@"; do
    case "$arg" in
        -f|--force) force=1 ;;
        -h|--help) usage ;;
        -*) usage ;;
        *) names+=("$arg") ;;
    esac
done
if [ "${#names[@]}" -eq 0 ]; then
    for dir in "$RECIPES"/*/; do
        [ -f "$dir/packages" ] && names+=("$(basename "$dir")")
    done
fi
[ "${#names[@]}" -gt 0 ] || die "images: no recipes under $RECIPES"

engine() { "$DOCKER" -H "$ENGINE_URL" "$@"; }

# The recipe folders that make up recipe $1, its bases first (`base` files).
recipe_chain() {
    local name="$1" chain=() depth=0
    while [ -n "$name" ]; do
        [ -f "$RECIPES/$name/packages" ] || die "images: recipe '$name' (a base of '$1') has no packages file"
        depth=$((depth + 1))
        [ "$depth" -le 8 ] || die "images: the bases of '$1' form a loop"
        chain=("$RECIPES/$name" "${chain[@]}")
        name=""
        if [ -f "${chain[0]}/base" ]; then name="$(recipe_lines "${chain[0]}/base" | head -n 1)"; fi
    done
    printf '%s\n' "${chain[@]}"
}

# A stable digest of everything that shapes the image: file names, contents
# and the executable bit (git keeps no other mode) of the recipe and its
# bases, plus the build format.
recipe_hash() {
    local dirs
    mapfile -t dirs < <(recipe_chain "$1")
    if [ "${#dirs[@]}" -eq 1 ]; then
        recipe_digest "${dirs[0]}"  # the hash of a recipe without a base, as before bases existed
        return
    fi
    local dir
    for dir in "${dirs[@]}"; do recipe_digest "$dir"; done | sha256sum | cut -c1-16
}

recipe_digest() {
    local dir="$1"
    (
        cd "$dir"
        printf 'format=%s suite=%s\n' "$RECIPE_FORMAT" "$SUITE"
        find . \( -type f -o -type l \) -print0 | LC_ALL=C sort -z |
            while IFS= read -r -d '' f; do
                if [ -L "$f" ]; then
                    printf '%s -> %s\n' "$f" "$(readlink "$f")"
                else
                    x=-; [ -x "$f" ] && x=x
                    printf '%s %s %s\n' "$f" "$x" "$(sha256sum < "$f" | cut -d' ' -f1)"
                fi
            done
    ) | sha256sum | cut -c1-16
}

# Lines of a recipe file without comments and blank lines.
recipe_lines() {
    sed -e 's/[[:space:]]#.*$//' -e '/^[[:space:]]*#/d' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$1"
}

# Debootstrap mounts /proc and /sys inside the target; a failed run can leave
# them there. Unmount everything below $1 before anything deletes it.
unmount_under() {
    local dir="$1" m
    awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

WORK=""
cleanup() {
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        unmount_under "$WORK"
        # --one-file-system: never follow a mount that survived into the host.
        rm -rf --one-file-system "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

trim_root() {
    local root="$1"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
        "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/debconf/*-old \
        "$root"/var/lib/dpkg/*-old "$root"/tmp/* "$root"/var/tmp/* \
        "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/lintian \
        "$root"/usr/share/linda "$root"/var/log/bootstrap.log
    # Keep the copyright notices, drop the rest of the docs.
    find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    # Message catalogues: C.UTF-8 is built into libc, no locale is needed.
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    find "$root/var/log" -type f -exec truncate -s 0 {} +
    # Device nodes, host name and resolver are the engine's business.
    find "$root/dev" -mindepth 1 -delete
    rm -f "$root/etc/hostname" "$root/etc/resolv.conf" "$root/etc/machine-id" \
        "$root/var/lib/dbus/machine-id"
    # So packages a learner installs later stay as lean.
    mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
    cat > "$root/etc/dpkg/dpkg.cfg.d/01-playground-slim" <<'EOF'
# Added by the playground's image build: no docs, manuals or translations.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
}

build() {
    local name="$1" recipe="$RECIPES/$1" image="playground-$1:latest"
    [ -f "$recipe/packages" ] || die "images: $recipe/packages is missing (is '$name' a recipe?)"
    local hash current chain part
    mapfile -t chain < <(recipe_chain "$name")
    [ "${#chain[@]}" -gt 0 ] || die "images: cannot read the recipe chain of $name"
    hash="$(recipe_hash "$name")"
    current="$(engine image inspect -f '{{index .Config.Labels "playground.recipe"}}' "$image" 2>/dev/null || true)"
    if [ "$current" = "$hash" ] && [ "$force" = 0 ]; then
        say "image $image: up to date ($hash)"
        return 0
    fi
    say "image $image: building recipe $hash (was: ${current:-none})"

    local t0=$SECONDS packages old_id log="$BUILD_DIR/$name.log"
    packages="$(for part in "${chain[@]}"; do recipe_lines "$part/packages"; done | sort -u | paste -sd, -)"
    mkdir -p "$BUILD_DIR" "$DEB_CACHE"
    WORK="$(mktemp -d "$BUILD_DIR/$name.XXXXXX")"
    local root="$WORK/root"

    local mirror
    mirror="$(debian_mirror)"
    say "image $image: debootstrap $SUITE from $mirror (log: $log)"
    if ! debootstrap --variant=minbase --include="$packages" --cache-dir="$DEB_CACHE" \
            "$SUITE" "$root" "$mirror" >"$log" 2>&1; then
        tail -n 25 "$log" >&2
        die "images: debootstrap failed for $name (full log: $log)"
    fi
    unmount_under "$root"
    local t_boot=$((SECONDS - t0))

    for part in "${chain[@]}"; do
        if [ -d "$part/rootfs" ]; then
            cp -R "$part/rootfs/." "$root/"
        fi
    done
    for part in "${chain[@]}"; do
        if [ -x "$part/customize" ]; then
            "$part/customize" "$root" >>"$log" 2>&1 || { tail -n 25 "$log" >&2; die "images: $part/customize failed"; }
        fi
    done
    trim_root "$root"

    local changes=(
        -c "LABEL playground.recipe=$hash"
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
        -c 'ENV LANG=C.UTF-8'
        -c 'ENV TERM=xterm-256color'
        -c 'WORKDIR /root'
    )
    local line
    for part in "${chain[@]}"; do
        if [ -f "$part/image.conf" ]; then
            while IFS= read -r line; do changes+=(-c "$line"); done < <(recipe_lines "$part/image.conf")
        fi
    done

    old_id="$(engine image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
    local t1=$SECONDS size new_id
    size="$(du -sm --one-file-system "$root" | cut -f1)"
    if ! tar --numeric-owner -C "$root" -c . | engine import "${changes[@]}" - "$image" >/dev/null; then
        die "images: docker import of $name into $ENGINE_URL failed (see the engine's log)"
    fi
    new_id="$(engine image inspect -f '{{.Id}}' "$image")"
    # The image it replaces is dangling now; keep it only while containers use it.
    if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
        engine image rm "$old_id" >/dev/null 2>&1 || true
    fi
    cleanup
    WORK=""
    say "image $image: built in $((SECONDS - t0))s (debootstrap ${t_boot}s, import $((SECONDS - t1))s, ${size} MB)"
}

need_root
command -v debootstrap >/dev/null || die "images: debootstrap is missing (apt-get install debootstrap, or run scripts/setup.sh)"
if ! engine version >/dev/null 2>&1; then
    die "images: no engine answers at $ENGINE_URL (start it: scripts/engine.sh start)"
fi
with_lock images
for name in "${names[@]}"; do
    build "$name"
done
