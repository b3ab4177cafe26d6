"""PostgreSQL for tests: the project's cluster (scripts/postgres.sh), a
throwaway database per stack on it, and private clusters that a fault test may
stop (the shared cluster is never stopped by a test: others run on it).

Every cluster here listens on 127.0.0.1 only and runs as the ``postgres`` user
(initdb refuses root); the tests run as root, as the project's scripts do."""
from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

STATE_DIR = Path(os.environ.get("PLAYGROUND_STATE_DIR", "/var/lib/playground"))
PORT = int(os.environ.get("PLAYGROUND_POSTGRES_PORT", "5439"))
BIN = Path(os.environ.get("PLAYGROUND_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))


def cluster_url() -> str | None:
    """The URL of the project cluster's ``playground`` database:
    PLAYGROUND_TEST_POSTGRES_URL, else what scripts/postgres.sh set up (its
    password file), else None (no PostgreSQL configured)."""
    explicit = os.environ.get("PLAYGROUND_TEST_POSTGRES_URL")
    if explicit:
        return explicit
    try:
        password = (STATE_DIR / "postgres" / "password").read_text().strip()
    except OSError:
        return None
    return f"postgres://playground:{password}@127.0.0.1:{PORT}/playground"


def is_postgres(url: str | None) -> bool:
    return bool(url) and urlsplit(url).scheme in {"postgres", "postgresql", "pgsql"}


def answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as db:
            db.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def with_database(url: str, name: str) -> str:
    """``url`` naming database ``name`` instead (its server, role and options kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def database_name(deployment: str) -> str:
    """A database name for a stack: from its deployment (``test-1a2b3c4d``), so
    what a crashed run left is told apart and found."""
    return "playground_" + re.sub(r"[^a-z0-9_]", "_", deployment.lower())


def create_database(server_url: str, name: str) -> str:
    """Make database ``name`` on the server of ``server_url`` (dropping a
    leftover of that name); returns its URL."""
    drop_database(server_url, name)
    with psycopg.connect(server_url, autocommit=True, connect_timeout=3) as db:
        db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name``, ending whatever is still connected to it."""
    with psycopg.connect(server_url, autocommit=True, connect_timeout=3) as db:
        db.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def throwaway_database(server_url: str, name: str) -> Iterator[str]:
    """A database made for the block and dropped after it; yields its URL."""
    url = create_database(server_url, name)
    try:
        yield url
    finally:
        drop_database(server_url, name)


# -- private clusters ----------------------------------------------------------------

def _as_postgres(*argv: str | Path, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--", *map(str, argv)], cwd="/",
                          capture_output=True, text=True, check=check, timeout=120)


@dataclass
class Cluster:
    """A PostgreSQL of a test's own: ``url`` names its ``postgres`` database as
    its superuser (a Stack makes a database of its own there)."""

    home: Path
    port: int
    password: str

    @property
    def url(self) -> str:
        return f"postgres://postgres:{self.password}@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def log(self) -> Path:
        return self.home / "postgres.log"

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.home}"
                   " -c fsync=off -c synchronous_commit=off")
        done = _as_postgres(BIN / "pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "-t", "60",
                            "start", check=False)
        if done.returncode != 0:
            raise AssertionError(f"the private PostgreSQL did not start:\n{done.stdout}{done.stderr}\n{self.log_text()}")

    def stop(self, mode: str = "fast") -> None:
        """Stop it: ``fast`` (sessions ended, as an operator's stop) or
        ``immediate`` (as a crash: no checkpoint)."""
        _as_postgres(BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return _as_postgres(BIN / "pg_ctl", "-D", self.data, "status", check=False).returncode == 0

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextmanager
def private_cluster(workdir: Path) -> Iterator[Cluster]:
    """initdb and start a PostgreSQL on a free port for the block, then stop
    and remove it; its log is copied to ``workdir/postgres.log``. Its files
    live in a directory of /tmp the postgres user may enter (a pytest
    tmp_path is root's alone)."""
    from tests.stack import free_port

    home = Path(tempfile.mkdtemp(prefix="playground-pg-"))
    try:
        shutil.chown(home, "postgres", "postgres")
        password = secrets.token_hex(16)
        pwfile = home / "pwfile"
        pwfile.write_text(password + "\n")
        shutil.chown(pwfile, "postgres", "postgres")
        cluster = Cluster(home=home, port=free_port(), password=password)
        _as_postgres(BIN / "initdb", "-D", cluster.data, "-U", "postgres", f"--pwfile={pwfile}",
                     "--auth-local=peer", "--auth-host=scram-sha-256", "--encoding=UTF8",
                     "--locale=C.UTF-8", "--no-instructions")
        pwfile.unlink()
        cluster.start()
        try:
            yield cluster
        finally:
            if cluster.running():
                cluster.stop("immediate")
            workdir.mkdir(parents=True, exist_ok=True)
            (workdir / "postgres.log").write_text(cluster.log_text())
    finally:
        shutil.rmtree(home, ignore_errors=True)
