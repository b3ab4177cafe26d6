"""Docker Engines of a test's own, started by scripts/engine.sh under a private
run directory, state directory and address pool, so the shared lab-host
engine is never restarted, reconfigured or filled. Used by the fault tests
(an engine to restart) and the lab-host TLS tests (an engine serving TCP)."""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import docker
import requests

from tests.stack import ENGINE, ROOT

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
                              capture_output=True, text=True, timeout=120)
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
        """Copy ``images`` from the main engine (no registry: docker save | docker load)."""
        save = subprocess.Popen(["docker", "-H", ENGINE, "save", *images], stdout=subprocess.PIPE)
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
