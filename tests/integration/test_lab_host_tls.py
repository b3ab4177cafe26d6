"""Lab hosts over the network: mutual TLS only (issue 15, point 5).

An engine of this module's own (scripts/engine.sh, PLAYGROUND_ENGINE_TLS_LISTEN
on a loopback address, certificates made by scripts/lab-host-certs.sh) serves
a playground whose only lab host is ``tcp://`` that address: a session starts
there, exec works, its terminal echoes. Whoever reaches the port without a
certificate of the installation's CA gets nothing (plain HTTP, TLS without a
certificate, a certificate of another CA, a lab host's own server
certificate), while the playground keeps working; the driver refuses an
engine it cannot verify (another CA, another host's name); a plaintext
``tcp://`` host stops every process of the stack at start-up.
"""
from __future__ import annotations

import http.server
import os
import random
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import docker
import docker.tls
import pytest
import requests

from sandboxes.base import DriverError
from sandboxes.docker import DockerDriver
from tests.engines import OwnEngine
from tests.integration.conftest import running_stack, wait_instance
from tests.integration.test_terminal import Terminal
from tests.stack import PYTHON, ROOT, SHELL_IMAGE, Stack

pytestmark = [pytest.mark.engine, pytest.mark.stack]

# An address pool no other engine of the machine uses (main: 10.213.0.0/16).
POOL = os.environ.get("PLAYGROUND_TEST_TLS_POOL", "10.237.0.0/16")
REDIS_DB = 8  # and 9 for the stack refused at start-up
CERTS = ROOT / "scripts" / "lab-host-certs.sh"


def free_port_on(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def make_certs(folder: Path, address: str, *names: str) -> Path:
    subprocess.run([str(CERTS), str(folder), address, *names], check=True, capture_output=True, timeout=60)
    return folder


class Lab:
    """Where the TLS engine listens and the certificates around it."""

    def __init__(self, root: Path) -> None:
        self.address = f"127.0.0.{random.randint(2, 250)}"
        self.port = free_port_on(self.address)
        self.url = f"tcp://{self.address}:{self.port}"
        self.certs = make_certs(root / "ours", self.address)
        self.server = self.certs / "server" / self.address
        self.client = self.certs / "client"
        # The same script run by someone else: a CA of their own.
        self.rogue = make_certs(root / "rogue", self.address)

    def options(self, client: Path | None = None, ca: Path | None = None) -> dict[str, str]:
        client = client or self.client
        return {"tls_ca_cert": str(ca or self.client / "ca.pem"), "tls_client_cert": str(client / "cert.pem"),
                "tls_client_key": str(client / "key.pem")}


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Lab:
    return Lab(tmp_path_factory.mktemp("lab-host-tls"))


@pytest.fixture(scope="module")
def tls_engine(lab):
    engine = OwnEngine(POOL, env={"PLAYGROUND_ENGINE_TLS_LISTEN": f"{lab.address}:{lab.port}",
                                  "PLAYGROUND_ENGINE_TLS_DIR": str(lab.server)})
    try:
        engine.script("start")
        engine.load_images((SHELL_IMAGE,))
        yield engine
    finally:
        engine.remove()


@pytest.fixture(scope="module")
def stack(lab, tls_engine, tmp_path_factory):
    yield from running_stack(tls_engine.api, tmp_path_factory.mktemp("tls-stack"), redis_db=REDIS_DB, env={
        "PLAYGROUND_LAB_HOSTS": lab.url,
        "PLAYGROUND_LAB_HOST_TLS_CA": str(lab.client / "ca.pem"),
        "PLAYGROUND_LAB_HOST_TLS_CERT": str(lab.client / "cert.pem"),
        # The secrets-as-files form, as compose or Kubernetes mount a key.
        "PLAYGROUND_LAB_HOST_TLS_KEY_FILE": str(lab.client / "key.pem"),
    })


def test_a_session_on_a_tls_lab_host_starts_execs_and_echoes_in_its_terminal(stack, lab, tls_engine):
    alice = stack.client("alice")
    answer = alice.post(f"{stack.url}/api/sessions/", json={}, timeout=60)
    assert answer.status_code == 201, answer.text
    sid, iid = answer.json()["id"], answer.json()["instances"][0]["id"]
    wait_instance(stack, alice, sid, iid, "running", timeout=60)
    assert tls_engine.api.containers(filters={"label": f"playground.instance={iid}"})  # on the TLS engine
    done = alice.post(f"{stack.url}/api/sessions/{sid}/instances/{iid}/exec/",
                      json={"command": "echo over-$((6 * 7))"}, timeout=60)
    assert done.status_code == 200 and done.json() == {"exit_code": 0, "output": "over-42\n"}, done.text
    terminal = Terminal(stack, iid, token=stack.token("alice"))
    try:
        terminal.type("echo tls-$((40 + 2))\n")
        terminal.expect(rb"tls-42")
    finally:
        terminal.close()


def engine_answers(url: str, tls: docker.tls.TLSConfig | bool = False) -> list:
    client = docker.APIClient(base_url=url, version="1.41", timeout=10, tls=tls)
    client.trust_env = False  # our CA, not REQUESTS_CA_BUNDLE's (as the driver does)
    return client.containers(all=True)


def test_the_engine_gives_nothing_to_a_client_without_a_certificate_of_its_ca(lab, tls_engine, stack):
    address = f"{lab.address}:{lab.port}"
    # Plain HTTP: the engine answers that it speaks TLS, and nothing else.
    with pytest.raises(docker.errors.APIError) as plain:
        engine_answers(f"tcp://{address}")
    assert plain.value.status_code == 400 and "HTTPS" in str(plain.value)
    # TLS, the engine verified, but no certificate of ours.
    with pytest.raises(requests.exceptions.SSLError):  # the handshake, refused by the engine
        engine_answers(f"https://{address}", docker.tls.TLSConfig(ca_cert=str(lab.client / "ca.pem"), verify=True))
    # A client certificate of another CA.
    rogue = docker.tls.TLSConfig(client_cert=(str(lab.rogue / "client" / "cert.pem"),
                                              str(lab.rogue / "client" / "key.pem")),
                                 ca_cert=str(lab.client / "ca.pem"), verify=True)
    with pytest.raises(requests.exceptions.SSLError):  # the handshake, refused by the engine
        engine_answers(f"https://{address}", rogue)
    # A lab host's own certificate (our CA, but for serving only) as a client's.
    server_as_client = docker.tls.TLSConfig(client_cert=(str(lab.server / "cert.pem"), str(lab.server / "key.pem")),
                                            ca_cert=str(lab.client / "ca.pem"), verify=True)
    with pytest.raises(requests.exceptions.SSLError):  # the handshake, refused by the engine
        engine_answers(f"https://{address}", server_as_client)
    # The web tier's certificate works, and the playground still does.
    assert isinstance(engine_answers(f"https://{address}", docker.tls.TLSConfig(
        client_cert=(str(lab.client / "cert.pem"), str(lab.client / "key.pem")),
        ca_cert=str(lab.client / "ca.pem"), verify=True)), list)
    answer = stack.client("bob").post(f"{stack.url}/api/sessions/", json={}, timeout=60)
    assert answer.status_code == 201, answer.text
    wait_instance(stack, stack.client("bob"), answer.json()["id"], answer.json()["instances"][0]["id"], "running",
                  timeout=60)


class Impostor:
    """A TLS server posing as an engine: answers ``/_ping`` like one to
    whoever completes the handshake."""

    def __init__(self, address: str, folder: Path) -> None:
        class Ping(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Api-Version", "1.41")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((address, 0), Ping)
        self.server.handle_error = lambda *args: None  # refused handshakes are the point
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"tcp://{address}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answers_without_verification(self) -> bool:
        url = self.url.replace("tcp://", "https://") + "/_ping"
        return requests.get(url, verify=False, timeout=10).text == "OK"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # the control request's
@pytest.mark.parametrize("posing_as", ["a server of another CA", "another lab host of our CA"])
def test_the_driver_refuses_an_engine_it_cannot_verify(lab, tmp_path, posing_as):
    if posing_as == "a server of another CA":
        impostor = Impostor(lab.address, lab.rogue / "server" / lab.address)
    else:  # a certificate of our CA, made for another address than the one we dial
        other = f"127.0.0.{251 if lab.address != '127.0.0.251' else 252}"
        impostor = Impostor(lab.address, make_certs(lab.certs, other) / "server" / other)
    try:
        assert impostor.answers_without_verification()  # what skipping verification would have accepted
        driver = DockerDriver(url=impostor.url, deployment="test-tls", ping_timeout=10, **lab.options())
        with pytest.raises(DriverError, match="CERTIFICATE_VERIFY_FAILED"):
            driver.ping()
    finally:
        impostor.close()


def test_every_process_of_the_stack_refuses_a_plaintext_tcp_lab_host_at_start_up(tmp_path):
    env = Stack(tmp_path, redis_db=REDIS_DB + 1, env={"PLAYGROUND_LAB_HOSTS": "tcp://127.0.0.1:2375"}).env
    commands = {
        "daphne": [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", "0", "playground.asgi:application"],
        "worker": [PYTHON, "-m", "celery", "-A", "playground", "worker", "--pool", "solo"],
        "watch_engines": [PYTHON, "manage.py", "watch_engines"],
    }
    started = {name: subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True) for name, argv in commands.items()}
    try:
        for name, process in started.items():
            output, _ = process.communicate(timeout=60)
            assert process.returncode != 0, f"{name} started:\n{output[-2000:]}"
            assert ("PLAYGROUND_LAB_HOSTS: tcp://127.0.0.1:2375 is reached over the network, which needs mutual "
                    "TLS: set PLAYGROUND_LAB_HOST_TLS_CA") in output, f"{name}:\n{output[-2000:]}"
    finally:
        for process in started.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
