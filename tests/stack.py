"""A real playground for integration tests: Daphne, a Celery worker and Celery
beat as separate processes, against the project's Redis and lab-host engine,
under a deployment label of their own so they never touch ``make up``."""
from __future__ import annotations

import atexit
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import requests

from tests import pg

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ENGINE = os.environ.get("PLAYGROUND_TEST_ENGINE", "unix:///run/playground/docker.sock")
SHELL_IMAGE = os.environ.get("PLAYGROUND_IMAGE_SHELL", "playground-shell:latest")
REDIS = os.environ.get("PLAYGROUND_TEST_REDIS", "redis://127.0.0.1:6399")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], object], *, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


class Stack:
    def __init__(self, workdir: Path, *, redis_db: int, env: dict[str, str] | None = None,
                 redis: str = REDIS, database_url: str | None = None) -> None:
        self.workdir = workdir
        self.deployment = f"test-{secrets.token_hex(4)}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_path = workdir / "db.sqlite3"
        # On PostgreSQL when given a server's URL (database_url, else
        # PLAYGROUND_TEST_DATABASE_URL): a database of the stack's own there,
        # made by start() and dropped when the test run ends.
        self.database_server = database_url or os.environ.get("PLAYGROUND_TEST_DATABASE_URL") or None
        self.database = pg.database_name(self.deployment) if pg.is_postgres(self.database_server) else None
        self._database_made = False
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "playground.settings",
            "PLAYGROUND_STATE_DIR": str(workdir),
            "DATABASE_URL": (pg.with_database(self.database_server, self.database) if self.database
                             else f"sqlite:///{self.db_path}"),
            "REDIS_URL": f"{redis}/{redis_db}",
            "PLAYGROUND_DEPLOYMENT": self.deployment,
            "PLAYGROUND_LAB_HOSTS": ENGINE,
            "PLAYGROUND_SWEEP_SECONDS": "1",
            "PLAYGROUND_HEALTH_SECONDS": "1",
            "PLAYGROUND_RECONCILE_SECONDS": "2",
            "PLAYGROUND_ACTIVITY_FLUSH_SECONDS": "0",
            # No hot-start pool unless a test asks for one: tests count the
            # containers they make, and a pool would be extra ones.
            "PLAYGROUND_POOL_SIZE": "0",
            # Tests make many sessions quickly; rate limits get tests of their own.
            "PLAYGROUND_SESSION_RATE_USER": "1000/min",
            "PLAYGROUND_SESSION_RATE_GUEST": "1000/min",
            "PLAYGROUND_EXEC_RATE_USER": "10000/min",
            "PLAYGROUND_EXEC_RATE_GUEST": "10000/min",
            "PLAYGROUND_SESSION_RATE_GUEST_ADDRESS": "10000/min",
            **(env or {}),
        }
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.argv: dict[str, list[str]] = {}
        self.tokens: dict[str, str] = {}

    # -- life cycle -------------------------------------------------------------
    def start(self) -> Stack:
        subprocess.run(["redis-cli", "-u", self.env["REDIS_URL"], "flushdb"], check=True, capture_output=True)
        if self.database and not self._database_made:
            pg.create_database(self.database_server, self.database)
            self._database_made = True
            atexit.register(self._drop_database_at_exit)
        self.manage("migrate", "--noinput")
        self._spawn_web()
        self._spawn("worker", [PYTHON, "-m", "celery", "-A", "playground", "worker", "--pool", "threads",
                               "--concurrency", "8", "-l", "info", "--without-mingle", "--without-gossip"])
        self._spawn("beat", [PYTHON, "-m", "celery", "-A", "playground", "beat", "-l", "info",
                             "-s", str(self.workdir / "celerybeat-schedule")])
        self._spawn("watcher", [PYTHON, "manage.py", "watch_engines"])
        try:
            wait_for(self._web_answers, timeout=30, what="Daphne to answer")
            wait_for(lambda: "ready" in self.log("worker"), timeout=30, what="the Celery worker to be ready")
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn_web(self) -> None:
        """The web tier: one Daphne on ``self.port`` (tests/multiweb.py runs several behind nginx)."""
        self._spawn("web", [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "playground.asgi:application"])

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - the child writes to its own copy of the descriptor
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append((name, proc))
        self.argv[name] = argv

    def process(self, name: str) -> subprocess.Popen:
        return next(proc for n, proc in self.processes if n == name)

    def kill(self, name: str) -> None:
        """SIGKILL one of the stack's processes (a fault, as an operator meets it)."""
        proc = self.process(name)
        proc.kill()
        proc.wait(timeout=10)
        self.processes = [(n, p) for n, p in self.processes if p is not proc]

    def respawn(self, name: str) -> None:
        """Start a process of the stack again (after ``kill``), as before."""
        self._spawn(name, self.argv[name])

    def _web_answers(self) -> bool:
        for name, proc in self.processes:
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited early:\n{self.log(name)[-3000:]}")
        try:
            requests.get(self.url + "/healthz", timeout=2)
            return True
        except requests.RequestException:
            return False

    def stop(self) -> None:
        for _, proc in self.processes:
            proc.terminate()
        for _, proc in self.processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.processes.clear()

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- helpers ---------------------------------------------------------------
    def manage(self, *args: str) -> str:
        done = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def token(self, username: str) -> str:
        if username not in self.tokens:
            self.tokens[username] = self.manage("create_api_token", username).strip()
        return self.tokens[username]

    def client(self, username: str) -> requests.Session:
        http = requests.Session()
        http.headers["Authorization"] = f"Token {self.token(username)}"
        http.base = self.url  # type: ignore[attr-defined]
        return http

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        """Run SQL on the stack's database (to move clocks, not to assert internals).
        ``?`` placeholders work on both SQLite and PostgreSQL."""
        if self.database:
            with psycopg.connect(self.env["DATABASE_URL"], autocommit=True, connect_timeout=10) as db:
                cursor = db.execute(query.replace("?", "%s"), params)
                return cursor.fetchall() if cursor.description else []
        with sqlite3.connect(self.db_path, timeout=20) as db:
            return db.execute(query, params).fetchall()

    def drop_database(self) -> None:
        """Drop the stack's PostgreSQL database (after stop(); at the latest
        when the test run ends)."""
        if self.database and self._database_made:
            self._database_made = False
            pg.drop_database(self.database_server, self.database)

    def _drop_database_at_exit(self) -> None:
        try:
            self.drop_database()
        except psycopg.Error:
            pass  # its server is gone already (a private cluster), and the database with it
