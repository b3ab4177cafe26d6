"""Terminal latency and throughput, measured on the real stack.

Starts its own playground (Daphne, a Celery worker and beat, under a deployment
label of its own) against the project's engine and Redis, unless --url and
--token point it at a running one. On one instance's terminal WebSocket:

* keystroke echo: one byte sent (to ``cat``, the TTY echoes it), time until
  it comes back; p50/p99 over --keystrokes, sent back to back, then again at
  a typist's pace (one every --typing-gap ms: between keys the processes on
  the path sleep and their caches cool, which costs more than the work);
* output throughput: a command printing --megabytes MB, acknowledged as a
  browser does (every frame), every byte counted until the end marker;

then the same with --sessions sessions open at once (each with a connected
terminal printing a line a second, driven from another process), and the same
figures with no web tier (the floors): a raw connection to the instance's
terminal relay (what the web tier reads), and the relay reached through the
engine (``docker exec``, the path the engine's own streams take). Prints
numbers, asserts nothing.

--remote puts the instances on a lab host of their own reached over TCP with
mutual TLS, as a fleet's are: an engine (scripts/engine.sh) in a network
namespace with an address of its own (10.251.6.2), its sandboxes' pool routed
through the link (tests/engines.py, LabHostMachine, as tests/fleet runs them).
The web tier's relay connections and the engine's API then cross that link
(a veth pair: what a network adds beyond it is not measured).

    .venv/bin/python bench/terminal.py [--keystrokes 300] [--megabytes 50] [--sessions 50] [--remote]
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import ssl
import sys
import tempfile
import time
from pathlib import Path

import requests
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.session_start import DEFAULT_PERIODS, machine, pct
from playground import priority
from tests.stack import ENGINE, Stack

END = b"__END__"
ECHO_DEADLINE = 30.0  # a terminal that stops echoing is reported, not waited for
ACK_EVERY = 64 * 1024
SETTLE = 5.0  # seconds for a fresh stack's start-up work (first beat round, first samples) to pass
# The command typed to print the flood, and the marker after it (split in the
# command line so that its echo does not match).
FLOOD = ("yes 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvw | head -c {size}; "
         "echo; echo __EN''D__\n")


class Api:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {token}"
        self.token = token

    def start(self) -> tuple[str, str]:
        created = self.http.post(self.url + "/api/sessions/", json={}, timeout=60)
        created.raise_for_status()
        session = created.json()
        iid = session["instances"][0]["id"]
        answer = self.http.post(f"{self.url}/api/sessions/{session['id']}/instances/{iid}/exec/",
                                json={"command": "true", "timeout": 120}, timeout=150)
        answer.raise_for_status()
        return session["id"], iid

    def end(self, sid: str) -> None:
        self.http.delete(f"{self.url}/api/sessions/{sid}/", timeout=120)


# -- through the web tier ----------------------------------------------------------------

class WebTerminal:
    def __init__(self, api: Api, iid: str) -> None:
        self.url = api.url.replace("http://", "ws://") + f"/ws/instances/{iid}/terminal/"
        self.headers = {"Authorization": f"Token {api.token}"}

    async def __aenter__(self) -> WebTerminal:  # noqa: PYI034 - the class is not subclassed
        self.unacked = 0
        self.ws = await connect(self.url, additional_headers=self.headers, compression=None,
                                max_size=4 * 1024 * 1024, max_queue=64)
        await self.ws.send(json.dumps({"type": "ack", "bytes": 0}))
        await self.ws.send(json.dumps({"type": "resize", "cols": 120, "rows": 40}))
        await self.until(lambda out, events: any(e.get("state") == "running" for e in events))
        await self.quiet()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()

    async def send(self, data: bytes) -> None:
        await self.ws.send(data)

    async def chunk(self) -> bytes:
        """The next output frame; events are skipped. Output is acknowledged as
        the browser client does: every 64 KiB, and when the terminal is quiet."""
        while True:
            frame = await self.ws.recv()
            if isinstance(frame, bytes):
                self.unacked += len(frame)
                if self.unacked >= ACK_EVERY:
                    await self.flush_acks()
                return frame

    async def flush_acks(self) -> None:
        if self.unacked:
            await self.ws.send(json.dumps({"type": "ack", "bytes": self.unacked}))
            self.unacked = 0

    async def until(self, done, timeout: float = 60) -> None:
        out, events = bytearray(), []
        async with asyncio.timeout(timeout):
            while not done(out, events):
                frame = await self.ws.recv()
                if isinstance(frame, bytes):
                    out += frame
                    await self.ws.send(json.dumps({"type": "ack", "bytes": len(frame)}))
                else:
                    events.append(json.loads(frame))

    async def quiet(self, seconds: float = 0.5) -> None:
        while True:
            await self.flush_acks()
            try:
                async with asyncio.timeout(seconds):
                    await self.chunk()
            except TimeoutError:
                return


async def web_echo(term, n: int, gap: float = 0.0) -> list[float]:
    await term.send(b"cat > /dev/null\n")
    await asyncio.sleep(0.5)
    await term.quiet()
    latencies = []
    # The measuring client's own garbage collections are not the server's
    # latency (a browser has none of Python's): none while timing.
    gc.collect()
    gc.disable()
    try:
        await _echo_loop(term, n, latencies, gap)
    finally:
        gc.enable()
    await term.send(b"\x03")
    await term.quiet()
    return latencies


async def _echo_loop(term, n: int, latencies: list[float], gap: float) -> None:
    # One keystroke first, not counted: it wakes the path after the quiet
    # before (the typing pace measures keystrokes after a pause).
    for i in range(-1, n):
        if gap:
            await asyncio.sleep(gap)
        started = time.perf_counter()
        await term.send(b"x")
        try:
            async with asyncio.timeout(ECHO_DEADLINE):
                while b"x" not in await term.chunk():
                    pass
        except TimeoutError:
            raise EOFError(f"keystroke {i} was not echoed within {ECHO_DEADLINE:.0f} s") from None
        if i >= 0:
            latencies.append(time.perf_counter() - started)
        if i % 100 == 99:  # keep the line short; no pause, the next keystroke is still back to back
            await term.send(b"\n")


async def web_throughput(term, size: int, progress: list[int] | None = None) -> tuple[int, float]:
    await term.quiet()
    started = time.perf_counter()
    await term.send(FLOOD.format(size=size).encode())
    total = 0
    tail = b""
    progress = progress if progress is not None else [0]
    while True:
        async with asyncio.timeout(ECHO_DEADLINE):
            chunk = await term.chunk()
        total += len(chunk)
        progress[0] = total
        if END in tail + chunk:
            return total, time.perf_counter() - started
        tail = chunk[-len(END):]


# -- the floors: no web tier --------------------------------------------------------------

class RawTerminal:
    """``relay``: the driver's own stream (a TCP connection to the instance's
    relay); ``engine``: the same relay through the engine (an exec stream)."""

    def __init__(self, deployment: str, iid: str, path: str = "relay", host: dict | None = None) -> None:
        from sandboxes.docker import DockerDriver

        host = host or {"url": ENGINE}
        self.driver = DockerDriver(deployment=deployment, **host)
        name = self.driver.container_name(iid)
        self.state = self.driver._instance_state(self.driver.api.inspect_container(name), None, "node1")
        self.path = path

    async def __aenter__(self) -> RawTerminal:  # noqa: PYI034 - the class is not subclassed
        if self.path == "engine" and self.state.get("relay"):
            self.stream = self.driver._attach_relay_exec(self.state, "L")
        else:
            self.stream = self.driver.attach(self.state)
        self.stream.setblocking(False)
        self.loop = asyncio.get_running_loop()
        self.ready = asyncio.Event()
        self.loop.add_reader(self.stream.fileno(), self.ready.set)
        self.ready.set()
        await self.quiet()
        return self

    async def __aexit__(self, *exc) -> None:
        self.loop.remove_reader(self.stream.fileno())
        self.stream.close()

    async def send(self, data: bytes) -> None:
        self.stream.setblocking(True)
        self.stream.sendall(data)
        self.stream.setblocking(False)

    async def chunk(self) -> bytes:
        while True:
            await self.ready.wait()
            try:
                data = self.stream.recv(256 * 1024)
            except (BlockingIOError, ssl.SSLWantReadError):  # the engine's stream over TLS (--remote)
                self.ready.clear()
                continue
            if not data:
                status = self.driver.inspect(self.state)
                raise EOFError(f"the {type(self.stream).__name__} stream closed; the instance: {status}")
            return data

    async def quiet(self, seconds: float = 0.5) -> None:
        while True:
            try:
                async with asyncio.timeout(seconds):
                    await self.chunk()
            except TimeoutError:
                return


# -- the report ----------------------------------------------------------------------------

def report_echo(label: str, latencies: list[float]) -> None:
    print(f"  {label:42} echo p50 {pct(latencies, 50) * 1000:6.2f} ms  p99 {pct(latencies, 99) * 1000:6.2f} ms"
          f"  max {max(latencies) * 1000:6.2f} ms  (n={len(latencies)})")


def report_throughput(label: str, total: int, seconds: float) -> None:
    print(f"  {label:42} output {total / seconds / 1e6:6.1f} MB/s  ({total / 1e6:.1f} MB in {seconds:.2f} s)")


async def measure(term, args, label: str) -> None:
    """Echo then throughput; a stream that closes under the benchmark is
    reported (with the bytes it carried) and the run goes on."""
    progress = [0]
    try:
        report_echo(label, await web_echo(term, args.keystrokes))
        report_echo(f"{label}, typing", await web_echo(term, args.keystrokes, args.typing_gap / 1000))
        total, seconds = await web_throughput(term, args.megabytes * 1_000_000, progress)
    except (EOFError, TimeoutError) as exc:
        print(f"  {label:42} FAILED after {progress[0]} bytes of output: {exc or 'no output for 30 s'}")
        return
    report_throughput(label, total, seconds)


async def background(api: Api, iid: str, stop: asyncio.Event) -> None:
    async with WebTerminal(api, iid) as term:
        await term.send(b"while sleep 1; do echo tick $(date +%s); done\n")
        while not stop.is_set():
            try:
                async with asyncio.timeout(0.5):
                    await term.chunk()
            except TimeoutError:
                pass
        await term.send(b"\x03")


def background_load(url: str, token: str, iids: list[str], ready, stop) -> None:
    """The other sessions' terminals, in a process of their own so that their
    client work does not delay the measuring client."""

    os.setpriority(os.PRIO_PROCESS, 0, 0)  # other people's browsers: no priority of their own

    async def run() -> None:
        api = Api(url, token)
        done = asyncio.Event()
        tasks = [asyncio.create_task(background(api, iid, done)) for iid in iids]
        await asyncio.sleep(2)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.2)
        done.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())


async def run(api: Api, deployment: str, args, host: dict | None = None) -> None:
    import multiprocessing

    sid, iid = api.start()
    others: list[tuple[str, str]] = []
    await asyncio.sleep(SETTLE)
    try:
        print("one session:")
        # The floors first: after the web tier's connection closes, its
        # attachment lingers (PLAYGROUND_TERMINAL_LINGER_SECONDS) as a second
        # client of the relay, and a floor must be the relay's only client.
        async with RawTerminal(deployment, iid, host=host) as raw:
            await measure(raw, args, "raw relay connection (floor)")
        async with RawTerminal(deployment, iid, "engine", host=host) as raw:
            await measure(raw, args, "relay through the engine (exec)")
        async with WebTerminal(api, iid) as term:
            await measure(term, args, "web tier (Daphne)")

        print(f"with {args.sessions} sessions open, each terminal connected and printing a line a second:")
        for _ in range(args.sessions - 1):
            others.append(api.start())
        context = multiprocessing.get_context("spawn")
        ready, stop = context.Event(), context.Event()
        load = context.Process(target=background_load,
                               args=(api.url, api.token, [i for _, i in others], ready, stop))
        load.start()
        await asyncio.to_thread(ready.wait, 120)
        try:
            async with WebTerminal(api, iid) as term:
                await measure(term, args, f"web tier, {args.sessions} sessions")
            async with RawTerminal(deployment, iid, host=host) as raw:
                await measure(raw, args, f"raw relay, {args.sessions} sessions")
        finally:
            stop.set()
            load.join(timeout=60)
    finally:
        for other_sid, _ in others:
            api.end(other_sid)
        api.end(sid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keystrokes", type=int, default=300)
    parser.add_argument("--client-nice", type=int, default=-10,
                        help="the measuring client's nice value (it stands in for a browser on another machine: "
                             "at the web tier's priority the sandboxes' CPU does not delay it)")
    parser.add_argument("--typing-gap", type=float, default=20.0, help="ms between keystrokes at typing pace")
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--url", help="a running playground (default: start one)")
    parser.add_argument("--token", help="API token for --url")
    parser.add_argument("--deployment", help="the running playground's deployment label (for the raw attach)")
    parser.add_argument("--remote", action="store_true",
                        help="the instances on a lab host of their own over mutual TLS (not with --url)")
    args = parser.parse_args()
    if args.remote and args.url:
        parser.error("--remote starts its own playground: not with --url")

    lab_host = host = None
    remote_env: dict[str, str] = {}
    if args.remote:
        from tests.engines import LabHostMachine

        pki = Path(tempfile.mkdtemp(prefix="bench-pki-"))
        lab_host = LabHostMachine(6, pki)
        print(f"starting lab host {lab_host.url} (network namespace {lab_host.netns}, pool {lab_host.pool})")
        try:
            lab_host.start()
        except BaseException:
            lab_host.remove()
            raise
        client = pki / "client"
        remote_env = {"PLAYGROUND_LAB_HOSTS": lab_host.url,
                      "PLAYGROUND_LAB_HOST_TLS_CA": str(client / "ca.pem"),
                      "PLAYGROUND_LAB_HOST_TLS_CERT": str(client / "cert.pem"),
                      "PLAYGROUND_LAB_HOST_TLS_KEY": str(client / "key.pem")}
        host = {"url": lab_host.url, "tls_ca_cert": remote_env["PLAYGROUND_LAB_HOST_TLS_CA"],
                "tls_client_cert": remote_env["PLAYGROUND_LAB_HOST_TLS_CERT"],
                "tls_client_key": remote_env["PLAYGROUND_LAB_HOST_TLS_KEY"]}
    try:
        bench(args, remote_env, host)
    finally:
        if lab_host is not None:
            lab_host.remove()


def bench(args, remote_env: dict[str, str], host: dict | None) -> None:
    stack = None
    if args.url:
        url, token, deployment = args.url.rstrip("/"), args.token, args.deployment
    else:
        stack = Stack(Path(tempfile.mkdtemp(prefix="bench-")), redis_db=14, env={
            **DEFAULT_PERIODS, **remote_env,
            "PLAYGROUND_SESSION_RATE_USER": "100000/min",
            "PLAYGROUND_MAX_SESSIONS_USER": str(args.sessions + 5),
            "PLAYGROUND_HOST_CAPACITY": str(max(100, args.sessions + 10)),
            "PLAYGROUND_LOG_LEVEL": "WARNING",
        }).start()
        url, token, deployment = stack.url, stack.token("bench"), stack.deployment
    # After the stack started: its processes keep their own priorities.
    if args.client_nice:
        priority.apply_nice(args.client_nice)
    try:
        print(f"machine: {machine()}")
        print(f"measuring client at nice {os.getpriority(os.PRIO_PROCESS, 0)}")
        print(f"image: {os.environ.get('PLAYGROUND_IMAGE_SHELL', 'playground-shell:latest')}")
        print(f"lab host: {host['url'] + ' (mutual TLS)' if host else ENGINE}")
        asyncio.run(run(Api(url, token), deployment, args, host))
    finally:
        if stack is not None:
            stack.stop()


if __name__ == "__main__":
    main()
