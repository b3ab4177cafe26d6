"""A class of learners joining at nine o'clock: time to a usable prompt.

Starts its own playground (Daphne, a Celery worker and beat, under a deployment
label of its own) against the project's engine and Redis, imports a one-node
lab, and opens a class for --learners seats. Then --learners learners join
within --spread seconds (each at a random moment, all at once in threads):
POST /api/sessions/ {"join_code"} and then exec on the instance, which answers
once the instance runs. Printed: p50/p95/max of join-to-usable, twice:

* with the hot-start pool warmed (the class was warmed before its start, so
  each learner is handed a session that exists already);
* without it (every container is created when its learner joins).

Prints numbers, asserts nothing.

    .venv/bin/python bench/class_join.py [--learners 30] [--spread 10]
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.session_start import DEFAULT_PERIODS, machine, ms, pct
from tests.stack import ENGINE, Stack, wait_for

LAB = """\
title: Bench
summary: One shell instance.
duration: 5
difficulty: beginner
tags: [bench]
environment:
  instances:
    - name: node1
      image: shell
steps:
  - title: Say hello
    text: step1.md
    check: "true"
"""


def lab_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="bench-lab-")) / "bench-class"
    folder.mkdir()
    (folder / "lab.yaml").write_text(textwrap.dedent(LAB))
    for name, text in {"intro.md": "# Bench\n", "finish.md": "Done.\n", "step1.md": "Hello.\n"}.items():
        (folder / name).write_text(text)
    return folder


def start_stack(warm_seconds: float) -> Stack:
    stack = Stack(Path(tempfile.mkdtemp(prefix="bench-class-")), redis_db=18, env={
        **DEFAULT_PERIODS,
        "PLAYGROUND_SESSION_RATE_USER": "100000/min",
        "PLAYGROUND_EXEC_RATE_USER": "100000/min",
        "PLAYGROUND_CLASS_WARM_SECONDS": str(warm_seconds),
        "PLAYGROUND_HOST_CAPACITY": "1000",
    }).start()
    stack.manage("import_labs", str(lab_folder()))
    stack.tokens["teacher"] = stack.manage("create_api_token", "--instructor", "teacher").strip()
    return stack


def open_class(stack: Stack, seats: int, starts_in: timedelta) -> dict:
    now = datetime.now(UTC)
    answer = stack.client("teacher").post(f"{stack.url}/api/classrooms/", timeout=30, json={
        "title": "Bench class", "lab": "bench-class", "seats": seats,
        "starts_at": (now + starts_in).isoformat(), "ends_at": (now + timedelta(hours=2)).isoformat()})
    answer.raise_for_status()
    return answer.json()


def learners_join(stack: Stack, code: str, n: int, spread: float) -> dict[str, list[float]]:
    tokens = [stack.token(f"learner{i}") for i in range(n)]
    times: list[float] = []
    joins: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def learner(token: str) -> None:
        time.sleep(random.uniform(0, spread))
        http = requests.Session()
        http.headers["Authorization"] = f"Token {token}"
        t0 = time.perf_counter()
        try:
            joined = http.post(f"{stack.url}/api/sessions/", json={"join_code": code}, timeout=120)
            t1 = time.perf_counter()
            joined.raise_for_status()
            session = joined.json()
            iid = session["instances"][0]["id"]
            ready = http.post(f"{stack.url}/api/sessions/{session['id']}/instances/{iid}/exec/",
                              json={"command": "true", "timeout": 120}, timeout=150)
            ready.raise_for_status()
        except requests.RequestException as exc:
            with lock:
                errors.append(str(exc))
            return
        with lock:
            times.append(time.perf_counter() - t0)
            joins.append(t1 - t0)

    threads = [threading.Thread(target=learner, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        print(f"  {len(errors)} learner(s) failed, e.g. {errors[0]}")
    return {"usable": times, "join": joins}


def report(title: str, results: dict[str, list[float]]) -> None:
    times, joins = results["usable"], results["join"]
    if not times:
        print(f"{title}: no learner got a prompt")
        return
    print(f"{title}: {len(times)} learners, join to usable prompt "
          f"p50 {ms(pct(times, 50))}  p95 {ms(pct(times, 95))}  max {ms(max(times))}")
    print(f"  (the join POST alone: p50 {ms(pct(joins, 50))}  p95 {ms(pct(joins, 95))})")


def end_all(stack: Stack, cid: str) -> None:
    stack.client("teacher").delete(f"{stack.url}/api/classrooms/{cid}/", timeout=600)


def purge(stack: Stack) -> None:
    """Whatever the run left on the engine under its deployment label."""
    import docker

    from tests.integration.conftest import _purge

    _purge(docker.APIClient(base_url=ENGINE, version="1.41"), stack.deployment)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learners", type=int, default=30)
    parser.add_argument("--spread", type=float, default=10.0, help="seconds over which learners arrive")
    args = parser.parse_args()
    print(f"machine: {machine()}")

    stack = start_stack(warm_seconds=1)
    try:
        classroom = open_class(stack, args.learners, timedelta(minutes=2))
        t0 = time.monotonic()
        query = ("SELECT COUNT(*) FROM classrooms_warmsession w JOIN play_sessions_session s ON s.id = w.session_id "
                 "WHERE w.classroom_id = ? AND s.state = 'running'")
        wait_for(lambda: stack.sql(query, (classroom["id"],))[0][0] >= args.learners, timeout=900,
                 what="the warm pool to fill")
        print(f"warm pool of {args.learners} sessions filled in {time.monotonic() - t0:.1f} s")
        stack.sql("UPDATE classrooms_classroom SET starts_at = datetime('now', '-1 minute') WHERE id = ?",
                  (classroom["id"],))
        report("with the hot-start pool", learners_join(stack, classroom["join_code"], args.learners, args.spread))
        end_all(stack, classroom["id"])
    finally:
        stack.stop()
        purge(stack)

    stack = start_stack(warm_seconds=86400)  # beat never gets to warm it
    try:
        classroom = open_class(stack, args.learners, -timedelta(minutes=1))
        report("without a pool", learners_join(stack, classroom["join_code"], args.learners, args.spread))
        end_all(stack, classroom["id"])
    finally:
        stack.stop()
        purge(stack)


if __name__ == "__main__":
    main()
