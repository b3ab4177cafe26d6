#!/usr/bin/env bash
# Turn this machine (Debian 12, as root, a clone of this repository) into a
# lab host of a playground fleet, and print what the web tier needs to use it.
#
#   scripts/lab-host.sh ADDRESS WEB_TIER [PKI]
#
#   ADDRESS   this machine's address the web tier reaches (IPv4 or a name)
#   WEB_TIER  the web tier's addresses (IPv4 CIDRs, commas): the only ones
#             whose connections reach the sandboxes here (terminal relays,
#             ports) and the engine's API (mutual TLS in any case)
#   PKI       the installation's certificate folder (scripts/lab-host-certs.sh);
#             default /var/lib/playground/pki. With the CA's key there, this
#             machine's engine certificate is made in it; without (the CA key
#             kept elsewhere), PKI/server/ADDRESS/{ca,cert,key}.pem must be
#             there, made on the machine that holds it.
#
# It installs the packages a lab host needs; raises the kernel's per-uid and
# table limits for 1,000 sandboxes (engine.sh); starts the engine (user
# namespaces remapped, live restore, a btrfs data root for hard disk limits,
# the sandbox firewall and egress filter, its API on ADDRESS:2376 over mutual
# TLS only); builds the sandbox images and the registry mirror the `docker`
# image's inner engines pull from (PLAYGROUND_LAB_HOST_IMAGES: the images this
# host offers, recipe names of sandboxes/images/, commas; default all of them;
# the mirror only when `docker` is one). Run it again after an upgrade or a reboot:
# every step checks first. Then, on the web tier, `manage.py lab_hosts add`
# (or PLAYGROUND_LAB_HOSTS) and the route it prints (docs/operations.md, "The
# fleet of lab hosts").
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PACKAGES=(docker.io crun docker-registry debootstrap debian-archive-keyring uidmap iptables btrfs-progs
          tini gcc libc6-dev ca-certificates openssl)
PORT="${PLAYGROUND_LAB_HOST_PORT:-2376}"
IMAGES="${PLAYGROUND_LAB_HOST_IMAGES:-}"

usage() { die "usage: scripts/lab-host.sh ADDRESS WEB_TIER_CIDRS [PKI_DIR]"; }
[ $# -ge 2 ] || usage
ADDRESS="$1" WEB_TIER="$2" PKI="${3:-$STATE_DIR/pki}"
need_root
mkdir -p "$STATE_DIR"

missing=()
for p in "${PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "lab host: installing ${missing[*]}"
    # Our own daemons only: keep the packages from starting system ones.
    policy_added=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
        policy_added=1
    fi
    rc=0
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
        > "$STATE_DIR/apt.log" 2>&1 || rc=$?
    [ "$policy_added" = 0 ] || rm -f /usr/sbin/policy-rc.d
    [ "$rc" = 0 ] || { tail -n 20 "$STATE_DIR/apt.log" >&2; die "lab host: apt-get failed ($STATE_DIR/apt.log)"; }
fi

server="$PKI/server/$ADDRESS"
if [ -f "$PKI/ca-key.pem" ] || [ ! -d "$PKI" ]; then
    "$REPO_ROOT/scripts/lab-host-certs.sh" "$PKI" "$ADDRESS" >/dev/null
fi
for f in ca.pem cert.pem key.pem; do
    [ -f "$server/$f" ] || die "lab host: no $server/$f: make it with scripts/lab-host-certs.sh PKI $ADDRESS where the CA's key is"
done

PLAYGROUND_ENGINE_TLS_LISTEN="$ADDRESS:$PORT" PLAYGROUND_ENGINE_TLS_DIR="$server" \
    PLAYGROUND_ENGINE_WEB_TIER="$WEB_TIER" "$REPO_ROOT/scripts/engine.sh" start
read -ra images <<< "${IMAGES//,/ }"
for name in "${images[@]+"${images[@]}"}"; do
    [ -d "$REPO_ROOT/sandboxes/images/$name" ] || die "lab host: PLAYGROUND_LAB_HOST_IMAGES: no recipe sandboxes/images/$name"
done
"$REPO_ROOT/scripts/build-images.sh" "${images[@]+"${images[@]}"}"
if [ "${#images[@]}" = 0 ] || [[ " ${images[*]} " == *" docker "* ]]; then
    "$REPO_ROOT/scripts/registry.sh" start
fi

# What the engine's sandboxes are carved from: the web tier routes it here.
pool="${PLAYGROUND_ENGINE_ADDRESS_POOL:-10.213.0.0/16}"
cat <<EOF

Lab host ready: tcp://$ADDRESS:$PORT (mutual TLS; sandboxes from $pool).
On the web tier:
  1. the client certificate, once for the whole fleet:
       PLAYGROUND_LAB_HOST_TLS_CA=.../client/ca.pem  PLAYGROUND_LAB_HOST_TLS_CERT=.../client/cert.pem
       PLAYGROUND_LAB_HOST_TLS_KEY=.../client/key.pem   (from $PKI/client/)
  2. the sandboxes' addresses routed here:
       ip route add $pool via $ADDRESS
     (each lab host needs a pool of its own: PLAYGROUND_ENGINE_ADDRESS_POOL)
  3. the host itself, while everything runs:
       manage.py lab_hosts add tcp://$ADDRESS:$PORT
     or in PLAYGROUND_LAB_HOSTS=...,tcp://$ADDRESS:$PORT
EOF
