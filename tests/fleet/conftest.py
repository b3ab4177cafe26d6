"""The fleet tier: lab hosts as a training centre runs them, several at once,
each a Docker Engine (scripts/engine.sh) in a network namespace of its own with
an address of its own, reached over TCP with mutual TLS (the certificates of
scripts/lab-host-certs.sh), its sandboxes' address pool routed to it as a
remote machine's would be. A playground whose lab hosts they are places,
cordons, drains, adds hosts and loses one whose engine is SIGKILLed and whose
link is cut.

Addresses: host i is 10.251.i.2 (this machine's end of its link 10.251.i.1),
its address pool 10.24(4+i).0.0/16; nothing here leaves the machine.
"""
from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import docker
import docker.tls
import pytest

from tests.engines import OwnEngine
from tests.stack import ROOT, SHELL_IMAGE

CERTS = ROOT / "scripts" / "lab-host-certs.sh"
PORT = 2376


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


class LabHostMachine:
    """Lab host ``index``: a network namespace linked to this machine, an
    engine in it serving mutual TLS, and the route to its sandboxes."""

    def __init__(self, index: int, pki: Path) -> None:
        self.index = index
        self.netns = f"pgfleet{index}-{os.getpid() % 10000}"
        self.link = f"pgfl{index}h"  # this machine's end of the link
        self.near, self.address = f"10.251.{index}.1", f"10.251.{index}.2"
        self.pool = f"10.{244 + index}.0.0/16"
        self.url = f"tcp://{self.address}:{PORT}"
        self.lost = False
        subprocess.run([str(CERTS), str(pki), self.address], check=True, capture_output=True, timeout=60)
        self.engine = OwnEngine(self.pool, netns=self.netns, env={
            "PLAYGROUND_ENGINE_TLS_LISTEN": f"{self.address}:{PORT}",
            "PLAYGROUND_ENGINE_TLS_DIR": str(pki / "server" / self.address),
            # The web tier (this machine, through the link) may reach the sandboxes.
            "PLAYGROUND_ENGINE_WEB_TIER": f"{self.near}/32",
        })
        client = pki / "client"
        self.tls = docker.tls.TLSConfig(client_cert=(str(client / "cert.pem"), str(client / "key.pem")),
                                        ca_cert=str(client / "ca.pem"), verify=True)

    def start(self) -> LabHostMachine:
        peer = f"pgfl{self.index}n"
        # What a run killed before its teardown left (a link, a route, a
        # namespace of the same host) is in the way: take it away first.
        subprocess.run(["ip", "route", "del", self.pool], capture_output=True)
        subprocess.run(["ip", "link", "del", self.link], capture_output=True)
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
        for stale in [name for name in listed if name.startswith(f"pgfleet{self.index}-")]:
            subprocess.run(["ip", "netns", "del", stale], capture_output=True)
        run("ip", "netns", "add", self.netns)
        run("ip", "link", "add", self.link, "type", "veth", "peer", "name", peer)
        run("ip", "link", "set", peer, "netns", self.netns)
        run("ip", "addr", "add", f"{self.near}/30", "dev", self.link)
        run("ip", "link", "set", self.link, "up")
        inside = ["ip", "netns", "exec", self.netns]
        run(*inside, "ip", "addr", "add", f"{self.address}/30", "dev", peer)
        run(*inside, "ip", "link", "set", peer, "up")
        run(*inside, "ip", "link", "set", "lo", "up")
        run(*inside, "ip", "route", "add", "default", "via", self.near)
        self.engine.script("start")
        run("ip", "route", "add", self.pool, "via", self.address)
        self.engine.load_images((SHELL_IMAGE,))
        return self

    def remote_api(self) -> docker.APIClient:
        api = docker.APIClient(base_url=f"https://{self.address}:{PORT}", version="1.41", timeout=30, tls=self.tls)
        api.trust_env = False
        return api

    def kill(self) -> None:
        """The machine is lost: its engine SIGKILLed, its link cut."""
        pid = int((self.engine.run_dir / "docker.pid").read_text())
        os.kill(pid, 9)
        run("ip", "link", "set", self.link, "down")
        self.lost = True

    def revive(self) -> None:
        """The machine is back: its link up, its engine started again."""
        run("ip", "link", "set", self.link, "up")
        self.engine.script("start")
        self.lost = False

    def remove(self) -> None:
        subprocess.run(["ip", "link", "set", self.link, "up"], capture_output=True)
        try:
            self.engine.script("start")  # a killed one: adopt what is left, to remove it
        except AssertionError:
            pass
        self.engine.remove()
        subprocess.run(["ip", "route", "del", self.pool], capture_output=True)
        subprocess.run(["ip", "link", "del", self.link], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fleet-pki")


@pytest.fixture(scope="session")
def machines(pki):
    """Lab hosts 1 to 3, started side by side (loading the image takes most
    of it); the playground is told of 1 and 2, a test adds 3."""
    made = [LabHostMachine(i, pki) for i in (1, 2, 3)]
    errors: list[BaseException] = []

    def start(machine: LabHostMachine) -> None:
        try:
            machine.start()
        except BaseException as exc:  # noqa: BLE001 - raised below, after cleaning up
            errors.append(exc)

    try:
        threads = [threading.Thread(target=start, args=(m,)) for m in made]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        yield made
    finally:
        for machine in made:
            machine.remove()
