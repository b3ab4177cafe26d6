"""Docker-capable instance start-up and idle memory, measured on the real stack.

Starts its own playground (Daphne, a Celery worker and beat, under a deployment
label of its own) against the project's engine and Redis, unless --url and
--token point it at a running one. For each of N sessions of the ``docker``
image, one after another:

    POST /api/sessions/ {"image": "docker"}  ->  POST .../exec/ {"command": "docker version"}

and prints p50/p95 of the POST alone and of the time until that exec answered
with the inner engine up (the instance turns running only once its engine
answers). It does so twice: with every instance created on demand (no pool),
and with a hot-start pool of docker instances (PLAYGROUND_POOL_IMAGES=docker=N;
N=1 is what the playground keeps by default), waiting before each session
until the pool is full again, as it is when sessions do not arrive in a burst.
Then it starts M idle docker instances in one session and prints host memory
per instance: the PSS of the container's processes, dockerd and containerd
included, plus its runtime shim; and the private (anonymous) part of it, what
one more instance adds once the binaries' pages are shared.

    .venv/bin/python bench/docker_start.py [--sessions 20] [--idle 3] [--pool 1]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.session_start import DEFAULT_PERIODS, cgroup_pids, machine, ms, parent_of, pct, pss_kib
from tests.stack import ENGINE, Stack

READY = "docker version --format '{{.Server.Version}}'"


def run_sessions(url: str, token: str, n: int, before=None) -> dict[str, list[float]]:
    http = requests.Session()
    http.headers["Authorization"] = f"Token {token}"
    results: dict[str, list[float]] = {"post": [], "ready": []}
    for i in range(n):
        if before is not None:
            before()
        t0 = time.perf_counter()
        created = http.post(url + "/api/sessions/", json={"image": "docker"}, timeout=60)
        t1 = time.perf_counter()
        created.raise_for_status()
        session = created.json()
        iid = session["instances"][0]["id"]
        answer = http.post(f"{url}/api/sessions/{session['id']}/instances/{iid}/exec/",
                           json={"command": READY, "timeout": 60}, timeout=90)
        t2 = time.perf_counter()
        answer.raise_for_status()
        if answer.json()["exit_code"] != 0:
            raise SystemExit(f"the inner engine did not answer: {answer.json()['output']}")
        if i > 0:  # the first one warms caches and connection pools
            results["post"].append(t1 - t0)
            results["ready"].append(t2 - t0)
        http.delete(f"{url}/api/sessions/{session['id']}/", timeout=60).raise_for_status()
    return results


def pool_ready(stack: Stack, size: int) -> None:
    """Wait until ``size`` pooled docker instances are ready to be claimed
    (running in the stack's database: their inner engine answered)."""
    query = ("SELECT count(*) FROM play_sessions_instance "
             "WHERE session_id IS NULL AND image = 'docker' AND state = 'running'")
    deadline = time.monotonic() + 120
    while stack.sql(query)[0][0] < size:
        if time.monotonic() > deadline:
            raise SystemExit("the docker pool did not fill within 120 s")
        time.sleep(0.1)


def report(title: str, results: dict[str, list[float]]) -> None:
    print(f"docker instance start, {title}, over {len(results['ready'])} sessions (one after another):")
    for key, label in (("post", "POST /api/sessions/"), ("ready", "POST to inner engine answering")):
        values = results[key]
        print(f"  {label:32} p50 {ms(pct(values, 50))}  p95 {ms(pct(values, 95))}  max {ms(max(values))}")


def start_stack(pool: int) -> Stack:
    env = {**DEFAULT_PERIODS, "PLAYGROUND_SESSION_RATE_USER": "100000/min", "PLAYGROUND_POOL_SIZE": "0"}
    if pool:
        env.update({"PLAYGROUND_POOL_IMAGES": f"docker={pool}", "PLAYGROUND_POOL_SECONDS": "1"})
    return Stack(Path(tempfile.mkdtemp(prefix="bench-docker-")), redis_db=22, env=env).start()


def idle_memory(url: str, token: str, n: int) -> tuple[list[float], list[float]]:
    import docker

    engine = docker.APIClient(base_url=ENGINE, version="1.41")
    http = requests.Session()
    http.headers["Authorization"] = f"Token {token}"
    created = http.post(url + "/api/sessions/", json={"image": "docker"}, timeout=60).json()
    sid = created["id"]
    ids = [created["instances"][0]["id"]]
    for _ in range(n - 1):
        ids.append(http.post(f"{url}/api/sessions/{sid}/instances/", json={"image": "docker"},
                             timeout=60).json()["id"])
    for iid in ids:
        http.post(f"{url}/api/sessions/{sid}/instances/{iid}/exec/", json={"command": READY}, timeout=90)
    time.sleep(5)  # let the engines settle
    pss, private = [], []
    for iid in ids:
        [container] = engine.containers(filters={"label": f"playground.instance={iid}"})
        pids = cgroup_pids(container["Id"])
        shim = parent_of(engine.inspect_container(container["Id"])["State"]["Pid"])
        pss.append(sum(pss_kib(p) for p in {*pids, shim}) / 1024)
        private.append(sum(pss_kib(p, "Anonymous") for p in {*pids, shim}) / 1024)
    http.delete(f"{url}/api/sessions/{sid}/", timeout=60)
    return pss, private


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--idle", type=int, default=3, help="idle docker instances to measure memory on (max 5)")
    parser.add_argument("--pool", type=int, default=1, help="docker instances pooled for the second run (0: skip it)")
    parser.add_argument("--url", help="a running playground (default: start one)")
    parser.add_argument("--token", help="API token for --url")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    if args.url:
        url, token = args.url.rstrip("/"), args.token
        report("against " + url, run_sessions(url, token, args.sessions + 1))
        mem = idle_memory(url, token, min(args.idle, 5))
    else:
        stack = start_stack(0)
        try:
            token = stack.token("bench")
            report("created on demand (PLAYGROUND_POOL_SIZE=0: no pool)", run_sessions(stack.url, token, args.sessions + 1))
            mem = idle_memory(stack.url, token, min(args.idle, 5))
        finally:
            stack.stop()
        if args.pool:
            stack = start_stack(args.pool)
            try:
                results = run_sessions(stack.url, stack.token("bench"), args.sessions + 1,
                                       before=lambda: pool_ready(stack, args.pool))
                report(f"hot-start pool of {args.pool}" + (" (the default)" if args.pool == 1 else ""), results)
            finally:
                stack.stop()
                stack.manage("drain_pool")
    pss, private = mem
    print(f"host memory per idle docker instance (PSS, shim included): "
          f"mean {statistics.mean(pss):.1f} MiB, max {max(pss):.1f} MiB over {len(pss)}")
    print(f"  of which private (anonymous, what one more instance adds; the rest is the binaries'\n"
          f"  pages, shared by every instance of the host): mean {statistics.mean(private):.1f} MiB")


if __name__ == "__main__":
    main()
