"""Docker-capable instance start-up and idle memory, measured on the real stack.

Starts its own playground (Daphne, a Celery worker and beat, under a deployment
label of its own) against the project's engine and Redis, unless --url and
--token point it at a running one. For each of N sessions of the ``docker``
image, one after another:

    POST /api/sessions/ {"image": "docker"}  ->  POST .../exec/ {"command": "docker version"}

and prints p50/p95 of the time until that exec answered with the inner engine
up (the instance turns running only once its engine answers). Then it starts M
idle docker instances in one session and prints host memory per instance (the
PSS of the container's processes, dockerd and containerd included, plus its
runtime shim).

    .venv/bin/python bench/docker_start.py [--sessions 20] [--idle 3]
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

from bench.session_start import cgroup_pids, machine, ms, parent_of, pct, pss_kib  # noqa: E402
from tests.stack import ENGINE, Stack  # noqa: E402

READY = "docker version --format '{{.Server.Version}}'"


def run_sessions(url: str, token: str, n: int) -> list[float]:
    http = requests.Session()
    http.headers["Authorization"] = f"Token {token}"
    ready: list[float] = []
    for i in range(n):
        t0 = time.perf_counter()
        created = http.post(url + "/api/sessions/", json={"image": "docker"}, timeout=60)
        created.raise_for_status()
        session = created.json()
        iid = session["instances"][0]["id"]
        answer = http.post(f"{url}/api/sessions/{session['id']}/instances/{iid}/exec/",
                           json={"command": READY, "timeout": 60}, timeout=90)
        t1 = time.perf_counter()
        answer.raise_for_status()
        if answer.json()["exit_code"] != 0:
            raise SystemExit(f"the inner engine did not answer: {answer.json()['output']}")
        if i > 0:  # the first one warms caches and connection pools
            ready.append(t1 - t0)
        http.delete(f"{url}/api/sessions/{session['id']}/", timeout=60).raise_for_status()
    return ready


def idle_memory(url: str, token: str, n: int) -> list[float]:
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
    per_instance = []
    for iid in ids:
        [container] = engine.containers(filters={"label": f"playground.instance={iid}"})
        pids = cgroup_pids(container["Id"])
        shim = parent_of(engine.inspect_container(container["Id"])["State"]["Pid"])
        per_instance.append(sum(pss_kib(p) for p in {*pids, shim}) / 1024)
    http.delete(f"{url}/api/sessions/{sid}/", timeout=60)
    return per_instance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--idle", type=int, default=3, help="idle docker instances to measure memory on (max 5)")
    parser.add_argument("--url", help="a running playground (default: start one)")
    parser.add_argument("--token", help="API token for --url")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    if args.url:
        url, token = args.url.rstrip("/"), args.token
        ready = run_sessions(url, token, args.sessions + 1)
        mem = idle_memory(url, token, min(args.idle, 5))
    else:
        stack = Stack(Path(tempfile.mkdtemp(prefix="bench-docker-")), redis_db=22,
                      env={"PLAYGROUND_SESSION_RATE_USER": "100000/min", "PLAYGROUND_POOL_SIZE": "0"}).start()
        try:
            token = stack.token("bench")
            ready = run_sessions(stack.url, token, args.sessions + 1)
            mem = idle_memory(stack.url, token, min(args.idle, 5))
        finally:
            stack.stop()
    print(f"docker instance start, over {len(ready)} sessions (one after another):")
    print(f"  {'POST to inner engine answering':32} p50 {ms(pct(ready, 50))}  p95 {ms(pct(ready, 95))}"
          f"  max {ms(max(ready))}")
    print(f"host memory per idle docker instance (PSS, shim included): "
          f"mean {statistics.mean(mem):.1f} MiB, max {max(mem):.1f} MiB over {len(mem)}")


if __name__ == "__main__":
    main()
