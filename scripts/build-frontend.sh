#!/usr/bin/env bash
# Build the browser bundle: frontend/ (TypeScript, xterm.js) -> static/build/.
#
#   scripts/build-frontend.sh           install (when the lock file changed) and build
#   scripts/build-frontend.sh --check   also type-check the sources (tsc)
#
# Idempotent and fast when nothing changed: `npm ci` runs only when
# package.json or package-lock.json differ from the last install (a stamp in
# node_modules), and esbuild only when a source is newer than the bundle.
# Needs node (>= 18) and npm; no root, no network unless npm ci must run.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FRONTEND="$REPO_ROOT/frontend"
OUT="$REPO_ROOT/static/build"
STAMP="$FRONTEND/node_modules/.playground-install-stamp"
BUILT="$OUT/.built"
OUTPUTS=(landing.js session.js classroom.js watch.js playground.css)

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

check=0
case "${1:-}" in
    "") ;;
    --check) check=1 ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

command -v node >/dev/null || die "node is missing (apt-get install nodejs npm)"
command -v npm >/dev/null || die "npm is missing (apt-get install npm)"
cd "$FRONTEND"

# One build at a time: two engineers or make targets may call this at once.
mkdir -p "$OUT"
exec {lock}>"$OUT/.lock"
flock "$lock"

want="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)"
if [ ! -d node_modules ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    say "frontend: installing packages (npm ci)"
    # --ignore-scripts: nothing here needs an install script (esbuild and
    # TypeScript find their platform binary package without one).
    npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
    printf '%s\n' "$want" > "$STAMP"
    rm -f "$BUILT"
fi

up_to_date() {
    [ -f "$BUILT" ] || return 1
    local name
    for name in "${OUTPUTS[@]}"; do [ -f "$OUT/$name" ] || return 1; done
    # Anything newer than the last build means a rebuild.
    [ -z "$(find src build.mjs package-lock.json -newer "$BUILT" -print -quit)" ]
}

if [ "$check" = 1 ]; then
    say "frontend: type-checking"
    npx --no-install tsc --noEmit -p .
fi

if up_to_date; then
    say "frontend: bundle up to date ($OUT)"
    exit 0
fi
say "frontend: bundling into $OUT"
touch "$BUILT.new"   # sources edited during the build count as newer
node build.mjs
mv -f "$BUILT.new" "$BUILT"
