#!/usr/bin/env bash
# The project-owned Docker Engine (the local lab host).
#
#   scripts/engine.sh start    start it, or adopt one that already answers
#   scripts/engine.sh stop     stop it, if the pidfile names our dockerd; its
#                              sandboxes run on (live restore) and the host
#                              firewall stays: the next start adopts them
#   scripts/engine.sh status   exit 0 when the socket answers (and show its
#                              storage: btrfs loop file or overlay2), 3 when not
#   (PLAYGROUND_ENGINE_TLS_LISTEN=ADDRESS:PORT: start serves TCP too, mutual
#   TLS only, with the certificates of scripts/lab-host-certs.sh; see below)
#   scripts/engine.sh firewall-up|firewall-down
#                              only the host firewall (start installs it; only
#                              firewall-down removes it, once no sandbox of this
#                              engine is left); also for a remote lab host's machine
#
# Live restore: a restart of the engine (an upgrade, a crash, `stop; start`)
# costs no sandbox: containers, their terminals and nested engines run on
# while dockerd is away, and the new dockerd adopts them, user namespace
# remapping included (tests/faults/test_engine_restart.py). A second engine beside this one
# (tests) takes its own PLAYGROUND_RUN_DIR, PLAYGROUND_STATE_DIR and
# PLAYGROUND_ENGINE_ADDRESS_POOL: its firewall is then a chain of its own.
#
# A dockerd of its own (socket, data root, exec root, pidfile, no default
# bridge) so it never touches a system Docker. User namespaces are remapped:
# root in a sandbox is uid 100000+ on the host, which is what lets Docker run
# inside an instance without --privileged (docs/security.md). dockerd creates the
# `dockremap` user and its /etc/subuid, /etc/subgid ranges itself on first start.
# iptables stays on: it isolates the session networks from each other.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DOCKERD=/usr/sbin/dockerd
START_TIMEOUT=30
# The engine's address pool: every sandbox network is carved out of it, so it
# is also what the host firewall below recognises sandboxes by.
ENGINE_ADDRESS_POOL="${PLAYGROUND_ENGINE_ADDRESS_POOL:-10.213.0.0/16}"
# One network per session (and per pooled instance) is carved out of the pool:
# /26 networks (62 addresses, for a session's few instances) give 1024 of them
# in a /16, where /24 would give 256, fewer than the sessions a host holds.
ENGINE_NETWORK_SIZE="${PLAYGROUND_ENGINE_NETWORK_SIZE:-26}"
# The one host service sandboxes may reach: the read-only image mirror.
MIRROR_PORT="${PLAYGROUND_MIRROR_PORT:-5099}"
# One chain per engine (per address pool): removing one engine's firewall
# never lifts another's. The main engine keeps the historical name.
if [ "$ENGINE_ADDRESS_POOL" = 10.213.0.0/16 ]; then
    FIREWALL_CHAIN=PLAYGROUND-INPUT
else
    FIREWALL_CHAIN="PLAYGROUND-IN-$(printf '%s' "$ENGINE_ADDRESS_POOL" | md5sum | cut -c1-8)"
fi
# The egress filter's chains (FORWARD: where `internet` sandboxes may go; and
# IPv6), one per engine as well.
if [ "$ENGINE_ADDRESS_POOL" = 10.213.0.0/16 ]; then
    EGRESS_CHAIN=PLAYGROUND-EGRESS
else
    EGRESS_CHAIN="PLAYGROUND-EG-$(printf '%s' "$ENGINE_ADDRESS_POOL" | md5sum | cut -c1-8)"
fi
if [ "$ENGINE_ADDRESS_POOL" = 10.213.0.0/16 ]; then
    WEB_TIER_CHAIN=PLAYGROUND-WEB
else
    WEB_TIER_CHAIN="PLAYGROUND-WEB-$(printf '%s' "$ENGINE_ADDRESS_POOL" | md5sum | cut -c1-8)"
fi
# Destinations no sandbox may reach even with `internet` egress: this host's
# own networks and whatever the operator's are (private ranges, shared
# address space, link-local with the cloud metadata service at
# 169.254.169.254, loopback, "this network", multicast and reserved). The
# operator adds more (PLAYGROUND_EGRESS_DENY, IPv4 CIDRs separated by commas
# or spaces); the lab hosts named by PLAYGROUND_LAB_HOSTS (tcp://HOST:PORT)
# are added when this script sees that variable.
EGRESS_DENY_ALWAYS="0.0.0.0/8 10.0.0.0/8 100.64.0.0/10 127.0.0.0/8 169.254.0.0/16 172.16.0.0/12 192.168.0.0/16 224.0.0.0/4 240.0.0.0/4"
# Session bridges are named pgbr<digest> by sandboxes/docker.py.
BRIDGE_PREFIX=pgbr

# shellcheck disable=SC2054  # the commas belong to --default-address-pool
engine_args=(
    --host "unix://$ENGINE_SOCKET_PATH"
    --exec-root "$ENGINE_EXEC_ROOT"
    --pidfile "$ENGINE_PIDFILE"
    --bridge none
    --userns-remap default
    --default-address-pool "base=$ENGINE_ADDRESS_POOL,size=$ENGINE_NETWORK_SIZE"
    --log-opt max-size=1m
    --log-opt max-file=1
)
# Off only to show what a restart without it costs (tests/faults).
if [ "${PLAYGROUND_ENGINE_LIVE_RESTORE:-1}" != 0 ]; then
    engine_args+=(--live-restore)
fi
# Opt-in, for a lab host the web tier reaches over the network: the API on
# TCP too, mutual TLS only. PLAYGROUND_ENGINE_TLS_LISTEN=ADDRESS:PORT (2376 by
# convention; never 0.0.0.0 on a host with other networks than the web
# tier's) and, in PLAYGROUND_ENGINE_TLS_DIR, the folder that
# scripts/lab-host-certs.sh made for ADDRESS: ca.pem (clients must show a
# certificate of this CA), cert.pem and key.pem (the engine's own, with
# ADDRESS in its names). The unix socket stays. Sandboxes never reach the
# port: the host firewall refuses them every host port but the mirror's.
ENGINE_TLS_LISTEN="${PLAYGROUND_ENGINE_TLS_LISTEN:-}"
if [ -n "$ENGINE_TLS_LISTEN" ]; then
    engine_args+=(
        --host "tcp://$ENGINE_TLS_LISTEN"
        --tlsverify
        --tlscacert "$ENGINE_TLS_DIR/ca.pem"
        --tlscert "$ENGINE_TLS_DIR/cert.pem"
        --tlskey "$ENGINE_TLS_DIR/key.pem"
    )
fi

# Refuse to serve TCP without the files (dockerd would start, and fail late).
check_tls_files() {
    [ -n "$ENGINE_TLS_LISTEN" ] || return 0
    [[ "$ENGINE_TLS_LISTEN" =~ ^[^/]+:[0-9]+$ ]] ||
        die "engine: PLAYGROUND_ENGINE_TLS_LISTEN must be ADDRESS:PORT, not '$ENGINE_TLS_LISTEN'"
    local name
    for name in ca.pem cert.pem key.pem; do
        [ -r "$ENGINE_TLS_DIR/$name" ] ||
            die "engine: PLAYGROUND_ENGINE_TLS_LISTEN needs $ENGINE_TLS_DIR/$name (PLAYGROUND_ENGINE_TLS_DIR; make it with scripts/lab-host-certs.sh DIR ${ENGINE_TLS_LISTEN%:*})"
    done
}

# A reused engine keeps the flags it started with: say when they differ.
warn_tls_differs() {
    local pid
    [ -n "$ENGINE_TLS_LISTEN" ] || return 0
    if pid="$(our_pid)" && ! pid_is dockerd "$pid" "tcp://$ENGINE_TLS_LISTEN"; then
        warn "engine: the running engine does not listen on tcp://$ENGINE_TLS_LISTEN; stop and start it to serve TLS there"
    fi
}

answers() {
    timeout 10 "$DOCKER" -H "unix://$ENGINE_SOCKET_PATH" version >/dev/null 2>&1
}

# The pid in our pidfile when it is a live dockerd serving our socket.
our_pid() {
    local pid
    pid="$(cat "$ENGINE_PIDFILE" 2>/dev/null)" || return 1
    pid_is dockerd "$pid" "unix://$ENGINE_SOCKET_PATH" || return 1
    printf '%s\n' "$pid"
}

wait_answers() {
    local pid="$1" deadline=$((SECONDS + START_TIMEOUT))
    while ! answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            return 1
        fi
        sleep 0.3
    done
}

# dockerd runs its own containerd. When dockerd is killed outright, that
# containerd lingers for a moment and then shuts down on a broken log pipe; a
# new dockerd that sees its pid "still running" adopts it and times out waiting
# for a socket that never comes. So with no dockerd of ours alive, end it first.
# (Container shims are separate processes; the new containerd reconnects them.)
stop_orphan_containerd() {
    local pidfile="$ENGINE_EXEC_ROOT/containerd/containerd.pid" pid
    pid="$(cat "$pidfile" 2>/dev/null)" || return 0
    if pid_is containerd "$pid" "$ENGINE_EXEC_ROOT/containerd/containerd.toml"; then
        say "engine: ending containerd pid $pid left by a dead dockerd"
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_gone 10 "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone 5 "$pid" || die "engine: containerd pid $pid survived SIGKILL"
        fi
    fi
    rm -f "$pidfile"
}

# Sandboxes must not reach the lab host's own services (Redis, the web tier,
# the engine's API if bound to TCP, anything listening on 0.0.0.0 or on a
# bridge gateway). Packets from a sandbox to a host address go through INPUT,
# not FORWARD, so Docker's own isolation rules never see them. One chain of
# ours, hooked first in INPUT for the address pool: replies to connections the
# host opened pass, the image mirror passes, everything else is refused with
# "administratively prohibited" (fails fast, and tells a denial from a closed
# port). Idempotent: the chain is rebuilt and hooked once.
firewall_up() {
    command -v iptables >/dev/null || die "engine: iptables is missing (apt-get install iptables)"
    # One atomic replacement of the chain (declaring it flushes it, even with
    # --noflush): live sandboxes never see it half-built.
    iptables-restore -w --noflush <<EOF || die "engine: could not install the firewall chain $FIREWALL_CHAIN"
*filter
:$FIREWALL_CHAIN - [0:0]
-A $FIREWALL_CHAIN -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
-A $FIREWALL_CHAIN -p tcp --dport $MIRROR_PORT -j RETURN
-A $FIREWALL_CHAIN -j REJECT --reject-with icmp-admin-prohibited
COMMIT
EOF
    # Not from lo: the host's own connections to its bridge addresses come
    # from a pool address too. And by interface: the driver names session
    # bridges pgbr*, which also catches a sandbox spoofing its source address.
    if ! iptables -w -C INPUT ! -i lo -s "$ENGINE_ADDRESS_POOL" -j "$FIREWALL_CHAIN" 2>/dev/null; then
        iptables -w -I INPUT 1 ! -i lo -s "$ENGINE_ADDRESS_POOL" -j "$FIREWALL_CHAIN"
    fi
    if ! iptables -w -C INPUT -i "$BRIDGE_PREFIX+" -j "$FIREWALL_CHAIN" 2>/dev/null; then
        iptables -w -I INPUT 1 -i "$BRIDGE_PREFIX+" -j "$FIREWALL_CHAIN"
    fi
    say "engine: firewall $FIREWALL_CHAIN: $ENGINE_ADDRESS_POOL may reach only tcp/$MIRROR_PORT on this host"
    egress_up
}

# What `internet` egress may not reach, one IPv4 CIDR a line: the ranges
# above, the operator's PLAYGROUND_EGRESS_DENY and the lab hosts'
# addresses (an IPv4 literal, or a name this host resolves now).
egress_denied() {
    local item host extra="${PLAYGROUND_EGRESS_DENY:-}" labs="${PLAYGROUND_LAB_HOSTS:-}"
    # shellcheck disable=SC2086  # word splitting is the point
    printf '%s\n' $EGRESS_DENY_ALWAYS ${extra//,/ }
    for item in ${labs//,/ }; do
        case "$item" in tcp://*) ;; *) continue ;; esac
        host="${item#tcp://}" host="${host%%/*}" host="${host%:*}"
        if [[ "$host" =~ ^[0-9.]+$ ]]; then
            printf '%s/32\n' "$host"
        elif [ -n "$host" ] && [[ "$host" != *:* ]]; then
            getent ahostsv4 "$host" | awk '{ print $1 "/32" }' | sort -u ||
                warn "engine: lab host $host does not resolve now; add its address to PLAYGROUND_EGRESS_DENY"
        fi
    done
}

# The resolvers Docker hands sandboxes with egress (its embedded DNS asks
# them from inside the sandbox's network namespace, so the queries are
# forwarded like any other packet): this host's, as Docker picks them.
egress_resolvers() {
    local file
    for file in /etc/resolv.conf /run/systemd/resolve/resolv.conf; do
        [ -r "$file" ] && awk '$1 == "nameserver" && $2 ~ /^[0-9.]+$/ && $2 !~ /^127\./ { print $2 }' "$file"
    done | sort -u
}

# Where sandboxes with `internet` egress may go (docs/security.md, "The
# network"): forwarded packets from a session bridge meet one chain of ours,
# hooked first in DOCKER-USER (Docker keeps that chain, and its jump first
# in FORWARD, as it is, and puts its own per-network ACCEPTs after it; a
# jump of our own in FORWARD would end up below them). In it: replies pass,
# traffic inside one session bridge passes (bridged, not routed: the
# session's own network), DNS to this host's resolvers passes, and every
# denied destination is refused with "administratively prohibited". Other
# sessions' networks stay Docker's to isolate. IPv6: the driver never gives
# a session network IPv6 (the containers have it off), so every IPv6 packet
# from a session bridge is refused, forwarded or to this host. Forwarded
# traffic with no rule of Docker's is dropped (FORWARD policy DROP, both
# families), whoever turned forwarding on.
egress_up() {
    local cidr ns rules
    rules=":$EGRESS_CHAIN - [0:0]
-A $EGRESS_CHAIN -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
-A $EGRESS_CHAIN -m physdev --physdev-is-bridged -j RETURN"
    for ns in $(egress_resolvers); do
        rules+="
-A $EGRESS_CHAIN -d $ns/32 -p udp --dport 53 -j RETURN
-A $EGRESS_CHAIN -d $ns/32 -p tcp --dport 53 -j RETURN"
    done
    for cidr in $(egress_denied | sort -u); do
        rules+="
-A $EGRESS_CHAIN -d $cidr -j REJECT --reject-with icmp-admin-prohibited"
    done
    # DOCKER-USER exists once dockerd ran; before that, ours to make (dockerd
    # then keeps it and appends its RETURN).
    iptables -w -N DOCKER-USER 2>/dev/null || true
    iptables-restore -w --noflush <<EOF || die "engine: could not install the egress chain $EGRESS_CHAIN (a bad CIDR in PLAYGROUND_EGRESS_DENY?)"
*filter
$rules
COMMIT
EOF
    docker_user_first
    if ! iptables -w -C DOCKER-USER -i "$BRIDGE_PREFIX+" -j "$EGRESS_CHAIN" 2>/dev/null; then
        iptables -w -I DOCKER-USER 1 -i "$BRIDGE_PREFIX+" -j "$EGRESS_CHAIN"
    fi
    iptables -w -P FORWARD DROP || die "engine: could not set the FORWARD policy to DROP"
    if ! command -v ip6tables >/dev/null || ! ip6tables -w -S INPUT >/dev/null 2>&1; then
        warn "engine: no ip6tables here: IPv6 from sandboxes is not filtered (the driver gives them none)"
    else
        ip6tables-restore -w --noflush <<EOF || die "engine: could not install the IPv6 chain $EGRESS_CHAIN"
*filter
:$EGRESS_CHAIN - [0:0]
-A $EGRESS_CHAIN -j REJECT --reject-with icmp6-adm-prohibited
COMMIT
EOF
        local hook
        for hook in INPUT FORWARD; do
            if ! ip6tables -w -C "$hook" -i "$BRIDGE_PREFIX+" -j "$EGRESS_CHAIN" 2>/dev/null; then
                ip6tables -w -I "$hook" 1 -i "$BRIDGE_PREFIX+" -j "$EGRESS_CHAIN"
            fi
        done
        ip6tables -w -P FORWARD DROP || die "engine: could not set the IPv6 FORWARD policy to DROP"
    fi
    say "engine: egress $EGRESS_CHAIN: sandboxes reach no private, link-local or lab-host address; no IPv6"
    web_tier_up
}

# A lab host on a machine of its own: the web tier (terminal relays, the
# ports proxy) reaches its sandboxes' addresses through this machine, as
# forwarded packets, which the FORWARD policy drops unless a rule lets them
# in. PLAYGROUND_ENGINE_WEB_TIER lists the web tier's addresses (IPv4 CIDRs,
# commas or spaces); only they may open connections to sandboxes. Unset: no
# rule (a web tier on this machine reaches its bridges directly).
web_tier_up() {
    local cidr rules=":$WEB_TIER_CHAIN - [0:0]" from="${PLAYGROUND_ENGINE_WEB_TIER:-}"
    if [ -z "${from//[, ]/}" ]; then
        web_tier_down
        return
    fi
    for cidr in ${from//,/ }; do
        rules+="
-A $WEB_TIER_CHAIN -o $BRIDGE_PREFIX+ -s $cidr -j ACCEPT
-A $WEB_TIER_CHAIN -i $BRIDGE_PREFIX+ -d $cidr -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
    done
    rules+="
-A $WEB_TIER_CHAIN -j RETURN"
    # And their connections leave here from the bridge's own address (a
    # session network may have no route out: its sandboxes answer on-link).
    local nat=":$WEB_TIER_CHAIN - [0:0]"
    for cidr in ${from//,/ }; do
        nat+="
-A $WEB_TIER_CHAIN -s $cidr -j MASQUERADE"
    done
    iptables-restore -w --noflush <<RULES || die "engine: could not install $WEB_TIER_CHAIN (a bad CIDR in PLAYGROUND_ENGINE_WEB_TIER?)"
*filter
$rules
COMMIT
*nat
$nat
COMMIT
RULES
    # First in DOCKER-USER: Docker's isolation of internal session networks
    # (after it) drops whatever is not from the network itself, both ways.
    if ! iptables -w -C DOCKER-USER -j "$WEB_TIER_CHAIN" 2>/dev/null; then
        iptables -w -I DOCKER-USER 1 -j "$WEB_TIER_CHAIN"
    fi
    if ! iptables -w -t nat -C POSTROUTING -o "$BRIDGE_PREFIX+" -j "$WEB_TIER_CHAIN" 2>/dev/null; then
        iptables -w -t nat -I POSTROUTING 1 -o "$BRIDGE_PREFIX+" -j "$WEB_TIER_CHAIN"
    fi
    say "engine: sandboxes take connections from the web tier at ${from//,/ }"
}

web_tier_down() {
    while iptables -w -D DOCKER-USER -j "$WEB_TIER_CHAIN" 2>/dev/null; do :; done
    while iptables -w -t nat -D POSTROUTING -o "$BRIDGE_PREFIX+" -j "$WEB_TIER_CHAIN" 2>/dev/null; do :; done
    if iptables -w -F "$WEB_TIER_CHAIN" 2>/dev/null; then
        iptables -w -X "$WEB_TIER_CHAIN"
    fi
    if iptables -w -t nat -F "$WEB_TIER_CHAIN" 2>/dev/null; then
        iptables -w -t nat -X "$WEB_TIER_CHAIN"
    fi
}

# The jump to DOCKER-USER first in FORWARD, as dockerd itself puts it when it
# makes a network (with --bridge none it makes the chain only then, and rules
# it restores at start go in above it until then).
docker_user_first() {
    if [ "$(iptables -w -S FORWARD | sed -n 2p)" != "-A FORWARD -j DOCKER-USER" ]; then
        while iptables -w -D FORWARD -j DOCKER-USER 2>/dev/null; do :; done
        iptables -w -I FORWARD 1 -j DOCKER-USER
    fi
}

# The FORWARD policies stay DROP: other engines, and Docker, count on them.
egress_down() {
    local hook
    web_tier_down
    while iptables -w -D DOCKER-USER -i "$BRIDGE_PREFIX+" -j "$EGRESS_CHAIN" 2>/dev/null; do :; done
    if iptables -w -F "$EGRESS_CHAIN" 2>/dev/null; then
        iptables -w -X "$EGRESS_CHAIN"
    fi
    if command -v ip6tables >/dev/null; then
        for hook in INPUT FORWARD; do
            while ip6tables -w -D "$hook" -i "$BRIDGE_PREFIX+" -j "$EGRESS_CHAIN" 2>/dev/null; do :; done
        done
        if ip6tables -w -F "$EGRESS_CHAIN" 2>/dev/null; then
            ip6tables -w -X "$EGRESS_CHAIN"
        fi
    fi
}

firewall_down() {
    command -v iptables >/dev/null || return 0
    while iptables -w -D INPUT ! -i lo -s "$ENGINE_ADDRESS_POOL" -j "$FIREWALL_CHAIN" 2>/dev/null; do :; done
    while iptables -w -D INPUT -i "$BRIDGE_PREFIX+" -j "$FIREWALL_CHAIN" 2>/dev/null; do :; done
    if iptables -w -F "$FIREWALL_CHAIN" 2>/dev/null; then
        iptables -w -X "$FIREWALL_CHAIN"
        say "engine: firewall $FIREWALL_CHAIN removed"
    fi
    egress_down
}

show_log() {
    printf -- '--- last lines of %s ---\n' "$ENGINE_LOG" >&2
    tail -n 25 "$ENGINE_LOG" >&2 || true
}

# What the kernel must allow for a lab host of 1,000 sandboxes. Every
# container of a userns-remapped engine runs as ONE host uid (100000), so the
# per-uid limits are the whole host's: with the defaults the ~200th container
# fails ("unable to create session key: disk quota exceeded": runc makes a
# session keyring per container, 200 keys per uid) and the 128th inotify user
# (nested engines, editors) fails. Only ever raised, never lowered; how much
# one sandbox may take of them is bounded elsewhere (docs/security.md).
#   kernel.keys.maxkeys/maxbytes        keys per uid: one a container, and room
#                                       for what nested engines and learners make
#   fs.inotify.max_user_instances/watches  per uid: dockerd, containerd and
#                                       editors inside every docker instance
#   kernel.pid_max                      1,000 sandboxes of up to
#                                       PLAYGROUND_INSTANCE_PIDS processes
#   net.ipv4.neigh.default.gc_thresh*   the host's neighbour table holds an
#                                       entry per sandbox address it talks to
#                                       (the terminal relays): 1,024 by default
HOST_LIMITS=(
    kernel.keys.maxkeys=20000
    kernel.keys.maxbytes=2000000
    fs.inotify.max_user_instances=8192
    fs.inotify.max_user_watches=1048576
    kernel.pid_max=4194304
    net.ipv4.neigh.default.gc_thresh1=8192
    net.ipv4.neigh.default.gc_thresh2=32768
    net.ipv4.neigh.default.gc_thresh3=65536
)

raise_host_limits() {
    local item key want path have raised=()
    for item in "${HOST_LIMITS[@]}"; do
        key="${item%%=*}" want="${item#*=}"
        path="/proc/sys/${key//.//}"
        have="$(cat "$path" 2>/dev/null)" || { warn "engine: no $key on this kernel; left as it is"; continue; }
        if [ "$have" -lt "$want" ] 2>/dev/null; then
            if echo "$want" 2>/dev/null > "$path"; then
                raised+=("$key $have->$want")
            else
                warn "engine: could not raise $key to $want (it stays $have): fewer sandboxes fit on this host"
            fi
        fi
    done
    if [ "${#raised[@]}" -gt 0 ]; then
        say "engine: raised host limits for many sandboxes: ${raised[*]}"
    fi
}

# Hard disk limits (docs/security.md, "Resources"). The host's ext4 gives
# overlay2 no per-container quota, so the data root is a btrfs file system
# in a sparse loop file of its own: dockerd's btrfs driver then enforces
# `--storage-opt size` (the driver sets it to each sandbox's disk limit) with
# btrfs simple quotas, bytes and metadata (so inodes) alike, and no sandbox
# can take more of the host's disk than the loop file's size in all.
#   PLAYGROUND_ENGINE_STORAGE  btrfs (default) or overlay2 (no hard limit:
#                              the disk watchdog is then the only one)
#   PLAYGROUND_ENGINE_DISK_GB  the loop file's size when it is made (default:
#                              80 % of the free space, at most 1024); grow it
#                              later as docs/operations.md says
# Sets STORAGE_DRIVER and DATA_ROOT. Idempotent: made once, mounted again
# after a reboot. A kernel without btrfs falls back to overlay2, warning.
STORAGE_DRIVER=overlay2
DATA_ROOT="$ENGINE_DATA_ROOT"

prepare_storage() {
    local wanted="${PLAYGROUND_ENGINE_STORAGE:-btrfs}" gb free_gb
    case "$wanted" in
        overlay2) return 0 ;;
        btrfs) ;;
        *) die "engine: PLAYGROUND_ENGINE_STORAGE must be btrfs or overlay2, not '$wanted'" ;;
    esac
    if [ ! -f "$ENGINE_DISK_FILE" ]; then
        if ! grep -qw btrfs /proc/filesystems && ! modprobe btrfs 2>/dev/null; then
            warn "engine: this kernel has no btrfs: overlay2 storage, NO hard disk limit per sandbox (only the disk watchdog, every PLAYGROUND_DISK_CHECK_SECONDS)"
            return 0
        fi
        if ! command -v mkfs.btrfs >/dev/null || ! command -v btrfs >/dev/null; then
            die "engine: btrfs-progs is missing (apt-get install btrfs-progs, or run scripts/setup.sh; PLAYGROUND_ENGINE_STORAGE=overlay2 for no hard disk limit)"
        fi
        mkdir -p "$STATE_DIR"
        free_gb=$(( $(df -Pk "$STATE_DIR" | awk 'NR == 2 { print $4 }') / 1024 / 1024 ))
        gb="${PLAYGROUND_ENGINE_DISK_GB:-$(( free_gb * 8 / 10 ))}"
        if [ -z "${PLAYGROUND_ENGINE_DISK_GB:-}" ] && [ "$gb" -gt 1024 ]; then gb=1024; fi
        if ! [[ "$gb" =~ ^[0-9]+$ ]] || [ "$gb" -lt 1 ]; then die "engine: PLAYGROUND_ENGINE_DISK_GB must be a whole number of GB, at least 1 (got '$gb')"; fi
        if [ "$gb" -gt "$free_gb" ]; then
            warn "engine: the loop file ($gb GB) is larger than the free space ($free_gb GB): sandboxes together can fill this host's disk"
        fi
        say "engine: making the btrfs data root: a sparse $gb GB file $ENGINE_DISK_FILE"
        truncate -s "${gb}G" "$ENGINE_DISK_FILE.new"
        mkfs.btrfs -q -L playground-engine "$ENGINE_DISK_FILE.new" >/dev/null ||
            { rm -f "$ENGINE_DISK_FILE.new"; die "engine: mkfs.btrfs failed on $ENGINE_DISK_FILE.new"; }
        mv "$ENGINE_DISK_FILE.new" "$ENGINE_DISK_FILE"
        if [ -d "$ENGINE_DATA_ROOT" ]; then
            say "engine: the overlay2 data root $ENGINE_DATA_ROOT is no longer used (images: scripts/build-images.sh); remove it once no sandbox of the old engine runs"
        fi
    fi
    mkdir -p "$ENGINE_BTRFS_ROOT"
    if ! mountpoint -q "$ENGINE_BTRFS_ROOT"; then
        # discard: space freed inside goes back to the host's disk (the loop
        # device punches holes in the sparse file).
        mount -t btrfs -o loop,noatime,discard=async "$ENGINE_DISK_FILE" "$ENGINE_BTRFS_ROOT" ||
            die "engine: could not mount $ENGINE_DISK_FILE at $ENGINE_BTRFS_ROOT (btrfs); PLAYGROUND_ENGINE_STORAGE=overlay2 starts an engine without hard disk limits"
    fi
    if ! simple_quotas; then
        umount "$ENGINE_BTRFS_ROOT" 2>/dev/null || umount -l "$ENGINE_BTRFS_ROOT" || true
        warn "engine: this kernel has no btrfs simple quotas (Linux 6.7+): overlay2 storage, NO hard disk limit per sandbox (only the disk watchdog); full btrfs quota groups are not used (removing sandboxes would stall the engine)"
        return 0
    fi
    STORAGE_DRIVER=btrfs
    DATA_ROOT="$ENGINE_BTRFS_ROOT"
}

# btrfs simple quotas (Linux 6.7+): each extent is charged to the subvolume
# that wrote it, once, so a sandbox's limit holds and removing it costs
# nothing more. Full quota groups (`btrfs quota enable`) walk every shared
# extent when a subvolume goes: after 240 sandboxes were removed,
# btrfs-cleaner ran at 100 % of a core for over a quarter of an hour and a
# `docker run` waited 43 s behind it. Debian 12's btrfs-progs (6.2) cannot
# ask for simple quotas, so the ioctl is made here (BTRFS_IOC_QUOTA_CTL,
# BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA); full quota groups found on (an older
# engine.sh made them) are turned off first. dockerd's driver, finding quotas
# on, keeps them as they are. Returns 1 when the kernel cannot.
simple_quotas() {
    local uuid mode_file
    uuid="$(blkid -s UUID -o value "$ENGINE_DISK_FILE" 2>/dev/null)" || return 1
    mode_file="/sys/fs/btrfs/$uuid/qgroups/mode"
    if [ "$(cat "$mode_file" 2>/dev/null)" = squota ]; then
        return 0
    fi
    if [ -e "$mode_file" ]; then
        say "engine: turning full btrfs quota groups off for simple quotas"
        btrfs quota disable "$ENGINE_BTRFS_ROOT" || return 1
    fi
    perl -MFcntl -e 'sysopen(my $fh, $ARGV[0], O_RDONLY | O_DIRECTORY) or die "$!\n";
        my $args = pack("QQ", 4, 0); ioctl($fh, 0xC0109428, $args) or die "$!\n"' "$ENGINE_BTRFS_ROOT" 2>/dev/null ||
        return 1
    [ "$(cat "$mode_file" 2>/dev/null)" = squota ]
}

# One line on the engine's storage: driver, data root, and for btrfs the loop
# file's size and what it holds.
show_storage() {
    local line
    line="$(timeout 10 "$DOCKER" -H "unix://$ENGINE_SOCKET_PATH" info --format '{{.Driver}} {{.DockerRootDir}}' 2>/dev/null)" || return 0
    echo "engine: storage ${line% *} at ${line#* }"
    if [ "${line%% *}" = btrfs ] && mountpoint -q "$ENGINE_BTRFS_ROOT"; then
        df -Ph "$ENGINE_BTRFS_ROOT" | awk -v f="$ENGINE_DISK_FILE" 'NR == 2 {
            printf "engine: btrfs loop file %s: %s, %s used, %s free (hard disk limit per sandbox)\n", f, $2, $3, $4 }'
    elif [ "${line%% *}" != btrfs ]; then
        echo "engine: no hard disk limit per sandbox on ${line%% *} (the disk watchdog is the only limit)"
    fi
}

start() {
    need_root
    with_lock engine
    check_tls_files
    # Before any sandbox starts, and again on reuse (a reboot resets them).
    raise_host_limits
    # Before any sandbox can run, and again on reuse (a reboot or an operator
    # may have flushed it while the engine stayed up).
    firewall_up
    if answers; then
        say "engine: running (reused) at unix://$ENGINE_SOCKET_PATH"
        warn_tls_differs
        return 0
    fi
    local pid
    if pid="$(our_pid)"; then
        # Ours and alive but not answering yet: it may still be starting.
        say "engine: pid $pid is starting, waiting"
        if wait_answers "$pid"; then
            say "engine: running (reused) at unix://$ENGINE_SOCKET_PATH"
            return 0
        fi
        show_log
        die "engine: pid $pid does not answer on unix://$ENGINE_SOCKET_PATH; stop it (scripts/engine.sh stop) and retry"
    fi
    # A pidfile left by a killed daemon would make dockerd refuse to start
    # if its pid has been reused by some other process.
    rm -f "$ENGINE_PIDFILE"
    stop_orphan_containerd

    [ -x "$DOCKERD" ] || die "engine: $DOCKERD is missing (apt-get install docker.io, or run scripts/setup.sh)"
    prepare_storage
    mkdir -p "$RUN_DIR" "$ENGINE_EXEC_ROOT" "$DATA_ROOT"
    engine_args+=(--data-root "$DATA_ROOT" --storage-driver "$STORAGE_DRIVER")
    # Routing between session networks and published ports. (dockerd turns
    # it on too; doing it here makes a failure visible.) dockerd sets the
    # FORWARD policy to DROP only when it is the one that turns forwarding
    # on, and on a host where forwarding was on already (as here) it stayed
    # ACCEPT: firewall_up above sets DROP before this line, whoever turned
    # forwarding on; the policy is the floor under Docker's own FORWARD rules
    # (which stay while it is stopped and are checked again as it starts).
    if [ "$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null)" != 1 ]; then
        if ! echo 1 2>/dev/null > /proc/sys/net/ipv4/ip_forward; then
            warn "could not enable net.ipv4.ip_forward; published ports may not work"
        fi
    fi
    if ! getent passwd dockremap >/dev/null; then
        say "engine: first start, dockerd will create the dockremap user and its subordinate ids"
    fi
    # Keep one previous log for post-mortems; dockerd's own output is small.
    if [ -f "$ENGINE_LOG" ]; then mv -f "$ENGINE_LOG" "$ENGINE_LOG.1"; fi

    # Detached: the daemon must outlive this script and its terminal's signals.
    detached "$DOCKERD" "${engine_args[@]}" >"$ENGINE_LOG" 2>&1 </dev/null &
    pid=$!
    if wait_answers "$pid"; then
        say "engine: started (pid $pid) at unix://$ENGINE_SOCKET_PATH, storage $STORAGE_DRIVER at $DATA_ROOT"
        if [ -n "$ENGINE_TLS_LISTEN" ]; then
            say "engine: and at tcp://$ENGINE_TLS_LISTEN, mutual TLS (certificates of $ENGINE_TLS_DIR/ca.pem)"
        fi
        # dockerd restored its networks' rules: ours before them again.
        docker_user_first
        note_started engine
        return 0
    fi
    show_log
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        die "engine: dockerd did not answer within ${START_TIMEOUT}s; stopped it (log: $ENGINE_LOG)"
    fi
    die "engine: dockerd exited during start (log: $ENGINE_LOG)"
}

stop() {
    need_root
    with_lock engine
    local pid
    if ! pid="$(our_pid)"; then
        if answers; then
            say "engine: the daemon at unix://$ENGINE_SOCKET_PATH is not ours (no matching pidfile); leaving it"
        else
            say "engine: not running"
        fi
        return 0
    fi
    say "engine: stopping pid $pid (its sandboxes run on: live restore)"
    kill -TERM "$pid"
    # With live restore dockerd leaves at once; without it (an older config)
    # it gives containers their stop timeout (15 s by default) first.
    if ! wait_gone 40 "$pid"; then
        warn "engine: pid $pid still alive after 40s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone 5 "$pid" || die "engine: pid $pid survived SIGKILL"
    fi
    # The firewall stays: the sandboxes (and their bridges) outlive dockerd.
    say "engine: stopped"
}

status() {
    local pid
    if answers; then
        if pid="$(our_pid)"; then
            echo "engine: running (pid $pid) at unix://$ENGINE_SOCKET_PATH"
        else
            echo "engine: answering at unix://$ENGINE_SOCKET_PATH (not started through our pidfile)"
        fi
        show_storage
        return 0
    fi
    if pid="$(our_pid)"; then
        echo "engine: pid $pid alive but not answering at unix://$ENGINE_SOCKET_PATH"
    else
        echo "engine: not running"
    fi
    return 3
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    firewall-up) need_root; firewall_up ;;
    firewall-down) need_root; firewall_down ;;
    *) echo "usage: $0 start|stop|status|firewall-up|firewall-down" >&2; exit 2 ;;
esac
