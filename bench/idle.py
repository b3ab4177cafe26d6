"""Idle density: what live sessions cost while their learners read.

Starts its own playground (Daphne, a Celery worker and beat, the engine
watcher, under a deployment label of its own) against the project's engine and
Redis, with the host's cap, the session rate and the idle timeout raised for
the run; each learner is a user of their own with the product's per-user caps
(--per-user sessions each). One measuring session first (the "+1"), then for
each count of --steps:

* opens shell sessions up to that many (--parallel at a time; each one ready:
  an exec answered), each with its terminal WebSocket connected and left idle
  as a browser leaves it (a ping every 25 s, output acknowledged), all held by
  this process with asyncio; nobody reads the sessions through the API, so
  nothing counts them as watched (PLAYGROUND_WATCH_SECONDS);
* waits --settle seconds, then measures over --window seconds: the whole
  machine's CPU busy (from /proc/stat, as a share of all its cores), CPU per
  process group as a share of one core (from /proc/<pid>/stat, utime+stime and
  that of reaped children: Daphne, the Celery worker, beat, the watcher,
  dockerd and containerd found from the engine's pidfile in --run-dir, the
  run's container shims, the relays and the other processes in its
  containers), memory in use (MemTotal - MemAvailable);
* then the echo of one more terminal (the measuring session's), typed at one
  key every 20 ms (--keys keys) while the others stay open and idle.

At the last step the same again with no terminal connected at all (the
sessions live, their attachments gone after PLAYGROUND_TERMINAL_LINGER_SECONDS);
--no-terminals measures every step that way. Before the first step, a baseline
with the measuring session alone. A session that fails to start stops the run
with its number and error. At the end (and on Ctrl-C) every session is ended
and whatever the deployment left on the engine is removed. Prints numbers,
asserts nothing.

    .venv/bin/python bench/idle.py [--steps 100,300,500] [--settle 20] [--window 30]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.session_start import DEFAULT_PERIODS, machine, pct
from bench.terminal import Api, WebTerminal, web_echo
from playground import priority
from tests.stack import ENGINE, Stack

REDIS_DB = 24
BROWSER_PING_SECONDS = 25.0  # frontend/src/terminal.ts PING_EVERY_MS
TERMINAL_LINGER = 10.0  # PLAYGROUND_TERMINAL_LINGER_SECONDS' default: attachments outlive their last viewer
CLK_TCK = os.sysconf("SC_CLK_TCK")
RELAY_COMM = "playground-relay"[:15]  # /proc/<pid>/comm keeps 15 characters


class StartFailed(Exception):
    pass


# -- sessions ------------------------------------------------------------------------------

def start_session(api: Api, number: int) -> tuple[str, str, str]:
    """A session whose instance answers exec, or StartFailed saying which and why."""
    try:
        created = api.http.post(api.url + "/api/sessions/", json={}, timeout=60)
        if created.status_code != 201:
            raise StartFailed(f"session {number}: POST /api/sessions/ answered "
                              f"{created.status_code} {created.text[:500]}")
        session = created.json()
        iid = session["instances"][0]["id"]
        answer = api.http.post(f"{api.url}/api/sessions/{session['id']}/instances/{iid}/exec/",
                               json={"command": "true", "timeout": 120}, timeout=150)
        if answer.status_code != 200:
            raise StartFailed(f"session {number} ({session['id']}): its instance did not answer exec: "
                              f"{answer.status_code} {answer.text[:500]}")
    except requests.RequestException as exc:
        raise StartFailed(f"session {number}: {exc}") from None
    return session["id"], iid, api.token


def learner_tokens(stack: Stack, n: int) -> list[str]:
    """API keys of ``n`` learners, made in one go (a manage.py run each would take minutes)."""
    code = ("from playground.accounts.actions import create_api_token\n"
            f"for i in range({n}): print('token', create_api_token(username=f'learner{{i}}'))")
    tokens = [line.split()[1] for line in stack.manage("shell", "-c", code).splitlines() if line.startswith("token ")]
    if len(tokens) != n:
        raise StartFailed(f"could not make the learners' API keys (got {len(tokens)} of {n})")
    return tokens


class Opener:
    """Starts sessions from a few threads, session ``n`` (1-based) for learner
    ``(n - 1) // per_user``."""

    def __init__(self, url: str, tokens: list[str], per_user: int, parallel: int) -> None:
        self.url, self.tokens, self.per_user = url, tokens, per_user
        self.pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="opener")
        self.failed = threading.Event()

    def _start(self, number: int) -> tuple[str, str, str]:
        if self.failed.is_set():
            raise StartFailed(f"session {number}: not started (an earlier one failed)")
        try:
            return start_session(Api(self.url, self.tokens[(number - 1) // self.per_user]), number)
        except BaseException:
            self.failed.set()
            raise

    async def open(self, first: int, last: int, live: list[tuple[str, str, str]]) -> None:
        """Sessions ``first``..``last`` (1-based), appended to ``live`` as each
        one is ready; the first failure is raised once those in flight finish."""
        loop = asyncio.get_running_loop()
        futures = [loop.run_in_executor(self.pool, self._start, n) for n in range(first, last + 1)]
        errors: list[BaseException] = []
        for future in asyncio.as_completed(futures):
            try:
                live.append(await future)
            except StartFailed as exc:
                errors.append(exc)
        if errors:
            real = [e for e in errors if "an earlier one failed" not in str(e)]
            raise (real or errors)[0]


def end_sessions(url: str, live: list[tuple[str, str, str]]) -> None:
    def end(session: tuple[str, str, str]) -> str | None:
        sid, _, token = session
        try:
            Api(url, token).end(sid)
        except requests.RequestException as exc:
            return f"{sid}: {exc}"
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        failures = [f for f in pool.map(end, live) if f]
    if failures:
        print(f"  {len(failures)} sessions not ended through the API (removed below), e.g. {failures[0]}", flush=True)


# -- idle terminals ------------------------------------------------------------------------

class IdleTerminal:
    """A browser's terminal left open: connected, sized, its output
    acknowledged, a ping every 25 s; nothing typed."""

    def __init__(self, url: str, token: str, iid: str) -> None:
        self.url = url.replace("http://", "ws://") + f"/ws/instances/{iid}/terminal/"
        self.headers = {"Authorization": f"Token {token}"}
        self.iid = iid
        self.closed: str | None = None
        self.pongs = 0
        self.received = 0

    async def open(self) -> None:
        # A browser sends no protocol-level pings: the server's are answered.
        self.ws = await connect(self.url, additional_headers=self.headers, compression=None,
                                ping_interval=None, open_timeout=60, max_size=4 * 1024 * 1024)
        await self.ws.send(json.dumps({"type": "ack", "bytes": 0}))
        await self.ws.send(json.dumps({"type": "resize", "cols": 120, "rows": 40}))
        async with asyncio.timeout(60):
            while True:
                frame = await self.ws.recv()
                if isinstance(frame, bytes):
                    await self.ws.send(json.dumps({"type": "ack", "bytes": len(frame)}))
                elif json.loads(frame).get("state") == "running":
                    break
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                frame = await self.ws.recv()
                if isinstance(frame, bytes):
                    self.received += len(frame)
                    await self.ws.send(json.dumps({"type": "ack", "bytes": len(frame)}))
                elif json.loads(frame).get("type") == "pong":
                    self.pongs += 1
        except ConnectionClosed as exc:
            self.closed = f"{exc.rcvd.code if exc.rcvd else 'no close frame'} {exc.rcvd.reason if exc.rcvd else ''}"

    async def ping(self) -> None:
        if self.closed is None:
            try:
                await self.ws.send(json.dumps({"type": "ping"}))
            except ConnectionClosed:
                pass

    async def close(self) -> None:
        self.reader.cancel()
        try:
            async with asyncio.timeout(5):
                await self.ws.close()
        except (TimeoutError, ConnectionClosed, OSError):
            pass


async def open_terminals(url: str, sessions: list[tuple[str, str, str]], terminals: list[IdleTerminal],
                         at_once: int = 16) -> None:
    gate = asyncio.Semaphore(at_once)

    async def one(session: tuple[str, str, str]) -> None:
        _, iid, token = session
        async with gate:
            term = IdleTerminal(url, token, iid)
            try:
                await term.open()
            except (OSError, TimeoutError, ConnectionClosed) as exc:
                raise StartFailed(f"the terminal of instance {iid} did not open: {exc!r}") from None
            terminals.append(term)

    await asyncio.gather(*(one(session) for session in sessions))


async def browser_pings(terminals: list[IdleTerminal]) -> None:
    """Each open terminal pings every 25 s, spread over the period as browsers are."""
    while True:
        current = [t for t in terminals if t.closed is None]
        if not current:
            await asyncio.sleep(1)
            continue
        gap = BROWSER_PING_SECONDS / len(current)
        for term in random.sample(current, len(current)):
            await term.ping()
            await asyncio.sleep(gap)


# -- measuring -----------------------------------------------------------------------------

def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot; a VM's stolen time
    is neither (guest time is counted in user already)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:7])
    return total - values[3] - values[4], total


def memory_in_use() -> int:
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        info[key] = int(value.split()[0]) * 1024
    return info["MemTotal"] - info["MemAvailable"]


@dataclass
class Proc:
    comm: str
    ppid: int
    ticks: int  # utime + stime + cutime + cstime: its own and its reaped children's (runc, execs)
    start: int
    own: int  # utime + stime


def processes() -> dict[int, Proc]:
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2:].split()
        table[int(entry.name)] = Proc(comm, int(rest[1]), sum(int(v) for v in rest[11:15]), int(rest[19]),
                                      int(rest[11]) + int(rest[12]))
    return table


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


@dataclass
class Sample:
    busy: int
    total: int
    procs: dict[int, Proc]
    at: float
    memory: int


def sample() -> Sample:
    busy, total = machine_ticks()
    return Sample(busy, total, processes(), time.monotonic(), memory_in_use())


@dataclass
class Measure:
    label: str
    sessions: int
    terminals: int
    machine_busy: float  # % of the whole machine
    memory: int
    groups: dict[str, float]  # % of one core
    counts: dict[str, int]
    rest: float  # % of one core: the machine's busy time in no group
    others: list[tuple[str, float]]
    echo: list[float] = field(default_factory=list)
    echo_error: str = ""
    closed: int = 0
    containers: int = 0


class Groups:
    """Which process group each pid belongs to: the stack's processes by pid,
    the engine's from its pidfile, and the run's containers by their shims."""

    def __init__(self, stack: Stack, run_dir: Path, deployment: str) -> None:
        import docker

        self.engine = docker.APIClient(base_url=ENGINE, version="1.41", timeout=60)
        self.names = {"web": "daphne", "worker": "celery worker", "beat": "celery beat", "watcher": "engine watcher"}
        self.stack = stack
        self.run_dir = run_dir
        self.deployment = deployment
        self.sock = str(run_dir / "exec" / "containerd" / "containerd.sock")

    def ours(self) -> set[str]:
        """The ids of the run's containers (sessions' instances, the hot-start pool)."""
        listed = self.engine.containers(filters={"label": f"playground.deployment={self.deployment}"})
        return {c["Id"] for c in listed}

    def classify(self, procs: dict[int, Proc], ours: set[str]) -> dict[int, str]:
        group: dict[int, str] = {os.getpid(): "bench client"}
        for name, proc in self.stack.processes:
            group[proc.pid] = self.names.get(name, name)
        try:
            dockerd = int((self.run_dir / "docker.pid").read_text().strip())
        except (OSError, ValueError):
            dockerd = -1
        group[dockerd] = "dockerd"
        shims: dict[int, bool] = {}
        for pid, proc in procs.items():
            if proc.ppid == dockerd and proc.comm == "containerd":
                group[pid] = "containerd"
            elif proc.comm == "redis-server":
                group[pid] = "redis (shared)"
            elif proc.comm.startswith("containerd-shim"):
                argv = cmdline(pid)
                if self.sock in argv:
                    cid = argv[argv.index("-id") + 1] if "-id" in argv else ""
                    shims[pid] = cid in ours
                    group[pid] = "shims" if shims[pid] else "other containers on the engine"
        for pid, proc in procs.items():
            if pid in group:
                continue
            seen, parent = 0, proc.ppid
            while parent > 1 and parent not in shims and seen < 64:
                parent = procs[parent].ppid if parent in procs else 0
                seen += 1
            if parent in shims:
                if not shims[parent]:
                    group[pid] = "other containers on the engine"
                elif proc.comm == RELAY_COMM:
                    group[pid] = "relays"
                else:
                    group[pid] = "in containers (init, shells)"
        return group

    def measure(self, label: str, sessions: int, terminals: int, window: float) -> Measure:
        ours = self.ours()
        first = sample()
        time.sleep(window)
        last = sample()
        seconds = last.at - first.at
        group = self.classify(last.procs, ours)
        per_group: dict[str, int] = {}
        counts: dict[str, int] = {}
        others: dict[str, int] = {}
        accounted = 0
        for pid, proc in last.procs.items():
            before = first.procs.get(pid)
            delta = proc.ticks - before.ticks if before and before.start == proc.start else proc.ticks
            name = group.get(pid)
            if name is None:  # its own time only: a shell's reaped children would be counted twice
                own = proc.own - before.own if before and before.start == proc.start else proc.own
                others[proc.comm] = others.get(proc.comm, 0) + own
                continue
            per_group[name] = per_group.get(name, 0) + delta
            counts[name] = counts.get(name, 0) + 1
            accounted += delta

        def core(ticks: int) -> float:
            return 100 * ticks / CLK_TCK / seconds

        busy = last.busy - first.busy
        return Measure(
            label=label, sessions=sessions, terminals=terminals,
            machine_busy=100 * busy / max(1, last.total - first.total), memory=last.memory,
            groups={k: core(v) for k, v in per_group.items()}, counts=counts,
            rest=core(max(0, busy - accounted)),
            others=sorted(((k, core(v)) for k, v in others.items() if v), key=lambda kv: -kv[1])[:4],
            containers=len(ours),
        )


# -- the report ----------------------------------------------------------------------------

GIB = 1024 ** 3
BUSY_ELSEWHERE = 10.0  # % of one core of other work past which a measure is flagged
NOT_THE_PLAYGROUND = ("bench client", "other containers on the engine")


def playground_busy(m: Measure) -> float:
    """The playground's own processes (and the engine's, Redis's: shared with
    whatever else uses them), as a share of the whole machine."""
    return sum(v for k, v in m.groups.items() if k not in NOT_THE_PLAYGROUND) / (os.cpu_count() or 1)


def show(m: Measure, baseline: Measure | None) -> None:
    print(f"== {m.label}", flush=False)
    client = m.groups.get("bench client", 0.0)
    cores = os.cpu_count() or 1
    print(f"  machine busy {m.machine_busy:5.1f} % of {cores} cores "
          f"(of which the playground {playground_busy(m):.1f} %, the bench client {client / cores:.2f} %, "
          "the rest other work on the machine)")
    line = f"  memory in use {m.memory / GIB:6.2f} GiB"
    if baseline is not None and m.sessions > baseline.sessions:
        line += (f"  (+{(m.memory - baseline.memory) / GIB:.2f} GiB since the baseline, "
                 f"{(m.memory - baseline.memory) / (m.sessions - baseline.sessions) / 1024 ** 2:.1f} MiB per session)")
    print(line)
    print(f"  containers of the run: {m.containers}; terminals closed by the server: {m.closed}")
    if m.echo:
        print(f"  echo, one more terminal at one key per 20 ms: p50 {pct(m.echo, 50) * 1000:.2f} ms  "
              f"p99 {pct(m.echo, 99) * 1000:.2f} ms  max {max(m.echo) * 1000:.2f} ms (n={len(m.echo)})")
    elif m.echo_error:
        print(f"  echo FAILED: {m.echo_error}")
    print("  CPU, % of one core:")
    for name, value in sorted(m.groups.items(), key=lambda kv: -kv[1]):
        extra = ""
        if name in ("relays", "shims") and m.counts.get(name):
            extra = f"  ({m.counts[name]} of them, {value / m.counts[name]:.3f} each)"
        print(f"    {name:32} {value:6.2f}{extra}")
    others = ", ".join(f"{comm} {value:.1f}" for comm, value in m.others)
    print(f"    {'rest of the machine':32} {m.rest:6.2f}  (the largest: {others or 'none'})", flush=True)
    if m.rest > BUSY_ELSEWHERE or m.groups.get("other containers on the engine", 0) > BUSY_ELSEWHERE:
        print("  WARNING: other work on this machine or engine: the machine's figures, dockerd's and the echo "
              "are not the playground's alone", flush=True)


def top(m: Measure, n: int = 4) -> str:
    groups = [(k, v) for k, v in m.groups.items() if k != "bench client"]
    return ", ".join(f"{k} {v:.1f}" for k, v in sorted(groups, key=lambda kv: -kv[1])[:n])


def table(measures: list[Measure]) -> None:
    print()
    print("| live sessions (+1) | terminals open | machine busy | of which the playground | memory in use "
          "| echo p50 | echo p99 | top CPU, % of one core | rest of the machine, % of one core |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in measures:
        p50 = f"{pct(m.echo, 50) * 1000:.2f} ms" if m.echo else "n/a"
        p99 = f"{pct(m.echo, 99) * 1000:.2f} ms" if m.echo else "n/a"
        print(f"| {m.sessions} | {m.terminals} | {m.machine_busy:.1f} % | {playground_busy(m):.1f} % "
              f"| {m.memory / GIB:.2f} GiB | {p50} | {p99} "
              f"| {top(m)} | {m.rest:.1f} |")


# -- the run -------------------------------------------------------------------------------

async def echo(api: Api, iid: str, keys: int, m: Measure) -> None:
    try:
        async with WebTerminal(api, iid) as term:
            m.echo = await web_echo(term, keys, 0.020)
    except (EOFError, TimeoutError, OSError, ConnectionClosed) as exc:
        m.echo_error = repr(exc)


async def measure(groups: Groups, api: Api, probe: str, args, label: str, sessions: int,
                  terminals: list[IdleTerminal], baseline: Measure | None) -> Measure:
    await asyncio.sleep(args.settle)
    m = await asyncio.to_thread(groups.measure, label, sessions, len(terminals), args.window)
    m.closed = sum(1 for t in terminals if t.closed is not None)
    await echo(api, probe, args.keys, m)
    show(m, baseline)
    return m


async def run(stack: Stack, api: Api, tokens: list[str], args, live: list[tuple[str, str, str]],
              measures: list[Measure]) -> None:
    groups = Groups(stack, args.run_dir, stack.deployment)
    opener = Opener(api.url, tokens, args.per_user, args.parallel)
    terminals: list[IdleTerminal] = []
    pinger = asyncio.create_task(browser_pings(terminals))
    try:
        live.append(await asyncio.to_thread(start_session, api, 0))
        probe = live[0][1]  # the measuring session: ended with the others, counted apart
        baseline = await measure(groups, api, probe, args, "baseline: the measuring session alone", 0, terminals, None)
        measures.append(baseline)
        for index, step in enumerate(args.steps):
            before = len(live)  # the measuring session included
            started = time.monotonic()
            await opener.open(before, step, live)
            opened = time.monotonic() - started
            if not args.no_terminals:
                await open_terminals(api.url, live[before:], terminals)
            print(f"\nopened sessions {before} to {step} in {opened:.1f} s"
                  f"{'' if args.no_terminals else f', their terminals by {time.monotonic() - started:.1f} s'}",
                  flush=True)
            what = "no terminal connected" if args.no_terminals else "every terminal open and idle"
            measures.append(await measure(groups, api, probe, args, f"{step} sessions (+1), {what}", step,
                                          terminals, baseline))
            if index == len(args.steps) - 1 and not args.no_terminals:
                await asyncio.gather(*(t.close() for t in terminals))
                terminals.clear()
                print(f"\nclosed every terminal; waiting for their attachments to go ({TERMINAL_LINGER:.0f} s)",
                      flush=True)
                await asyncio.sleep(TERMINAL_LINGER)
                measures.append(await measure(groups, api, probe, args, f"{step} sessions (+1), no terminal connected",
                                              step, terminals, baseline))
    finally:
        pinger.cancel()
        opener.pool.shutdown(wait=False, cancel_futures=True)
        await asyncio.gather(*(t.close() for t in terminals), return_exceptions=True)


def steps(text: str) -> list[int]:
    values = sorted({int(v) for v in text.split(",") if v.strip()})
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of session counts, each at least 1")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=steps, default=steps("100,300,500"), help="session counts to measure at")
    parser.add_argument("--settle", type=float, default=20.0,
                        help="seconds between the last session opened and the window")
    parser.add_argument("--window", type=float, default=30.0, help="seconds CPU is measured over")
    parser.add_argument("--keys", type=int, default=200, help="keys typed, one every 20 ms, for the echo")
    parser.add_argument("--parallel", type=int, default=4, help="sessions started at once")
    parser.add_argument("--per-user", type=int, default=2,
                        help="sessions per learner (PLAYGROUND_MAX_SESSIONS_USER's default: each learner is a user)")
    parser.add_argument("--no-terminals", action="store_true",
                        help="leave every terminal closed at every step (default: open, and closed at the last step)")
    parser.add_argument("--client-nice", type=int, default=-10,
                        help="the measuring client's nice value (it stands in for browsers on other machines)")
    parser.add_argument("--run-dir", type=Path, default=Path(os.environ.get("PLAYGROUND_RUN_DIR", "/run/playground")),
                        help="the engine's run directory (its pidfile, containerd's socket)")
    args = parser.parse_args()
    if args.per_user < 1:
        parser.error("--per-user: at least 1")

    most = args.steps[-1]
    stack = Stack(Path(tempfile.mkdtemp(prefix="bench-idle-")), redis_db=REDIS_DB, env={
        **DEFAULT_PERIODS,
        "PLAYGROUND_LOG_LEVEL": "WARNING",
        # Raised for the run: sessions start faster than a learner starts
        # them, the host holds them all, and a run of 500 lasts longer than
        # the idle timeout with nobody typing. Per learner the caps stay the
        # product's (--per-user sessions each, their terminals under the
        # per-user cap of WebSockets).
        "PLAYGROUND_SESSION_RATE_USER": "100000/min",
        "PLAYGROUND_EXEC_RATE_USER": "100000/min",
        "PLAYGROUND_MAX_SESSIONS_USER": str(max(2, args.per_user)),
        "PLAYGROUND_HOST_CAPACITY": str(most + 20),
        "PLAYGROUND_IDLE_TIMEOUT": str(12 * 3600),
        "PLAYGROUND_SESSION_LIFETIME": str(12 * 3600),
        "PLAYGROUND_POOL_SIZE": "",  # the product's hot-start pool, as it runs
    })
    print(f"machine: {machine()}")
    print(f"image: {os.environ.get('PLAYGROUND_IMAGE_SHELL', 'playground-shell:latest')}; engine {ENGINE}; "
          f"steps {args.steps}, settle {args.settle:.0f} s, window {args.window:.0f} s", flush=True)
    # Daphne holds two sockets per open terminal (the browser's, the relay's);
    # the stack's processes inherit this limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4 * most + 1024:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard == resource.RLIM_INFINITY
                                                    else min(hard, max(soft, 4 * most + 1024)), hard))
    live: list[tuple[str, str, str]] = []  # (session, instance, its learner's token)
    measures: list[Measure] = []
    failed = None
    interrupted = False
    stack.start()
    try:
        token = stack.token("bench")
        if args.client_nice:
            priority.apply_nice(args.client_nice)
        print(f"deployment {stack.deployment}; measuring client at nice {os.getpriority(os.PRIO_PROCESS, 0)}",
              flush=True)
        try:
            tokens = learner_tokens(stack, -(-most // args.per_user))
            asyncio.run(run(stack, Api(stack.url, token), tokens, args, live, measures))
        except StartFailed as exc:
            failed = exc
        except KeyboardInterrupt:
            interrupted = True
            print("\ninterrupted: ending every session", flush=True)
        if measures:
            table(measures)
        if failed:
            print(f"\nSTOPPED: {failed} (with {len(live) - 1} sessions live besides the measuring one)", flush=True)
    finally:
        try:
            if all(proc.poll() is None for _, proc in stack.processes):
                print(f"\nending {len(live)} sessions", flush=True)
                end_sessions(stack.url, live)
            else:  # a Ctrl-C in a terminal reaches the stack's processes too
                print("\nthe stack is down: removing the run's containers and networks directly", flush=True)
        finally:
            stack.stop()
            from bench.class_join import purge

            purge(stack)
    if failed or interrupted:
        sys.exit(130 if interrupted else 1)


if __name__ == "__main__":
    main()
