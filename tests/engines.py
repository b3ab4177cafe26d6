"""Docker Engines of a test's own, started by scripts/engine.sh under a private
run directory, state directory and address pool, so the shared lab-host
engine is never restarted, reconfigured or filled. Used by the fault tests
(an engine to restart) and the lab-host TLS tests (an engine serving TCP)."""
from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import docker.tls
import requests

from tests.stack import ENGINE, ROOT, SHELL_IMAGE

SANDBOX_IMAGES = ("playground-shell:latest", "playground-docker:latest")


class OwnEngine:
    """A dockerd of the test's own, run by scripts/engine.sh.

    ``pool``: an address pool no other engine of the machine uses (the main
    engine's is 10.213.0.0/16); ``env``: more of engine.sh's settings (a TLS
    listener, the storage driver...)."""

    def __init__(self, pool: str, *, env: dict[str, str] | None = None, netns: str | None = None) -> None:
        name = f"pgt-{secrets.token_hex(3)}"
        # Short paths (unix socket names are limited) that the remapped root
        # can traverse (a pytest tmp dir is 0700).
        self.run_dir = Path("/run") / name
        self.state_dir = Path("/var/lib") / name
        self.url = f"unix://{self.run_dir}/docker.sock"
        # overlay2 unless asked: a btrfs loop file costs a mkfs and slower
        # image loads, and only the disk-limit tests need one.
        self.env = {**os.environ, "PLAYGROUND_RUN_DIR": str(self.run_dir),
                    "PLAYGROUND_STATE_DIR": str(self.state_dir), "PLAYGROUND_ENGINE_ADDRESS_POOL": pool,
                    "PLAYGROUND_ENGINE_STORAGE": "overlay2", **(env or {})}
        self.api = docker.APIClient(base_url=self.url, version="1.41", timeout=60)
        # In a network namespace of its own (a lab host of a fleet): entered
        # with nsenter, which keeps this mount namespace (`ip netns exec`
        # remounts /sys, and dockerd then finds no cgroups).
        self.prefix = ["nsenter", f"--net=/run/netns/{netns}"] if netns else []

    def script(self, *args: str, **env: str) -> str:
        done = subprocess.run([*self.prefix, str(ROOT / "scripts" / "engine.sh"), *args], env={**self.env, **env},
                              capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise AssertionError(f"engine.sh {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def restart(self, **env: str) -> float:
        """``engine.sh stop; start``; the seconds the engine was away."""
        began = time.monotonic()
        self.script("stop")
        self.script("start", **env)
        return time.monotonic() - began

    def load_images(self, images: tuple[str, ...] = SANDBOX_IMAGES) -> None:
        """Copy ``images`` from the main engine (no registry: docker save |
        docker load), each image through a pipe of its own, side by side."""
        with ThreadPoolExecutor(max_workers=len(images)) as pool:
            list(pool.map(self._load_image, images))

    def _load_image(self, image: str) -> None:
        save = subprocess.Popen(["docker", "-H", ENGINE, "save", image], stdout=subprocess.PIPE)
        subprocess.run(["docker", "-H", self.url, "load", "-q"], stdin=save.stdout, check=True,
                       capture_output=True, timeout=300)
        assert save.wait(timeout=60) == 0

    def remove(self) -> None:
        """Everything on it, then the daemon, its firewall chain and its directories."""
        try:
            for container in self.api.containers(all=True):
                self.api.remove_container(container["Id"], force=True, v=True)
            for network in self.api.networks():
                if network["Name"] not in ("none", "host", "bridge"):
                    self.api.remove_network(network["Id"])
            self.api.prune_volumes()
        except (docker.errors.DockerException, requests.exceptions.ConnectionError):
            pass  # not running (or never started): nothing of it can be left but files
        self.script("stop")
        self.script("firewall-down")
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if str(self.state_dir) in line.split()[1] or str(self.run_dir) in line.split()[1]]
        for mount in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)


CERTS = ROOT / "scripts" / "lab-host-certs.sh"
PORT = 2376


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


class LabHostMachine:
    """Lab host ``index``: a network namespace linked to this machine, an
    engine in it serving mutual TLS, and the route to its sandboxes.

    ``by_script``: made as an operator makes one, by scripts/lab-host.sh (its
    engine certificate from the installation's CA, its engine, its kernel
    settings, the printed route), on a machine whose shell image was built
    before (loaded into its data root first, with the engine started
    plainly and stopped: the script then finds it up to date, as on a second
    run, instead of a debootstrap of minutes)."""

    def __init__(self, index: int, pki: Path, *, by_script: bool = False) -> None:
        self.index = index
        self.pki = pki
        self.by_script = by_script
        self.printed = ""  # what scripts/lab-host.sh printed (by_script)
        self.netns = f"pgfleet{index}-{os.getpid() % 10000}"
        self.link = f"pgfl{index}h"  # this machine's end of the link
        self.near, self.address = f"10.251.{index}.1", f"10.251.{index}.2"
        self.pool = f"10.{244 + index}.0.0/16"
        self.url = f"tcp://{self.address}:{PORT}"
        self.lost = False
        self.tls_env = {
            "PLAYGROUND_ENGINE_TLS_LISTEN": f"{self.address}:{PORT}",
            "PLAYGROUND_ENGINE_TLS_DIR": str(pki / "server" / self.address),
            # The web tier (this machine, through the link) may reach the sandboxes.
            "PLAYGROUND_ENGINE_WEB_TIER": f"{self.near}/32",
        }
        if not by_script:
            subprocess.run([str(CERTS), str(pki), self.address], check=True, capture_output=True, timeout=60)
        self.engine = OwnEngine(self.pool, netns=self.netns, env={} if by_script else self.tls_env)
        client = pki / "client"
        self.tls = docker.tls.TLSConfig(client_cert=(str(client / "cert.pem"), str(client / "key.pem")),
                                        ca_cert=str(client / "ca.pem"), verify=True)

    def start(self) -> LabHostMachine:
        peer = f"pgfl{self.index}n"
        # What a run killed before its teardown left (a link, a route, a
        # namespace of the same host) is in the way: take it away first.
        subprocess.run(["ip", "route", "del", self.pool], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.link], capture_output=True, check=False)
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split()
        for stale in [name for name in listed if name.startswith(f"pgfleet{self.index}-")]:
            subprocess.run(["ip", "netns", "del", stale], capture_output=True, check=False)
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
        if self.by_script:
            return self._start_by_script()
        self.engine.script("start")
        run("ip", "route", "add", self.pool, "via", self.address)
        self.engine.load_images((SHELL_IMAGE,))
        return self

    def _start_by_script(self) -> LabHostMachine:
        self.engine.script("start")
        self.engine.load_images((SHELL_IMAGE,))
        self.engine.script("stop")
        done = subprocess.run(
            [*self.engine.prefix, str(ROOT / "scripts" / "lab-host.sh"), self.address, f"{self.near}/32",
             str(self.pki)],
            env={**self.engine.env, "PLAYGROUND_LAB_HOST_IMAGES": "shell"},
            capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            raise AssertionError(f"lab-host.sh failed:\n{done.stdout}\n{done.stderr}")
        self.printed = done.stdout
        # What the web tier needs, as printed: the route to the sandboxes.
        route = re.search(r"^\s*ip route add (\S+) via (\S+)\s*$", done.stdout, re.MULTILINE)
        assert route, done.stdout
        run("ip", "route", "add", route[1], "via", route[2])
        self.engine.env.update(self.tls_env)  # as the script started it, for revive() and remove()
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
        subprocess.run(["ip", "link", "set", self.link, "up"], capture_output=True, check=False)
        try:
            self.engine.script("start")  # a killed one: adopt what is left, to remove it
        except AssertionError:
            pass
        self.engine.remove()
        subprocess.run(["ip", "route", "del", self.pool], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.link], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, check=False)
