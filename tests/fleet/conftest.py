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

import threading
from pathlib import Path

import pytest

from tests.engines import LabHostMachine


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fleet-pki")


@pytest.fixture(scope="session")
def machines(pki):
    """Lab hosts 1 to 3, started side by side (loading the image takes most
    of it); the playground is told of 1 and 2, a test adds 3, which
    scripts/lab-host.sh makes (its certificate, its engine, its printout)."""
    made = [LabHostMachine(i, pki, by_script=i == 3) for i in (1, 2, 3)]
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
