"""The lab-host driver contract.

A driver runs sandbox instances on one lab host. It knows containers,
networks, terminals and labels; it knows nothing of users, labs or Django.

State
-----
Every object a driver creates is described by a small JSON-serialisable dict
(``state``) that the caller stores and hands back unchanged. Callers never look
inside it (habit 2 of STYLE.md).

Labels
------
Every container, network and volume a driver creates carries:

* ``playground.deployment``: the installation it belongs to, so two
  installations sharing an engine (``make up`` and ``make test``) never touch
  each other's objects;
* ``playground.kind``: ``instance``, ``network`` or ``volume``;
* ``playground.instance`` on instance containers and volumes: the opaque id of
  the Instance row that owns it;
* ``playground.network`` on networks: the opaque network key the caller chose.

The session an instance belongs to is *not* a label: it lives in the database,
so a pre-created instance can be handed to a session later
(``connect_instance``).

Instance life cycle
-------------------
``create_instance`` returns once the container runs (or raises).
``inspect`` reports ``running``, ``stopped`` (exited, with ``exit_code`` and a
``reason`` such as ``OOMKilled``) or ``missing`` (no such object on the engine).
``remove_instance`` and ``remove_network`` are idempotent: removing what is
already gone succeeds.

Errors
------
``DriverError(message, permanent=...)``: ``permanent=True`` means a retry
cannot help (unknown image, bad argument); ``False`` means it may (engine
unreachable, timeout). ``OutOfCapacity`` is a transient ``DriverError`` raised
when the host cannot take another instance. ``NotFound`` is raised by calls on
an object that no longer exists; ``NotRunning`` (permanent for that call) by
calls that need a running instance on one that exists but does not run.

Events
------
``events`` streams what happens to this deployment's instances on the host
(started, died, OOM, destroyed) as the engine reports it, so a watcher
learns of a dead instance in a moment instead of polling. The engine keeps
little or no history (Docker: about the last 1000 events, in memory, lost
when it restarts), so after (re)connecting a watcher also takes one
``list_objects`` round: what died while nobody listened shows there.

Blocking
--------
Every method blocks (it may do network I/O). Callers on an event loop run them
in a thread pool.
"""
from __future__ import annotations

import importlib
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

LABEL_DEPLOYMENT = "playground.deployment"
LABEL_KIND = "playground.kind"
LABEL_INSTANCE = "playground.instance"
LABEL_NETWORK = "playground.network"

DEFAULT_CAPABILITIES = (
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL",
    "NET_BIND_SERVICE", "NET_RAW", "SETGID", "SETUID", "SYS_CHROOT",
)

ObjectKind = Literal["container", "network", "volume"]
InstanceState = Literal["running", "stopped", "missing"]
EventKind = Literal["started", "died", "oom", "destroyed"]


class DriverError(Exception):
    """A lab-host operation failed. ``permanent`` says whether a retry can help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class OutOfCapacity(DriverError):
    """The lab host cannot take another instance now (HTTP 503 ``no_capacity``)."""

    def __init__(self, message: str = "the lab host is full") -> None:
        super().__init__(message, permanent=False)


class NotFound(DriverError):
    """The object the call names no longer exists on the lab host."""

    def __init__(self, message: str = "no such object") -> None:
        super().__init__(message, permanent=True)


class NotRunning(DriverError):
    """The instance exists but does not run (it exited, was killed, or its
    engine did not keep it): exec, stats, ports need a running one. A retry
    cannot help until something starts it again."""

    def __init__(self, message: str = "the instance is not running") -> None:
        super().__init__(message, permanent=True)


@dataclass(frozen=True)
class Limits:
    """Resource limits applied to every instance."""

    memory_bytes: int = 512 * 1024 * 1024
    cpus: float = 1.0
    pids: int = 512
    # The engine's output log backs the terminal replay; cap it so a flood
    # cannot fill the disk.
    log_max_bytes: int = 1024 * 1024
    # The only capabilities a (non nested-Docker) instance keeps, by Linux
    # name without ``CAP_``: enough for a learner's root shell (files, users,
    # ping, low ports, chroot, su), nothing that reaches the kernel's or the
    # host's configuration (no MKNOD, SETFCAP, SETPCAP, SYS_*, NET_ADMIN).
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES
    # Disk the instance may write (files and their metadata, so inodes too;
    # nested Docker's data included), or None for no limit. A driver enforces
    # it where its host can (Docker: an engine on btrfs); elsewhere the
    # caller's watchdog (``disk_usage``) is the only limit.
    disk_bytes: int | None = None


@dataclass(frozen=True)
class InstanceSpec:
    instance_id: str
    """Opaque id of the owning Instance row; goes into ``playground.instance``."""
    image: str
    """Engine image reference, e.g. ``playground-shell:latest``."""
    hostname: str
    network: dict[str, Any] | None
    """State returned by ``create_network``, or None for a pooled instance that
    joins a network later through ``connect_instance``."""
    limits: Limits = field(default_factory=Limits)
    env: dict[str, str] = field(default_factory=dict)
    nested_docker: bool = False
    """The image runs a Docker Engine of its own (the ``docker`` image): the
    instance gets what that engine needs (on Docker: every capability of its
    user namespace but ``SYS_RESOURCE``, a seccomp profile of its own, the
    engine's masked paths, no AppArmor, never ``--privileged``) and, where the host has no per-instance disk
    quota, a volume at ``/var/lib/docker`` labelled like the instance
    (``playground.kind=volume``), removed with it (elsewhere that data stays
    in the instance's own file system, inside its disk limit).
    ``create_instance`` then returns once that inner engine answers. Only for
    lab hosts whose engine remaps user namespaces (root inside is an
    unprivileged user on the host)."""


@dataclass(frozen=True)
class Created:
    state: dict[str, Any]
    """Opaque driver state of the new instance."""
    ip: str | None
    """Address on its session network (None while it has none)."""


@dataclass(frozen=True)
class InstanceStatus:
    state: InstanceState
    ip: str | None = None
    exit_code: int | None = None
    reason: str = ""
    """Human-readable cause when not running (``OOMKilled``, ``exited``...)."""


@dataclass(frozen=True)
class HostCapacity:
    """What a lab host has, for placing instances on it."""

    memory_bytes: int
    """Its memory."""
    cpus: float
    """Its CPUs."""
    memory_available_bytes: int | None = None
    """Memory still available on it now (Linux's MemAvailable), or None when
    the driver cannot tell."""


@dataclass(frozen=True)
class InstanceStats:
    """What an instance used, as sampled at ``at`` (``time.time()``)."""

    cpu_ns: int
    """CPU time used since it started, all its processes, in nanoseconds."""
    memory_bytes: int
    """Memory in use (the page cache that could be dropped left out)."""
    memory_limit_bytes: int
    """Its memory limit (the host's memory when it has none)."""
    at: float


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    """The command's exit code; 124 when it ran past its timeout."""
    output: bytes
    """stdout and stderr interleaved, at most ``Driver.exec_output_limit`` bytes."""


@dataclass(frozen=True)
class LabelledObject:
    kind: ObjectKind
    id: str
    name: str
    labels: dict[str, str]
    running: bool | None = None
    """Containers: whether it runs now (None for networks and volumes)."""

    @property
    def instance_id(self) -> str | None:
        return self.labels.get(LABEL_INSTANCE)

    @property
    def network_key(self) -> str | None:
        return self.labels.get(LABEL_NETWORK)


@dataclass(frozen=True)
class EngineEvent:
    """Something that happened to one of this deployment's instances."""

    instance_id: str
    """The ``playground.instance`` label of the container."""
    kind: EventKind
    """``started``; ``died`` (its main process ended: exited, killed, or
    stopped with the engine); ``oom`` (the kernel killed a process of it for
    memory: it may run on, a ``died`` follows when the main process was the
    one); ``destroyed`` (the container was removed)."""
    exit_code: int | None = None
    """For ``died``: the exit code (137: SIGKILL, which is also what an OOM
    kill of the main process gives)."""
    oom: bool = False
    """For ``died``: an ``oom`` of this instance came just before, on this stream."""
    at: float = 0.0
    """When the engine saw it (``time.time()`` scale, the engine's clock)."""


class EventStream(Protocol):
    """The events of a lab host, as they happen: iterate to get them.

    Iteration blocks until the next event and ends (``StopIteration``) when
    the connection to the host ends: the engine stopped or restarted, or
    ``close`` was called (from any thread). Open another stream then."""

    def __iter__(self) -> Iterator[EngineEvent]: ...

    def close(self) -> None: ...


class TerminalStream(Protocol):
    """A raw, bidirectional byte stream to an instance's TTY (no framing)."""

    def fileno(self) -> int: ...

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes of output; ``b""`` when the terminal closed."""
        ...

    def sendall(self, data: bytes) -> None: ...

    def send(self, data: bytes) -> int:
        """Write what fits now; the number of bytes written."""
        ...

    def setblocking(self, flag: bool) -> None:
        """Off for callers on an event loop (waiting on ``fileno()``): ``recv``
        and ``send`` then raise ``BlockingIOError`` (``ssl.SSLWantReadError`` /
        ``SSLWantWriteError`` over TLS) instead of waiting, and a readable
        ``fileno()`` is not needed for the first ``recv``: call it once after
        attaching, as bytes may have come with the engine's answer."""
        ...

    def close(self) -> None: ...


class Driver:
    """One lab host. Subclasses implement every method below.

    ``url`` names the host (for Docker: ``unix:///run/...sock`` or
    ``tcp://host:2376``); ``deployment`` is the value of the
    ``playground.deployment`` label this driver writes and the only one it
    lists or removes.
    """

    exec_output_limit = 1024 * 1024
    file_size_limit = 64 * 1024 * 1024

    def __init__(self, *, url: str, deployment: str, **options: object) -> None:
        self.url = url
        self.deployment = deployment
        self.options = options

    # -- the host -----------------------------------------------------------
    def ping(self) -> None:
        """Return if the host answers; raise a transient ``DriverError`` if not."""
        raise NotImplementedError

    def capacity(self) -> HostCapacity:
        """The host's memory and CPUs, and the memory available on it now
        when that can be read cheaply (one or two calls). Raises a transient
        ``DriverError`` when the host does not answer."""
        raise NotImplementedError

    # -- networks -----------------------------------------------------------
    def create_network(self, key: str, *, egress: bool = False, isolated: bool = False) -> dict[str, Any]:
        """Create (or find) the private network named by ``key``; return its state.

        Idempotent: a second call with the same key returns the same network.
        With ``egress=False`` instances on it reach each other only;
        ``isolated=True`` (without egress) not even each other. The lab host
        itself reaches them either way (terminals, ports).
        """
        raise NotImplementedError

    def remove_network(self, network: dict[str, Any]) -> None:
        """Remove a network; disconnects nothing (remove instances first). Idempotent."""
        raise NotImplementedError

    # -- instances ----------------------------------------------------------
    def create_instance(self, spec: InstanceSpec) -> Created:
        """Create and start an instance; return once it runs.

        On the network its hostname is an alias, so instances of one network
        reach each other by name. Raises ``DriverError(permanent=True)`` for an
        unknown image.
        """
        raise NotImplementedError

    def connect_instance(self, state: dict[str, Any], network: dict[str, Any], *, hostname: str) -> Created:
        """Join a (pooled) instance to a network under ``hostname``; return new state and ip.

        ``hostname`` becomes the instance's name on that network. The name the
        instance gives itself (``hostname`` inside, the shell prompt) stays the
        one it was created with: create pooled instances with the hostname they
        will most likely get (``node1``). Connecting twice is harmless.
        """
        raise NotImplementedError

    def remove_instance(self, state: dict[str, Any]) -> None:
        """Kill and remove the instance and its volumes. Idempotent."""
        raise NotImplementedError

    def inspect(self, state: dict[str, Any]) -> InstanceStatus:
        raise NotImplementedError

    def usable(self, state: dict[str, Any]) -> bool:
        """Whether the instance could be handed to a learner now: it runs and,
        for a nested-Docker one, its inner engine answers (as when
        ``create_instance`` returned). For instances that waited a while (the
        hot-start pool); never raises."""
        raise NotImplementedError

    def exec(self, state: dict[str, Any], command: str, *, timeout: float = 30.0) -> ExecResult:
        """Run ``sh -c command`` as root in the instance and wait for it.

        Past ``timeout`` seconds, returns exit code 124 with the output so far
        and kills the command with its process group. A command that exited
        but left a background child holding its output open (``server &``)
        gets its own exit code once the timeout passes; the child runs on.
        Raises ``NotFound`` if the instance is gone, ``NotRunning`` if it is
        not running.
        """
        raise NotImplementedError

    def put_file(self, state: dict[str, Any], path: str, data: bytes) -> None:
        """Write ``data`` to absolute ``path`` (root-owned, mode 0644), creating
        missing parent directories (0755) and leaving existing ones as they are."""
        raise NotImplementedError

    def get_file(self, state: dict[str, Any], path: str) -> bytes:
        """Read the regular file at absolute ``path`` (symbolic links followed).

        Raises ``NotFound`` if there is no such file, ``DriverError(permanent=True)``
        if it is not a regular file or exceeds ``file_size_limit``.
        """
        raise NotImplementedError

    # -- ports --------------------------------------------------------------
    def listening_ports(self, state: dict[str, Any]) -> list[int]:
        """The TCP ports something in the instance listens on at an address
        reachable from beside it (any address but loopback), sorted, each
        once: its own servers' and those that nested containers publish
        (Docker's ``docker-proxy`` listens in the instance). Raises
        ``NotFound`` if the instance is gone, ``NotRunning`` if it is not
        running. ``parse_listening`` reads Linux's ``/proc/net/tcp*``."""
        raise NotImplementedError

    # -- stats ---------------------------------------------------------------
    def stats(self, state: dict[str, Any]) -> InstanceStats:
        """CPU time and memory the instance used so far, cheaply (one
        engine call). Raises ``NotFound`` if the instance is gone,
        ``NotRunning`` if it does not run."""
        raise NotImplementedError

    # -- the terminal -------------------------------------------------------
    def attach(self, state: dict[str, Any], *, replay: bool = False) -> TerminalStream:
        """Attach to the instance's own TTY: input goes to its shell, output
        comes live. Many attachments to one instance share the TTY; closing
        one leaves the instance running. The stream ends (``recv`` gives
        ``b""``) when the instance stops or is removed, at once if it is not
        running. Raises ``NotFound`` if the instance is gone.

        With ``replay=True`` the stream first carries the recent output the
        host kept (what ``recent_output`` reads) and then the live output, the
        host switching from one to the other itself. On Docker this is best
        effort at the seam: an unterminated last line (usually the prompt) is
        not in the log yet, and a flood of output at the moment of attaching
        may lose or repeat a few lines there."""
        raise NotImplementedError

    def resize(self, state: dict[str, Any], *, cols: int, rows: int) -> None:
        """Set the TTY's size (a new TTY may be 0x0 until the first resize)."""
        raise NotImplementedError

    def recent_output(self, state: dict[str, Any], *, max_bytes: int) -> bytes:
        """The last ``max_bytes`` (at most) of the TTY's output, for replay;
        when cut, it starts at a line boundary rather than mid-sequence."""
        raise NotImplementedError

    # -- events -------------------------------------------------------------
    def events(self, *, since: float | None = None, until: float | None = None) -> EventStream:
        """The ``EngineEvent`` of this deployment's instances (no other
        deployment's, no other kind of object), from ``since`` (a past
        ``EngineEvent.at``: what the host still remembers from then, then
        live; None: from now on) until ``until`` (then the stream ends; None:
        until the connection ends). Raises a transient ``DriverError`` when
        the host does not answer. The host may keep no history across its own
        restart: after reconnecting, take a ``list_objects`` round too."""
        raise NotImplementedError

    # -- housekeeping -------------------------------------------------------
    def disk_usage(self) -> dict[str, int]:
        """Bytes each running instance of this deployment has written to its
        own file system (its writable layer, plus volumes of its own such as
        nested Docker's), by ``playground.instance`` id. For hosts with no
        disk quota: the caller ends instances over a limit. Instances whose
        ``Limits.disk_bytes`` the host enforces itself may be left out."""
        raise NotImplementedError

    def list_objects(self) -> list[LabelledObject]:
        """Every container, network and volume labelled with this deployment
        (containers with ``running`` set). One call per kind on the host."""
        raise NotImplementedError

    def remove_object(self, obj: LabelledObject) -> None:
        """Remove one listed object (forcefully). Idempotent. Refuses, with a
        permanent ``DriverError``, an object of another deployment."""
        raise NotImplementedError


_TCP_LISTEN = "0A"


def parse_listening(text: str) -> list[int]:
    """The ports in LISTEN state of Linux's ``/proc/net/tcp`` and
    ``/proc/net/tcp6`` (concatenated), but those bound to a loopback address,
    which nothing outside the instance can reach."""
    ports: set[int] = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[3] != _TCP_LISTEN or ":" not in fields[1]:
            continue
        address, _, port = fields[1].partition(":")
        try:
            if _is_loopback(address):
                continue
            ports.add(int(port, 16))
        except ValueError:
            continue
    return sorted(p for p in ports if p > 0)


def _is_loopback(address: str) -> bool:
    # The kernel writes each 32-bit word of the address in host order
    # (little-endian here): reverse every word to get network order.
    raw = bytes.fromhex(address)
    ordered = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    if len(ordered) == 4:
        return ipaddress.IPv4Address(ordered).is_loopback
    if len(ordered) == 16:
        ip = ipaddress.IPv6Address(ordered)
        return ip.is_loopback or bool(ip.ipv4_mapped and ip.ipv4_mapped.is_loopback)
    raise ValueError(f"not an address: {address!r}")


def load_driver(path: str, **kwargs: Any) -> Driver:
    """Import the driver class at dotted ``path`` and build it with ``kwargs``."""
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise ImportError(f"driver path {path!r} is not a dotted path")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise ImportError(f"{path!r} is not a sandboxes.base.Driver")  # noqa: TRY004 - settings name the driver: a bad path is an import problem
    return cls(**kwargs)
