"""Latency of each Docker driver operation, straight against the lab-host engine.

For N rounds, one after another: create a network, create an instance on it
(to running, with its IP), attach and see the shell answer, run one exec
(``true``), put and get a small file, remove the instance, remove the network.
Then K instances created at once from K threads (a class starting together).
Prints p50/p95/max per operation. Objects carry a deployment label of their
own and are removed at the end.

    .venv/bin/python bench/driver_ops.py [--rounds 20] [--parallel 10]
        [--engine unix:///run/playground/docker.sock] [--image playground-shell:latest]
"""
from __future__ import annotations

import argparse
import os
import secrets
import select
import statistics
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandboxes.base import InstanceSpec  # noqa: E402
from sandboxes.docker import DockerDriver  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def first_answer(driver: DockerDriver, state: dict) -> None:
    terminal = driver.attach(state)
    try:
        terminal.sendall(b"echo ready-$((1+1))\n")
        seen = b""
        deadline = time.monotonic() + 10
        while b"ready-2" not in seen:
            if not select.select([terminal], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise RuntimeError(f"no answer from the shell: {seen!r}")
            chunk = terminal.recv(65536)
            if not chunk:
                raise RuntimeError("the terminal closed")
            seen += chunk
    finally:
        terminal.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=10)
    parser.add_argument("--engine", default=os.environ.get("PLAYGROUND_TEST_ENGINE", "unix:///run/playground/docker.sock"))
    parser.add_argument("--image", default=os.environ.get("PLAYGROUND_TEST_IMAGE", "playground-shell:latest"))
    args = parser.parse_args()

    driver = DockerDriver(url=args.engine, deployment=f"bench-ops-{secrets.token_hex(3)}")
    timings: dict[str, list[float]] = defaultdict(list)

    def timed(name: str, call):
        started = time.perf_counter()
        result = call()
        timings[name].append(time.perf_counter() - started)
        return result

    try:
        for n in range(args.rounds):
            network = timed("create_network", lambda: driver.create_network(f"n{n}"))
            spec = InstanceSpec(instance_id=f"i{n}", image=args.image, hostname="node1", network=network)
            created = timed("create_instance", lambda: driver.create_instance(spec))
            timed("attach + shell answers", lambda: first_answer(driver, created.state))
            timed("exec true", lambda: driver.exec(created.state, "true"))
            timed("put_file 4 KiB", lambda: driver.put_file(created.state, "/tmp/b/f", b"x" * 4096))
            timed("get_file 4 KiB", lambda: driver.get_file(created.state, "/tmp/b/f"))
            timed("inspect", lambda: driver.inspect(created.state))
            timed("recent_output 64 KiB", lambda: driver.recent_output(created.state, max_bytes=65536))
            timed("remove_instance", lambda: driver.remove_instance(created.state))
            pooled = timed(
                "create_instance (pooled, no network)",
                lambda: driver.create_instance(
                    InstanceSpec(instance_id=f"pool{n}", image=args.image, hostname="node1", network=None)
                ),
            )
            joined = timed(
                "connect_instance (claim a pooled one)",
                lambda: driver.connect_instance(pooled.state, network, hostname="node1"),
            )
            driver.remove_instance(joined.state)
            timed("remove_network", lambda: driver.remove_network(network))

        if args.parallel:
            network = driver.create_network("parallel")

            def start(k: int):
                spec = InstanceSpec(instance_id=f"p{k}", image=args.image, hostname=f"node{k}", network=network)
                return timed(f"create_instance x{args.parallel} at once", lambda: driver.create_instance(spec))

            with ThreadPoolExecutor(args.parallel) as pool:
                made = list(pool.map(start, range(args.parallel)))
            with ThreadPoolExecutor(args.parallel) as pool:
                list(pool.map(lambda c: timed(f"exec true x{args.parallel} at once", lambda: driver.exec(c.state, "true")), made))
            with ThreadPoolExecutor(args.parallel) as pool:
                list(pool.map(lambda c: timed(f"remove_instance x{args.parallel} at once", lambda: driver.remove_instance(c.state)), made))
            driver.remove_network(network)
    finally:
        for obj in sorted(driver.list_objects(), key=lambda o: o.kind == "network"):
            driver.remove_object(obj)

    print(f"engine {args.engine}, image {args.image}, {args.rounds} rounds")
    print(f"{'operation':36} {'p50':>9} {'p95':>9} {'max':>9}")
    for name, values in timings.items():
        print(
            f"{name:36} {pct(values, 50) * 1000:7.1f}ms {pct(values, 95) * 1000:7.1f}ms "
            f"{max(values) * 1000:7.1f}ms"
        )
    total = [a + b for a, b in zip(timings["create_network"], timings["create_instance"])]
    print(f"{'network + instance (session start)':36} {pct(total, 50) * 1000:7.1f}ms "
          f"{pct(total, 95) * 1000:7.1f}ms {max(total) * 1000:7.1f}ms  (mean {statistics.mean(total) * 1000:.1f}ms)")


if __name__ == "__main__":
    main()
