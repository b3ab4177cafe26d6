"""A playground with two web processes behind nginx, as an operator runs it:
two Daphnes on ports of their own, one Celery worker, one beat, and an nginx
of the test's own in front (the repository's deploy/nginx/playground.conf,
its ports and names replaced; config, pid and logs in the stack's directory).

``self.url`` is nginx's; ``web_url(name)`` reaches one Daphne directly.
``ReconnectingTerminal`` reconnects the way frontend/src/terminal.ts does."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import requests
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect

from tests.stack import PYTHON, ROOT, Stack, free_port, wait_for

SITE = ROOT / "deploy" / "nginx" / "playground.conf"
WEBS = ("web1", "web2")
UPSTREAM_HEADER = "X-Test-Upstream"
"""Added by the test's own nginx.conf (not the shipped site): which Daphne served a request."""

MiB = 1024 * 1024


def render_site(text: str, *, listen_port: int, upstreams: list[int]) -> str:
    """The shipped site with this stack's ports: upstream servers, listen
    address and site name replaced, each where the file says it should be."""

    def replace(old: str, new: str, count: int) -> None:
        nonlocal text
        found = text.count(old)
        assert found == count, f"{SITE} has {found} of {old!r}, the test expects {count}"
        text = text.replace(old, new)

    replace("server 127.0.0.1:8001 ", f"server 127.0.0.1:{upstreams[0]} ", 1)
    replace("server 127.0.0.1:8002 ", f"server 127.0.0.1:{upstreams[1]} ", 1)
    replace("    listen 80;\n", f"    listen 127.0.0.1:{listen_port};\n", 2)
    replace("    listen [::]:80;\n", "", 2)
    replace("server_name playground.example.org;", "server_name 127.0.0.1 localhost;", 1)
    return text


def nginx_conf(workdir: Path, site: Path) -> str:
    temp = workdir / "nginx-temp"
    temp.mkdir(exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach the pytest tmp dir
    return f"""{user}daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {workdir}/nginx-access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    add_header {UPSTREAM_HEADER} $upstream_addr always;
    include {site};
}}
"""


class OwnRedis:
    """A redis-server of the stack's own on a free port: the shared one has
    fewer databases than this tier's numbers (67, 68)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--databases", "69", "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._answers, timeout=10, what="the stack's Redis to answer")

    def _answers(self) -> bool:
        done = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True, check=False)
        return done.stdout.strip() == "PONG"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class MultiWebStack(Stack):
    def __init__(self, workdir: Path, *, redis_db: int, redis: str, env: dict[str, str] | None = None) -> None:
        super().__init__(workdir, redis_db=redis_db, redis=redis, env=env)
        # self.port (and so self.url) is nginx's.
        self.web_ports = {name: free_port() for name in WEBS}

    def web_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.web_ports[name]}"

    def web_of(self, upstream: str) -> str:
        """The name of the Daphne nginx reports as ``upstream`` (``127.0.0.1:port``)."""
        port = int(upstream.rsplit(":", 1)[1])
        return next(name for name, p in self.web_ports.items() if p == port)

    # -- life cycle -------------------------------------------------------------
    def _spawn_web(self) -> None:
        site = self.workdir / "playground.conf"
        site.write_text(render_site(SITE.read_text(), listen_port=self.port,
                                    upstreams=[self.web_ports[name] for name in WEBS]))
        conf = self.workdir / "nginx.conf"
        conf.write_text(nginx_conf(self.workdir, site))
        checked = subprocess.run(["nginx", "-t", "-q", "-e", str(self.workdir / "nginx-error.log"), "-c", str(conf)],
                                 capture_output=True, text=True, check=False)
        assert checked.returncode == 0, f"nginx -t:\n{checked.stdout}{checked.stderr}"
        self._spawn("nginx", ["nginx", "-e", str(self.workdir / "nginx-error.log"), "-c", str(conf)])
        for name in WEBS:
            self._spawn(name, [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.web_ports[name]),
                               "playground.asgi:application"])

    def start(self) -> MultiWebStack:
        super().start()
        try:
            for name in WEBS:
                self.wait_web(name)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_web(self, name: str, *, timeout: float = 60) -> None:
        def answers() -> bool:
            if self.process(name).poll() is not None:
                raise AssertionError(f"{name} exited:\n{self.log(name)[-3000:]}")
            try:
                return requests.get(self.web_url(name) + "/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(answers, timeout=timeout, what=f"{name} to answer")

    def terminate(self, name: str, *, timeout: float = 30) -> int:
        """SIGTERM one process, as a rolling restart (systemd, an operator) does; its exit code."""
        proc = self.process(name)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=timeout)
        self.processes = [(n, p) for n, p in self.processes if p is not proc]
        return code

    def session_client(self, username: str, base: str) -> requests.Session:
        """A token client whose relative paths go to ``base`` (nginx or one Daphne)."""
        http = self.client(username)
        http.base = base  # type: ignore[attr-defined]
        return http


class ReconnectingTerminal:
    """A terminal client that behaves as frontend/src/terminal.ts: on a lost
    connection it waits 0.5 s, doubling up to 20 s, connects again, asks for
    acknowledged output (``ack`` 0) and its size. A new connection and a
    ``replay`` event start the screen over, so ``screen`` holds what the
    current connection shows. Connections and their close codes are counted;
    ``upstream`` says which Daphne nginx chose for the current one."""

    FIRST_DELAY = 0.5
    MAX_DELAY = 20.0

    def __init__(self, url: str, iid: str, *, token: str) -> None:
        self.url = url.replace("http://", "ws://") + f"/ws/instances/{iid}/terminal/"
        self.headers = {"Authorization": f"Token {token}"}
        self.screen = bytearray()
        self.events: list[dict] = []
        self.connections = 0
        self.lost_at: float | None = None
        self.closes: list[int | None] = []
        self.upstream = ""
        self.ws = None
        self._connect()

    def _connect(self) -> None:
        attempt = 0
        while True:
            try:
                self.ws = connect(self.url, additional_headers=self.headers, open_timeout=30, compression=None,
                                  max_size=2 * MiB, legacy=True)
                break
            except (OSError, InvalidHandshake, TimeoutError):
                time.sleep(min(self.MAX_DELAY, self.FIRST_DELAY * 2 ** attempt))
                attempt += 1
        # The browser resets its screen on a new connection ("\x1bc"): what
        # shows from now on is what this connection brings, the replay first.
        self.screen.clear()
        self.connections += 1
        self.upstream = self.ws.response.headers.get(UPSTREAM_HEADER, "")
        self.ws.send(json.dumps({"type": "ack", "bytes": 0}))
        self.ws.send(json.dumps({"type": "resize", "cols": 100, "rows": 30}))

    def _reconnect(self, code: int | None) -> None:
        self.closes.append(code)
        self.lost_at = time.monotonic()
        time.sleep(self.FIRST_DELAY)
        self._connect()

    def read(self, timeout: float) -> None:
        try:
            frame = self.ws.recv(timeout=timeout)
        except TimeoutError:
            return
        except ConnectionClosed as closed:
            return self._reconnect(closed.rcvd.code if closed.rcvd else None)
        if isinstance(frame, bytes):
            self.screen += frame
            try:
                self.ws.send(json.dumps({"type": "ack", "bytes": len(frame)}))
            except ConnectionClosed:
                pass  # the next read reconnects
            return
        event = json.loads(frame)
        self.events.append(event)
        if event.get("type") == "replay":
            self.screen.clear()

    def type(self, text: str) -> None:
        try:
            self.ws.send(text.encode())
        except ConnectionClosed:
            pass  # lost on the way, as a keystroke into a dropped browser tab is

    def wait(self, predicate, *, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate()
            if found:
                return found
            self.read(timeout=min(0.5, max(0.01, deadline - time.monotonic())))
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; connections {self.connections}, "
                             f"closes {self.closes}, events {self.events[-10:]}, "
                             f"screen tail {bytes(self.screen[-300:])!r}")

    def expect(self, pattern: bytes, *, timeout: float = 60) -> re.Match:
        regex = re.compile(pattern)
        return self.wait(lambda: regex.search(self.screen), timeout=timeout, what=f"output matching {pattern!r}")

    def close(self) -> None:
        self.ws.close()
