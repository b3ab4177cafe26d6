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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandboxes.base import Created, InstanceSpec
from sandboxes.docker import DockerDriver


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
    parser.add_argument(
        "--engine",
        default=os.environ.get("PLAYGROUND_TEST_ENGINE", "unix:///run/playground/docker.sock"),
    )
    parser.add_argument(
        "--image", default=os.environ.get("PLAYGROUND_TEST_IMAGE", "playground-shell:latest")
    )
    args = parser.parse_args()

    driver = DockerDriver(url=args.engine, deployment=f"bench-ops-{secrets.token_hex(3)}")
    timings: dict[str, list[float]] = defaultdict(list)

    @contextmanager
    def timed(name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        timings[name].append(time.perf_counter() - started)

    def spec(instance_id: str, network: dict | None, hostname: str = "node1") -> InstanceSpec:
        return InstanceSpec(instance_id, args.image, hostname, network)

    try:
        for n in range(args.rounds):
            with timed("create_network"):
                network = driver.create_network(f"n{n}")
            with timed("create_instance"):
                created = driver.create_instance(spec(f"i{n}", network))
            with timed("attach + shell answers"):
                first_answer(driver, created.state)
            with timed("exec true"):
                driver.exec(created.state, "true")
            with timed("put_file 4 KiB"):
                driver.put_file(created.state, "/tmp/b/f", b"x" * 4096)
            with timed("get_file 4 KiB"):
                driver.get_file(created.state, "/tmp/b/f")
            with timed("inspect"):
                driver.inspect(created.state)
            with timed("recent_output 64 KiB"):
                driver.recent_output(created.state, max_bytes=65536)
            with timed("remove_instance"):
                driver.remove_instance(created.state)
            with timed("create_instance (pooled, no network)"):
                pooled = driver.create_instance(spec(f"pool{n}", None))
            with timed("connect_instance (claim a pooled one)"):
                joined = driver.connect_instance(pooled.state, network, hostname="node1")
            driver.remove_instance(joined.state)
            with timed("remove_network"):
                driver.remove_network(network)

        if args.parallel:
            k = args.parallel
            network = driver.create_network("parallel")

            def start(i: int) -> Created:
                with timed(f"create_instance x{k} at once"):
                    return driver.create_instance(spec(f"p{i}", network, f"node{i}"))

            def run_true(created: Created) -> None:
                with timed(f"exec true x{k} at once"):
                    driver.exec(created.state, "true")

            def remove(created: Created) -> None:
                with timed(f"remove_instance x{k} at once"):
                    driver.remove_instance(created.state)

            with ThreadPoolExecutor(k) as pool:
                made = list(pool.map(start, range(k)))
                list(pool.map(run_true, made))
                list(pool.map(remove, made))
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
    total = [
        a + b for a, b in zip(timings["create_network"], timings["create_instance"], strict=True)
    ]
    print(
        f"{'network + instance (session start)':36} {pct(total, 50) * 1000:7.1f}ms "
        f"{pct(total, 95) * 1000:7.1f}ms {max(total) * 1000:7.1f}ms "
        f"(mean {statistics.mean(total) * 1000:.1f}ms)"
    )


if __name__ == "__main__":
    main()
