"""scripts/engine.sh's host firewall, installed and removed in a network
namespace of the test's own (`unshare -n`), so the host's rules are untouched."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "engine.sh"

pytestmark = pytest.mark.skipif(not shutil.which("unshare") or not shutil.which("iptables"),
                                reason="needs unshare and iptables (root)")


def in_own_netns(commands: str) -> str:
    done = subprocess.run(["unshare", "-n", "bash", "-euc", commands], capture_output=True, text=True, timeout=60)
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
