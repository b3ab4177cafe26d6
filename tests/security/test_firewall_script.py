"""scripts/engine.sh's host firewall, installed and removed in a network
namespace of the test's own (`unshare -n`), so the host's rules are untouched."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "engine.sh"

pytestmark = pytest.mark.skipif(not shutil.which("unshare") or not shutil.which("iptables"),
                                reason="needs unshare and iptables (root)")


def in_own_netns(commands: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(["unshare", "-n", "bash", "-euc", commands], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_firewall_is_idempotent_and_removed_without_a_trace():
    output = in_own_netns(
        f"{SCRIPT} firewall-up >/dev/null; {SCRIPT} firewall-up >/dev/null;"
        "echo '--- up'; iptables -S;"
        f"{SCRIPT} firewall-down >/dev/null; {SCRIPT} firewall-down >/dev/null;"
        "echo '--- down'; iptables -S"
    )
    up, down = output.split("--- up\n")[1].split("--- down\n")
    rules = up.splitlines()
    assert rules.count("-A INPUT -i pgbr+ -j PLAYGROUND-INPUT") == 1
    assert rules.count("-A INPUT -s 10.213.0.0/16 ! -i lo -j PLAYGROUND-INPUT") == 1
    assert [r for r in rules if r.startswith("-A PLAYGROUND-INPUT")] == [
        "-A PLAYGROUND-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        "-A PLAYGROUND-INPUT -p tcp -m tcp --dport 5099 -j RETURN",
        "-A PLAYGROUND-INPUT -j REJECT --reject-with icmp-admin-prohibited",
    ]
    # The chain is hooked before anything else in INPUT.
    assert [r for r in rules if r.startswith("-A INPUT")][:2] == [
        "-A INPUT -i pgbr+ -j PLAYGROUND-INPUT", "-A INPUT -s 10.213.0.0/16 ! -i lo -j PLAYGROUND-INPUT"]
    assert "PLAYGROUND" not in down


def test_the_egress_chain_denies_private_link_local_and_the_operators_ranges_and_all_ipv6():
    output = in_own_netns(
        f"{SCRIPT} firewall-up >/dev/null; {SCRIPT} firewall-up >/dev/null;"
        "echo '--- up'; iptables -S; echo '--- up6'; ip6tables -S;"
        f"{SCRIPT} firewall-down >/dev/null;"
        "echo '--- down'; iptables -S; ip6tables -S",
        env={"PLAYGROUND_EGRESS_DENY": "203.0.113.0/24, 198.18.0.0/15",
             "PLAYGROUND_LAB_HOSTS": "unix:///run/x.sock,tcp://198.51.100.7:2376"},
    )
    up, rest = output.split("--- up\n")[1].split("--- up6\n")
    up6, down = rest.split("--- down\n")
    rules, rules6 = up.splitlines(), up6.splitlines()
    # Forwarding is dropped unless a rule passes it, in both families.
    assert "-P FORWARD DROP" in rules and "-P FORWARD DROP" in rules6
    # Hooked once, in DOCKER-USER (first in FORWARD), for every session bridge.
    assert next(r for r in rules if r.startswith("-A FORWARD")) == "-A FORWARD -j DOCKER-USER"
    assert rules.count("-A DOCKER-USER -i pgbr+ -j PLAYGROUND-EGRESS") == 1
    chain = [r for r in rules if r.startswith("-A PLAYGROUND-EGRESS")]
    assert chain[:2] == [
        "-A PLAYGROUND-EGRESS -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        "-A PLAYGROUND-EGRESS -m physdev --physdev-is-bridged -j RETURN",  # the session's own network
    ]
    denied = {r.split()[3] for r in chain if r.endswith("-j REJECT --reject-with icmp-admin-prohibited")}
    assert denied >= {"169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                      "127.0.0.0/8", "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4",
                      "203.0.113.0/24", "198.18.0.0/15",  # the operator's
                      "198.51.100.7/32"}  # a lab host
    # Only DNS, to this host's resolvers, passes before the denials.
    passed = [r for r in chain[2:] if r.endswith("-j RETURN")]
    assert all("--dport 53" in r for r in passed), passed
    # IPv6: nothing from a session bridge, to this host or beyond.
    assert rules6.count("-A INPUT -i pgbr+ -j PLAYGROUND-EGRESS") == 1
    assert rules6.count("-A FORWARD -i pgbr+ -j PLAYGROUND-EGRESS") == 1
    assert [r for r in rules6 if r.startswith("-A PLAYGROUND-EGRESS")] == [
        "-A PLAYGROUND-EGRESS -j REJECT --reject-with icmp6-adm-prohibited"]
    assert "PLAYGROUND" not in down
