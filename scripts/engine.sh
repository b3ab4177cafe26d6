#!/usr/bin/env bash
# The project-owned Docker Engine (the local lab host).
#
#   scripts/engine.sh start    start it, or adopt one that already answers
#   scripts/engine.sh stop     stop it, if the pidfile names our dockerd; its
#                              sandboxes run on (live restore) and the host
#                              firewall stays: the next start adopts them
#   scripts/engine.sh status   exit 0 when the socket answers, 3 when not
#   scripts/engine.sh firewall-up|firewall-down
#                              only the host firewall (start installs it; only
#                              firewall-down removes it, once no sandbox of this
#                              engine is left); also for a remote lab host's machine
#
# Live restore: a restart of the engine (an upgrade, a crash, `stop; start`)
# costs no sandbox: containers, their terminals and nested engines run on
# while dockerd is away, and the new dockerd adopts them (DESIGN.md records
# it working with user namespace remapping). A second engine beside this one
# (tests) takes its own PLAYGROUND_RUN_DIR, PLAYGROUND_STATE_DIR and
# PLAYGROUND_ENGINE_ADDRESS_POOL: its firewall is then a chain of its own.
#
# A dockerd of its own (socket, data root, exec root, pidfile, no default
# bridge) so it never touches a system Docker. User namespaces are remapped:
# root in a sandbox is uid 100000+ on the host, which is what lets Docker run
# inside an instance without --privileged (see DESIGN.md). dockerd creates the
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
# Session bridges are named pgbr<digest> by sandboxes/docker.py.
BRIDGE_PREFIX=pgbr

# shellcheck disable=SC2054  # the commas belong to --default-address-pool
engine_args=(
    --host "unix://$ENGINE_SOCKET_PATH"
    --data-root "$ENGINE_DATA_ROOT"
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
}

firewall_down() {
    command -v iptables >/dev/null || return 0
    while iptables -w -D INPUT ! -i lo -s "$ENGINE_ADDRESS_POOL" -j "$FIREWALL_CHAIN" 2>/dev/null; do :; done
    while iptables -w -D INPUT -i "$BRIDGE_PREFIX+" -j "$FIREWALL_CHAIN" 2>/dev/null; do :; done
    if iptables -w -F "$FIREWALL_CHAIN" 2>/dev/null; then
        iptables -w -X "$FIREWALL_CHAIN"
        say "engine: firewall $FIREWALL_CHAIN removed"
    fi
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

start() {
    need_root
    with_lock engine
    # Before any sandbox starts, and again on reuse (a reboot resets them).
    raise_host_limits
    # Before any sandbox can run, and again on reuse (a reboot or an operator
    # may have flushed it while the engine stayed up).
    firewall_up
    if answers; then
        say "engine: running (reused) at unix://$ENGINE_SOCKET_PATH"
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
    mkdir -p "$RUN_DIR" "$ENGINE_EXEC_ROOT" "$ENGINE_DATA_ROOT"
    # Routing between session networks and published ports. (dockerd turns
    # it on too; doing it here makes a failure visible.) dockerd drops
    # forwarded traffic by default only when it is the one that turns
    # forwarding on, so do as it would: this policy is the floor under its
    # own FORWARD rules (which stay while it is stopped and are checked
    # again as it starts).
    if [ "$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null)" != 1 ]; then
        if echo 1 2>/dev/null > /proc/sys/net/ipv4/ip_forward; then
            iptables -w -P FORWARD DROP || warn "could not set the FORWARD policy to DROP"
        else
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
        say "engine: started (pid $pid) at unix://$ENGINE_SOCKET_PATH"
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
