"""Session start latency and idle instance memory, measured on the real stack.

Starts its own playground (Daphne, a Celery worker and beat, under a deployment
label of its own) against the project's engine and Redis, unless --url and
--token point it at a running one. For each of N sessions, one after another:

    POST /api/sessions/  ->  POST .../exec/ {"command": "true"}  (waits for running)

and prints p50/p95 of: the POST alone, POST to exec answered (the number the
README quotes), and the Celery hop (task queued to task started, from the
worker's log). It does so twice: with every container created on demand, and
with the hot-start pool (PLAYGROUND_POOL_SIZE, waiting before each session
until the pool is full again, as it is when sessions do not arrive in a burst).
Then it starts M idle instances and prints host memory per instance (the PSS
of the container's processes plus its runtime shim).

    .venv/bin/python bench/session_start.py [--sessions 30] [--idle 5] [--pool 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.stack import ENGINE, Stack

# The test stack's quick periods (sweeps and health probes every second, a
# reconcile every two, activity written at once) are for tests; benchmarks
# measure the product as it runs by default (empty: the setting's default).
DEFAULT_PERIODS = {
    "PLAYGROUND_SWEEP_SECONDS": "",
    "PLAYGROUND_HEALTH_SECONDS": "",
    "PLAYGROUND_RECONCILE_SECONDS": "",
    "PLAYGROUND_ACTIVITY_FLUSH_SECONDS": "",
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def machine() -> str:
    cpu = "unknown cpu"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // (1024 * 1024)
    return f"{os.cpu_count()} cores ({cpu}), {mem} GiB, {platform.system()} {platform.release()}"


def pss_kib(pid: int, field: str = "Pss") -> int:
    """A process's proportional set size in KiB (or another smaps_rollup
    field, e.g. "Anonymous": its private memory, shared with no one)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cgroup_pids(container_id: str) -> list[int]:
    for root in Path("/sys/fs/cgroup/pids").rglob(f"*{container_id}*"):
        procs = root / "cgroup.procs"
        if procs.exists():
            return [int(p) for p in procs.read_text().split()]
    return []


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def pool_ready(deployment: str, size: int) -> None:
    """Wait until ``size`` running instance containers of the deployment exist
    (between sessions of this benchmark, those are the pool)."""
    import docker

    engine = docker.APIClient(base_url=ENGINE, version="1.41")
    selector = {"label": [f"playground.deployment={deployment}", "playground.kind=instance"], "status": "running"}
    deadline = time.monotonic() + 60
    while len(engine.containers(filters=selector)) < size:
        if time.monotonic() > deadline:
            raise SystemExit("the pool did not fill within 60 s")
        time.sleep(0.05)


def run_sessions(url: str, token: str, n: int, before=None) -> dict[str, list[float]]:
    http = requests.Session()
    http.headers["Authorization"] = f"Token {token}"
    results: dict[str, list[float]] = {"post": [], "ready": []}
    for i in range(n):
        if before is not None:
            before()
        t0 = time.perf_counter()
        created = http.post(url + "/api/sessions/", json={}, timeout=60)
        t1 = time.perf_counter()
        created.raise_for_status()
        session = created.json()
        iid = session["instances"][0]["id"]
        answer = http.post(f"{url}/api/sessions/{session['id']}/instances/{iid}/exec/",
                           json={"command": "true", "timeout": 60}, timeout=90)
        t2 = time.perf_counter()
        answer.raise_for_status()
        if i > 0:  # the first one warms caches and connection pools
            results["post"].append(t1 - t0)
            results["ready"].append(t2 - t0)
        http.delete(f"{url}/api/sessions/{session['id']}/", timeout=60).raise_for_status()
    return results


def idle_memory(url: str, token: str, n: int) -> list[float]:
    import docker

    engine = docker.APIClient(base_url=ENGINE, version="1.41")
    http = requests.Session()
    http.headers["Authorization"] = f"Token {token}"
    created = http.post(url + "/api/sessions/", json={}, timeout=60).json()
    sid = created["id"]
    ids = [created["instances"][0]["id"]]
    for _ in range(n - 1):
        ids.append(http.post(f"{url}/api/sessions/{sid}/instances/", json={}, timeout=60).json()["id"])
    for iid in ids:
        http.post(f"{url}/api/sessions/{sid}/instances/{iid}/exec/", json={"command": "true"}, timeout=90)
    time.sleep(3)  # let the shells settle
    per_instance = []
    for iid in ids:
        [container] = engine.containers(filters={"label": f"playground.instance={iid}"})
        pids = cgroup_pids(container["Id"])
        shim = parent_of(engine.inspect_container(container["Id"])["State"]["Pid"])
        per_instance.append(sum(pss_kib(p) for p in {*pids, shim}) / 1024)
    http.delete(f"{url}/api/sessions/{sid}/", timeout=60)
    return per_instance


def start_stack(redis_db: int, pool: int) -> Stack:
    return Stack(Path(tempfile.mkdtemp(prefix="bench-")), redis_db=redis_db, env={
        **DEFAULT_PERIODS,
        "PLAYGROUND_SESSION_RATE_USER": "100000/min", "PLAYGROUND_LOG_LEVEL": "INFO",
        "PLAYGROUND_POOL_SIZE": str(pool), "PLAYGROUND_POOL_SECONDS": "1",
    }).start()


def report(title: str, results: dict[str, list[float]], worker_log: str | None) -> None:
    n = len(results["ready"])
    print(f"session start, {title}, over {n} sessions (one after another):")
    for key, label in (("post", "POST /api/sessions/"), ("ready", "POST to exec answered")):
        values = results[key]
        print(f"  {label:24} p50 {ms(pct(values, 50))}  p95 {ms(pct(values, 95))}  max {ms(max(values))}")
    if worker_log is None:
        return
    hops = [float(x) for x in re.findall(r"hop_ms=([0-9.]+)", worker_log)]
    creates = [float(x) for x in re.findall(r"create_ms=([0-9.]+)", worker_log)]
    connects = [float(x) for x in re.findall(r"connect_ms=([0-9.]+)", worker_log)]
    if hops:
        print(f"  {'Celery hop (queued->run)':24} p50 {pct(hops, 50):7.1f} ms  p95 {pct(hops, 95):7.1f} ms")
    if creates:
        print(f"  {'engine create+start':24} p50 {pct(creates, 50):7.1f} ms  p95 {pct(creates, 95):7.1f} ms")
    if connects:
        print(f"  {'pooled: join network':24} p50 {pct(connects, 50):7.1f} ms  p95 {pct(connects, 95):7.1f} ms"
              f"  ({len(connects)} claimed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--idle", type=int, default=5, help="idle instances to measure memory on (max 5)")
    parser.add_argument("--pool", type=int, default=2, help="hot-start pool size for the second run (0: skip it)")
    parser.add_argument("--url", help="a running playground (default: start one)")
    parser.add_argument("--token", help="API token for --url")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    if args.url:
        url, token = args.url.rstrip("/"), args.token
        report("against " + url, run_sessions(url, token, args.sessions + 1), None)
        mem = idle_memory(url, token, min(args.idle, 5))
    else:
        stack = start_stack(14, 0)
        try:
            token = stack.token("bench")
            report("created on demand", run_sessions(stack.url, token, args.sessions + 1), stack.log("worker"))
            mem = idle_memory(stack.url, token, min(args.idle, 5))
        finally:
            stack.stop()
        if args.pool:
            stack = start_stack(14, args.pool)
            try:
                results = run_sessions(stack.url, stack.token("bench"), args.sessions + 1,
                                       before=lambda: pool_ready(stack.deployment, args.pool))
                report(f"hot-start pool of {args.pool}", results, stack.log("worker"))
            finally:
                stack.stop()
                stack.manage("drain_pool")
    print(f"host memory per idle shell instance (PSS, shim included): "
          f"mean {statistics.mean(mem):.1f} MiB, max {max(mem):.1f} MiB over {len(mem)}")


if __name__ == "__main__":
    main()
