"""Ports through the real stack (docs/api.md, "Ports"): what a server in an
instance listens on shows up in the instance's JSON, and its link opens it
through the proxy, on an origin of its own, for the session's owner only.

Port origins are ``<instance>-<port>.localhost:<port>``; Python does not
resolve ``*.localhost`` (browsers do), so requests go to 127.0.0.1 with the
origin's Host header."""
from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest
import requests
from websockets.sync.client import connect as ws_connect

from tests.integration.conftest import running_stack
from tests.stack import Stack, wait_for

pytestmark = [pytest.mark.engine, pytest.mark.stack]

PAGE = "<h1>served from node1</h1>\n"
WATCH_SECONDS = 3

# A stdlib-only server put into the instance: WebSocket echo on any GET with
# an Upgrade, the request body back on POST, the request's headers on GET.
ECHO_SERVER = r'''
import base64, hashlib, json, struct, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.headers.get("Upgrade", "").lower() == "websocket":
            return self.websocket()
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.answer(200, body, "application/json")

    def do_POST(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            body = b"".join(parts)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.answer(200, body, "application/octet-stream")

    def answer(self, status, body, kind):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def websocket(self):
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            opcode, size = head[0] & 0x0F, head[1] & 0x7F
            if size == 126:
                size = struct.unpack("!H", self.rfile.read(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(size)))
            if opcode == 9:
                opcode = 10
            self.frame(opcode, data)
            if opcode == 8:
                return

    def frame(self, opcode, data):
        size = len(data)
        if size < 126:
            head = bytes([0x80 | opcode, size])
        elif size < 65536:
            head = bytes([0x80 | opcode, 126]) + struct.pack("!H", size)
        else:
            head = bytes([0x80 | opcode, 127]) + struct.pack("!Q", size)
        self.wfile.write(head + data)
        self.wfile.flush()

ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
'''


@pytest.fixture(scope="module")
def stack(tmp_path_factory, engine):
    yield from running_stack(engine, tmp_path_factory.mktemp("ports-stack"), redis_db=35,
                             env={"PLAYGROUND_PORTS_SECONDS": "1", "PLAYGROUND_WATCH_SECONDS": str(WATCH_SECONDS)})


class Person:
    """A user of the playground with one running session of one instance."""

    def __init__(self, stack: Stack, name: str) -> None:
        self.stack = stack
        self.api = stack.client(name)
        body = self.api.post(f"{stack.url}/api/sessions/", json={}, timeout=30).json()
        self.sid = body["id"]
        self.iid = body["instances"][0]["id"]
        wait_for(lambda: self.instance()["state"] == "running", timeout=60, what=f"{name}'s instance to run")

    def instance(self) -> dict:
        body = self.api.get(f"{self.stack.url}/api/sessions/{self.sid}/", timeout=10).json()
        return body["instances"][0]

    def run(self, command: str) -> str:
        answer = self.api.post(f"{self.stack.url}/api/sessions/{self.sid}/instances/{self.iid}/exec/",
                               json={"command": command, "timeout": 20}, timeout=30)
        assert answer.status_code == 200 and answer.json()["exit_code"] == 0, answer.text
        return answer.json()["output"]

    def serve(self, command: str) -> None:
        """Start a server in the background, detached from the exec."""
        self.run(f"setsid nohup {command} </dev/null >/tmp/server.log 2>&1 &")

    def open_port(self, port: int) -> requests.Response:
        return self.api.post(f"{self.stack.url}/api/sessions/{self.sid}/instances/{self.iid}/ports/",
                             json={"port": port}, timeout=10)

    def link(self, port: int) -> str:
        answer = self.open_port(port)
        assert answer.status_code == 200, answer.text
        assert answer.json()["port"] == port
        return answer.json()["url"]


@pytest.fixture(scope="module")
def alice(stack) -> Person:
    alice = Person(stack, "alice")
    alice.api.put(f"{stack.url}/api/sessions/{alice.sid}/instances/{alice.iid}/files/",
                  params={"path": "/srv/site/index.html"}, data=PAGE.encode(), timeout=10).raise_for_status()
    alice.api.put(f"{stack.url}/api/sessions/{alice.sid}/instances/{alice.iid}/files/",
                  params={"path": "/srv/echo.py"}, data=ECHO_SERVER.encode(), timeout=10).raise_for_status()
    alice.serve("python3 -m http.server 8080 --directory /srv/site")
    alice.serve("python3 /srv/echo.py 8765")
    return alice


@pytest.fixture(scope="module")
def bob(stack) -> Person:
    return Person(stack, "bob")


# -- talking to a port's origin ------------------------------------------------------------

def get(stack: Stack, url: str, *, cookie: str | None = None, method: str = "GET", **kwargs) -> requests.Response:
    """``url`` (a port origin's) fetched through the playground's listening address."""
    parts = urlsplit(url)
    headers = {"Host": parts.netloc, **kwargs.pop("headers", {})}
    if cookie:
        headers["Cookie"] = f"playground_port={cookie}"
    target = f"http://127.0.0.1:{stack.port}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")
    return requests.request(method, target, headers=headers, allow_redirects=False, timeout=30, **kwargs)


def enter(stack: Stack, url: str) -> tuple[str, str]:
    """Follow a link's grant: the proxy's cookie and the clean URL it redirects to."""
    answer = get(stack, url)
    assert answer.status_code == 302, answer.text
    cookie = answer.cookies.get("playground_port")
    assert cookie, answer.headers
    assert "HttpOnly" in answer.headers["Set-Cookie"] and "SameSite=Lax" in answer.headers["Set-Cookie"]
    location = answer.headers["Location"]
    assert "pg_grant" not in location
    parts = urlsplit(url)
    return cookie, f"{parts.scheme}://{parts.netloc}{location}"


def found_port(person: Person, port: int) -> dict:
    return wait_for(
        lambda: next((p for p in person.instance()["ports"] if p["port"] == port), None),
        timeout=30, interval=0.5, what=f"port {port} in the instance's ports",
    )


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# -- the tests -------------------------------------------------------------------------------

def test_a_served_port_shows_up_and_its_link_serves_the_page(stack, alice):
    entry = found_port(alice, 8080)
    assert urlsplit(entry["url"]).netloc == f"{alice.iid}-8080.localhost:{stack.port}"

    cookie, clean = enter(stack, entry["url"])
    assert clean == f"http://{alice.iid}-8080.localhost:{stack.port}/"
    page = get(stack, clean, cookie=cookie)
    assert page.status_code == 200
    assert page.text == PAGE


def test_the_server_sees_no_playground_cookie_and_a_local_host(stack, alice):
    found_port(alice, 8765)
    cookie, clean = enter(stack, alice.link(8765))
    answer = get(stack, clean + "headers", headers={
        "Cookie": f"playground_port={cookie}; sessionid=secret; csrftoken=token; theirs=kept",
    })
    assert answer.status_code == 200, answer.text
    seen = answer.json()
    assert seen["host"] == "localhost:8765"
    assert seen["cookie"] == "theirs=kept"
    assert seen["x-forwarded-host"] == urlsplit(clean).netloc


def test_request_and_answer_bodies_stream_through(stack, alice):
    found_port(alice, 8765)
    cookie, clean = enter(stack, alice.link(8765))
    blob = bytes(range(256)) * 4096  # 1 MiB

    def pieces():  # no length known in advance: the body goes chunked
        for start in range(0, len(blob), 65536):
            yield blob[start:start + 65536]

    answer = get(stack, clean + "echo", cookie=cookie, method="POST", data=pieces())
    assert answer.status_code == 200, answer.text[:300]
    assert answer.content == blob


def test_without_grant_or_cookie_the_port_is_refused(stack, alice):
    entry = found_port(alice, 8080)
    bare = origin_of(entry["url"]) + "/"
    answer = get(stack, bare)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "forbidden"

    browser = get(stack, bare, headers={"Accept": "text/html,application/xhtml+xml"})
    assert browser.status_code == 403
    assert browser.headers["Content-Type"].startswith("text/html")

    forged = get(stack, bare + "?pg_grant=not-a-grant")
    assert forged.status_code == 403
    assert forged.json()["error"]["code"] == "forbidden"


def test_bob_cannot_reach_alices_port(stack, alice, bob):
    alice_url = found_port(alice, 8080)["url"]
    alice_origin = origin_of(alice_url)

    # No link for bob: her instance is as unknown to him as a missing one.
    refused = bob.api.post(f"{stack.url}/api/sessions/{alice.sid}/instances/{alice.iid}/ports/",
                           json={"port": 8080}, timeout=10)
    assert refused.status_code == 404

    # His own grant and cookie (for his instance's port 8080) do not open hers.
    bob_link = bob.link(8080)
    bob_cookie, _ = enter(stack, bob_link)
    with_his_grant = get(stack, f"{alice_origin}/?{urlsplit(bob_link).query}")
    assert with_his_grant.status_code == 403
    with_his_cookie = get(stack, alice_origin + "/", cookie=bob_cookie)
    assert with_his_cookie.status_code == 403

    # A grant signed for bob, on her instance's origin (as if the server
    # signed it by mistake): the proxy checks that he owns the session.
    forged = stack.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model; from playground.ports.actions import port_url; "
        f"print(port_url(owner_id=get_user_model().objects.get(username='bob').pk, instance_id='{alice.iid}', port=8080))"
    )).strip().splitlines()[-1]
    answer = get(stack, forged)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


def test_a_port_nobody_listens_on_gives_502(stack, alice):
    cookie, clean = enter(stack, alice.link(9))
    answer = get(stack, clean, cookie=cookie)
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["code"] == "bad_gateway"
    assert "port 9" in error["message"]


def test_a_websocket_through_the_proxy_echoes(stack, alice):
    found_port(alice, 8765)
    cookie, clean = enter(stack, alice.link(8765))
    parts = urlsplit(clean)
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=10)
    with ws_connect(f"ws://{parts.netloc}/ws", sock=sock, open_timeout=10,
                    additional_headers={"Cookie": f"playground_port={cookie}"},
                    origin=origin_of(clean)) as ws:
        ws.send("hello through the proxy")
        assert ws.recv(timeout=10) == "hello through the proxy"
        ws.send(b"\x00\x01binary")
        assert ws.recv(timeout=10) == b"\x00\x01binary"


def test_a_websocket_without_the_cookie_is_refused(stack, alice):
    found_port(alice, 8765)
    netloc = urlsplit(alice.link(8765)).netloc
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=10)
    with (
        pytest.raises(Exception) as refused,
        ws_connect(f"ws://{netloc}/ws", sock=sock, open_timeout=10) as ws,
    ):
        ws.recv(timeout=10)
    assert "403" in str(refused.value) or "4403" in str(refused.value)


def test_a_server_that_stops_leaves_the_list(stack, alice):
    alice.serve("python3 -m http.server 8098 --bind 127.0.0.1 --directory /srv/site")
    alice.run("for i in $(seq 100); do grep -q ':1FA2 ' /proc/net/tcp && exit 0; sleep 0.1; done; exit 1")
    alice.serve("python3 -m http.server 8099 --directory /srv/site")
    found_port(alice, 8099)
    # Found by a scan after both started: one on loopback only is no port to open.
    assert 8098 not in [p["port"] for p in alice.instance()["ports"]]
    alice.run("pkill -f 'http[.]server 8099'")
    wait_for(lambda: all(p["port"] != 8099 for p in alice.instance()["ports"]), timeout=30, interval=0.5,
             what="port 8099 to leave the list")


def test_the_open_port_endpoint_checks_the_port(stack, alice):
    assert alice.open_port(0).status_code == 400
    assert alice.open_port(70000).status_code == 400
    assert alice.open_port(8080).json()["url"].startswith(f"http://{alice.iid}-8080.localhost:{stack.port}/?pg_grant=")



def test_a_session_nobody_reads_is_not_scanned_until_somebody_does(stack):
    carol = Person(stack, "carol")  # read while it starts: watched for WATCH_SECONDS
    carol.api.put(f"{stack.url}/api/sessions/{carol.sid}/instances/{carol.iid}/files/",
                  params={"path": "/srv/site/index.html"}, data=PAGE.encode(), timeout=10).raise_for_status()
    time.sleep(WATCH_SECONDS + 1)  # nobody reads it now (exec and files do not count)
    carol.serve("python3 -m http.server 8090 --directory /srv/site")
    carol.run("for i in $(seq 100); do grep -q ':1F9A ' /proc/net/tcp && exit 0; sleep 0.1; done; exit 1")
    time.sleep(3)  # three scan rounds (PLAYGROUND_PORTS_SECONDS=1) pass it by
    assert carol.instance()["ports"] == []  # this read is the first since: nothing was asked
    found_port(carol, 8090)  # ... and it has the instance looked at at once
