"""In-memory drivers for unit tests of the web layer. Nothing runs on the host.

* ``FakeDriver`` keeps its lab host in a module-level registry keyed by
  ``url``, so every driver object built for one url in a process (one per
  thread, one per request...) sees the same instances, as with a real engine.
  ``exec`` answers through ``handle_exec`` (see there), the terminal echoes
  what is typed to every attachment.
* ``SlowDriver``: a ``FakeDriver`` whose ``create_instance`` takes ``delay``
  seconds (option or class attribute), to test provisioning states.
* ``BrokenDriver``: every call raises a transient "lab host unreachable".

Call ``reset()`` between tests. ``FakeDriver.stop_instance`` stands in for an
instance that stops by itself (exits, is OOM-killed);
``FakeDriver.restart_engine`` for an engine restart (open event streams end;
``keep=False``: every instance dies with it, unannounced).

    driver = FakeDriver(url="fake://host1", deployment="test", images=["shell"])
"""

from __future__ import annotations

import posixpath
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from .base import (
    LABEL_DEPLOYMENT,
    LABEL_INSTANCE,
    LABEL_KIND,
    LABEL_NETWORK,
    Created,
    Driver,
    DriverError,
    EngineEvent,
    EventKind,
    ExecResult,
    HostCapacity,
    InstanceSpec,
    InstanceStats,
    InstanceStatus,
    LabelledObject,
    NotFound,
    NotRunning,
    TerminalStream,
)

# Directories every fake instance has, besides the parents of its files.
_BASE_DIRECTORIES = frozenset(
    {"/", "/bin", "/dev", "/etc", "/home", "/proc", "/root", "/tmp", "/usr", "/var"}
)


@dataclass
class _Network:
    id: str
    name: str
    key: str
    index: int
    egress: bool
    isolated: bool
    labels: dict[str, str]


@dataclass
class _Instance:
    id: str
    name: str
    image: str
    hostname: str
    labels: dict[str, str]
    log_max_bytes: int
    network: str | None = None
    ip: str | None = None
    running: bool = True
    exit_code: int | None = None
    reason: str = ""
    size: tuple[int, int] = (0, 0)  # cols, rows: a new TTY is 0x0, as on Docker
    files: dict[str, bytes] = field(default_factory=dict)
    volumes: list[str] = field(default_factory=list)
    inner_engine_down: bool = False
    output: bytearray = field(default_factory=bytearray)
    terminals: list[_Terminal] = field(default_factory=list)
    listening: set[int] = field(default_factory=set)
    cpu_ns: int = 0
    memory_bytes: int = 4 << 20
    memory_limit: int = 512 << 20

    def directories(self) -> set[str]:
        found = set(_BASE_DIRECTORIES)
        for path in self.files:
            parent = posixpath.dirname(path)
            while parent not in found:
                found.add(parent)
                parent = posixpath.dirname(parent)
        return found

    def write_output(self, data: bytes) -> None:
        self.output += data
        excess = len(self.output) - self.log_max_bytes
        if excess > 0:
            del self.output[:excess]


class _Host:
    """One fake lab host: what an engine would hold."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.networks: dict[str, _Network] = {}  # by name
        self.instances: dict[str, _Instance] = {}  # by id
        self.volumes: dict[str, dict[str, str]] = {}  # name -> labels
        self.next_network = 0
        # What an engine's /events would tell: (deployment, event), in order.
        self.events: list[tuple[str, EngineEvent]] = []
        self.changed = threading.Condition(self.lock)
        self.streams: set[_EventStream] = set()
        self.streams_opened = 0
        # What capacity() answers; tests set another.
        self.capacity = HostCapacity(memory_bytes=64 * 1024**3, cpus=16.0)

    def emit(self, instance: _Instance, kind: EventKind, **fields: Any) -> None:
        event = EngineEvent(instance_id=instance.labels[LABEL_INSTANCE], kind=kind, at=time.time(), **fields)
        with self.changed:
            self.events.append((instance.labels[LABEL_DEPLOYMENT], event))
            self.changed.notify_all()

    def instance(self, state: dict[str, Any]) -> _Instance:
        found = self.instances.get(state.get("id", ""))
        if found is None:
            raise NotFound(f"no such instance: {state.get('name')}")
        return found

    def running(self, state: dict[str, Any]) -> _Instance:
        instance = self.instance(state)
        if not instance.running:
            raise NotRunning(f"instance {instance.name} is not running")
        return instance

    def ip_on(self, network_name: str) -> str:
        network = self.networks[network_name]
        taken = {i.ip for i in self.instances.values() if i.network == network_name}
        host = next(n for n in range(2, 255) if f"10.99.{network.index}.{n}" not in taken)
        return f"10.99.{network.index}.{host}"


_HOSTS: dict[str, _Host] = {}
_HOSTS_LOCK = threading.Lock()


def _host(url: str) -> _Host:
    with _HOSTS_LOCK:
        return _HOSTS.setdefault(url, _Host())


def reset() -> None:
    """Forget every fake lab host, closing their terminals."""
    with _HOSTS_LOCK:
        hosts = list(_HOSTS.values())
        _HOSTS.clear()
    for host in hosts:
        with host.lock:
            for instance in host.instances.values():
                _close_terminals(instance)


def _new_id() -> str:
    return secrets.token_hex(32)


class FakeDriver(Driver):
    """An in-memory lab host. Options: ``images`` (the image names it knows;
    default: any image), ``log_max_bytes`` is taken from each spec's limits."""

    def __init__(self, *, url: str, deployment: str, **options: object) -> None:
        super().__init__(url=url, deployment=deployment, **options)
        images = options.get("images")
        known = isinstance(images, (list, tuple, set, frozenset)) and images
        self.images: frozenset[str] | None = frozenset(cast("Iterable[str]", images)) if known else None
        self.host = _host(url)

    def _name(self, part: str) -> str:
        return f"pg-{self.deployment}-{part}"

    # -- exec: override to answer more commands ---------------------------------
    def handle_exec(self, hostname: str, command: str) -> tuple[int, bytes]:
        """The exit code and output of ``command`` on the instance ``hostname``.

        Understands ``echo ARGS`` (ARGS back, a newline added) and
        ``hostname``; anything else gives ``fake: COMMAND``. Always exit code 0.
        """
        text = command.strip()
        if text == "echo" or text.startswith("echo "):
            return 0, (text[5:] + "\n").encode()
        if text == "hostname":
            return 0, f"{hostname}\n".encode()
        return 0, f"fake: {command}\n".encode()

    def banner(self, hostname: str) -> bytes:
        """What a new instance's terminal shows before anyone types."""
        return f"root@{hostname}:/# ".encode()

    # -- the host ---------------------------------------------------------------
    def ping(self) -> None:
        return None

    def capacity(self) -> HostCapacity:
        return self.host.capacity

    # -- networks ---------------------------------------------------------------
    def create_network(self, key: str, *, egress: bool = False, isolated: bool = False) -> dict[str, Any]:
        if egress and isolated:
            raise DriverError("a network cannot both have egress and be isolated", permanent=True)
        name = self._name(key)
        with self.host.lock:
            network = self.host.networks.get(name)
            if network is None:
                self.host.next_network += 1
                network = _Network(
                    id=_new_id(),
                    name=name,
                    key=key,
                    index=self.host.next_network % 250,
                    egress=egress,
                    isolated=isolated,
                    labels={
                        LABEL_DEPLOYMENT: self.deployment,
                        LABEL_KIND: "network",
                        LABEL_NETWORK: key,
                    },
                )
                self.host.networks[name] = network
            elif network.egress != egress or network.isolated != isolated:
                raise DriverError(
                    f"network {name} exists with another egress policy", permanent=True
                )
        return {"id": network.id, "name": name, "key": key}

    def remove_network(self, network: dict[str, Any]) -> None:
        with self.host.lock:
            found = self.host.networks.get(network.get("name", ""))
            if found is None or found.id != network.get("id"):
                return
            if any(i.network == found.name for i in self.host.instances.values()):
                raise DriverError(f"network {found.name} still has instances on it")
            del self.host.networks[found.name]

    # -- instances --------------------------------------------------------------
    def create_instance(self, spec: InstanceSpec) -> Created:
        if self.images is not None and spec.image not in self.images:
            raise DriverError(f"image {spec.image!r} is not on the lab host", permanent=True)
        name = self._name(spec.instance_id)
        with self.host.lock:
            network = spec.network["name"] if spec.network else None
            if network is not None and network not in self.host.networks:
                raise DriverError(f"network {network} does not exist", permanent=True)
            volumes = []
            if spec.nested_docker:  # as on Docker: a labelled volume for /var/lib/docker
                volumes.append(f"{name}-docker")
                self.host.volumes.setdefault(volumes[0], {
                    LABEL_DEPLOYMENT: self.deployment,
                    LABEL_KIND: "volume",
                    LABEL_INSTANCE: spec.instance_id,
                })
            existing = next((i for i in self.host.instances.values() if i.name == name), None)
            if existing is not None:  # a retried call
                instance = existing
            else:
                instance = _Instance(
                    id=_new_id(),
                    name=name,
                    image=spec.image,
                    hostname=spec.hostname,
                    log_max_bytes=spec.limits.log_max_bytes,
                    memory_limit=spec.limits.memory_bytes,
                    labels={
                        LABEL_DEPLOYMENT: self.deployment,
                        LABEL_KIND: "instance",
                        LABEL_INSTANCE: spec.instance_id,
                    },
                    files={"/etc/hostname": f"{spec.hostname}\n".encode()},
                    volumes=volumes,
                )
                instance.write_output(self.banner(spec.hostname))
                if network is not None:
                    instance.network = network
                    instance.ip = self.host.ip_on(network)
                self.host.instances[instance.id] = instance
                self.host.emit(instance, "started")
        state = {"id": instance.id, "name": name, "network": network, "hostname": spec.hostname}
        if volumes:
            state["volumes"] = volumes
        return Created(state=state, ip=instance.ip)

    def connect_instance(self, state: dict[str, Any], network: dict[str, Any], *, hostname: str) -> Created:
        with self.host.lock:
            instance = self.host.instance(state)
            if network.get("name") not in self.host.networks:
                raise NotFound(f"no such network: {network.get('name')}")
            if instance.network != network["name"]:
                instance.network = network["name"]
                instance.ip = self.host.ip_on(network["name"])
            ip = instance.ip
        return Created(state={**state, "network": network["name"], "hostname": hostname}, ip=ip)

    def remove_instance(self, state: dict[str, Any]) -> None:
        with self.host.lock:
            instance = self.host.instances.pop(state.get("id", ""), None)
            if instance is not None:
                _close_terminals(instance)
                if instance.running:  # as on Docker: a forced removal kills it first
                    self.host.emit(instance, "died", exit_code=137)
                self.host.emit(instance, "destroyed")
            for volume in state.get("volumes") or ():
                self.host.volumes.pop(volume, None)

    def inspect(self, state: dict[str, Any]) -> InstanceStatus:
        with self.host.lock:
            instance = self.host.instances.get(state.get("id", ""))
            if instance is None:
                return InstanceStatus(state="missing", reason="no such container")
            if instance.running:
                return InstanceStatus(state="running", ip=instance.ip)
            return InstanceStatus(
                state="stopped", exit_code=instance.exit_code, reason=instance.reason
            )

    def usable(self, state: dict[str, Any]) -> bool:
        with self.host.lock:
            instance = self.host.instances.get(state.get("id", ""))
            return instance is not None and instance.running and not instance.inner_engine_down

    def stop_inner_engine(self, state: dict[str, Any]) -> None:
        """Test helper: a nested-Docker instance's inner engine stops (it runs on)."""
        with self.host.lock:
            self.host.instance(state).inner_engine_down = True

    def stop_instance(
        self, state: dict[str, Any], *, exit_code: int = 137, reason: str = "OOMKilled"
    ) -> None:
        """Test helper: the instance stops by itself; its terminals close."""
        with self.host.lock:
            instance = self.host.instance(state)
            instance.running = False
            instance.exit_code = exit_code
            instance.reason = reason
            _close_terminals(instance)
            oom = reason == "OOMKilled"
            if oom:
                self.host.emit(instance, "oom")
            self.host.emit(instance, "died", exit_code=exit_code, oom=oom)

    def restart_engine(self, *, keep: bool = True) -> None:
        """Test helper: the lab host's engine restarts. Open event streams
        end; with ``keep=False`` (no live restore) every instance stops, and
        the events of that are lost with the old engine, as on Docker."""
        with self.host.changed:
            for stream in list(self.host.streams):
                stream.close()
            if not keep:
                for instance in self.host.instances.values():
                    if instance.running:
                        instance.running, instance.exit_code, instance.reason = False, 143, "exited"
                        _close_terminals(instance)
            self.host.events.clear()

    def exec(self, state: dict[str, Any], command: str, *, timeout: float = 30.0) -> ExecResult:
        with self.host.lock:
            hostname = self.host.running(state).hostname
        exit_code, output = self.handle_exec(hostname, command)
        return ExecResult(exit_code=exit_code, output=output[: self.exec_output_limit])

    def put_file(self, state: dict[str, Any], path: str, data: bytes) -> None:
        path = _check_path(path)
        with self.host.lock:
            instance = self.host.instance(state)
            if path in instance.directories():
                raise DriverError(f"cannot write {path}: it is a directory", permanent=True)
            parent = posixpath.dirname(path)
            while parent != "/":
                if parent in instance.files:
                    raise DriverError(
                        f"cannot write {path}: {parent} is not a directory", permanent=True
                    )
                parent = posixpath.dirname(parent)
            instance.files[path] = bytes(data)

    def get_file(self, state: dict[str, Any], path: str) -> bytes:
        path = _check_path(path)
        with self.host.lock:
            instance = self.host.instance(state)
            if path in instance.directories():
                raise DriverError(f"{path} is a directory", permanent=True)
            data = instance.files.get(path)
        if data is None:
            raise NotFound(f"no such file: {path}")
        if len(data) > self.file_size_limit:
            raise DriverError(f"{path} is larger than {self.file_size_limit} bytes", permanent=True)
        return data

    # -- ports ------------------------------------------------------------------
    def listening_ports(self, state: dict[str, Any]) -> list[int]:
        with self.host.lock:
            return sorted(self.host.running(state).listening)

    def stats(self, state: dict[str, Any]) -> InstanceStats:
        with self.host.lock:
            instance = self.host.running(state)
            return InstanceStats(cpu_ns=instance.cpu_ns, memory_bytes=instance.memory_bytes,
                                 memory_limit_bytes=instance.memory_limit, at=self.clock())

    clock = staticmethod(time.time)
    """When ``stats`` says it sampled (tests set their own)."""

    def use(self, state: dict[str, Any], *, cpu_ns: int = 0, memory_bytes: int | None = None) -> None:
        """Stand-in for work in the instance: ``cpu_ns`` more CPU time used,
        and its memory in use now ``memory_bytes``."""
        with self.host.lock:
            instance = self.host.running(state)
            instance.cpu_ns += cpu_ns
            if memory_bytes is not None:
                instance.memory_bytes = memory_bytes

    def listen(self, state: dict[str, Any], *ports: int, stop: bool = False) -> None:
        """Stand-in for a server starting (or, with ``stop``, ending) in the instance."""
        with self.host.lock:
            listening = self.host.running(state).listening
            if stop:
                listening.difference_update(ports)
            else:
                listening.update(ports)

    # -- the terminal -----------------------------------------------------------
    def attach(self, state: dict[str, Any], *, replay: bool = False) -> TerminalStream:
        with self.host.lock:
            instance = self.host.instance(state)
            if not instance.running:  # as on Docker: a stream that ends at once
                client, far = socket.socketpair()
                far.close()
                return client
            # Taken under the host lock: no output falls between the two.
            terminal = _Terminal(
                self.host, instance, replay=bytes(instance.output) if replay else b""
            )
            instance.terminals.append(terminal)
        terminal.start()
        return terminal.client

    def resize(self, state: dict[str, Any], *, cols: int, rows: int) -> None:
        with self.host.lock:
            self.host.running(state).size = (cols, rows)

    def drop_terminals(self, state: dict[str, Any]) -> None:
        """Test helper: every attachment to the instance's TTY ends while the
        instance runs on (a relay letting its clients go, an engine restart)."""
        with self.host.lock:
            _close_terminals(self.host.running(state))

    def terminal_size(self, state: dict[str, Any]) -> tuple[int, int]:
        """Test helper: (cols, rows) of the instance's TTY."""
        with self.host.lock:
            return self.host.instance(state).size

    def recent_output(self, state: dict[str, Any], *, max_bytes: int) -> bytes:
        with self.host.lock:
            data = bytes(self.host.instance(state).output)
        if max_bytes <= 0:
            return b""
        if len(data) <= max_bytes:
            return data
        data = data[-max_bytes:]
        newline = data.find(b"\n")
        return data[newline + 1 :] if newline != -1 else data

    # -- housekeeping -----------------------------------------------------------
    def disk_usage(self) -> dict[str, int]:
        """The bytes of the files put into each running instance."""
        with self.host.lock:
            return {
                i.labels[LABEL_INSTANCE]: sum(len(data) for data in i.files.values())
                for i in self.host.instances.values()
                if i.running and i.labels[LABEL_DEPLOYMENT] == self.deployment
            }

    def events(self, *, since: float | None = None, until: float | None = None) -> _EventStream:
        return _EventStream(self.host, self.deployment, since=since, until=until)

    def list_objects(self) -> list[LabelledObject]:
        with self.host.lock:
            found = [
                LabelledObject("container", i.id, i.name, dict(i.labels), running=i.running)
                for i in self.host.instances.values()
                if i.labels[LABEL_DEPLOYMENT] == self.deployment
            ]
            found += [
                LabelledObject("network", n.id, n.name, dict(n.labels))
                for n in self.host.networks.values()
                if n.labels[LABEL_DEPLOYMENT] == self.deployment
            ]
            found += [
                LabelledObject("volume", name, name, dict(labels))
                for name, labels in self.host.volumes.items()
                if labels[LABEL_DEPLOYMENT] == self.deployment
            ]
        return found

    def remove_object(self, obj: LabelledObject) -> None:
        if obj.labels.get(LABEL_DEPLOYMENT) != self.deployment:
            raise DriverError(
                f"{obj.kind} {obj.name} belongs to another deployment", permanent=True
            )
        with self.host.lock:
            if obj.kind == "container":
                self.remove_instance({"id": obj.id})
            elif obj.kind == "network":
                for instance in self.host.instances.values():
                    if instance.network == obj.name:
                        instance.network = instance.ip = None
                self.remove_network({"id": obj.id, "name": obj.name})
            elif obj.kind == "volume":
                if any(obj.name in i.volumes for i in self.host.instances.values()):
                    # As on Docker: remove the container first.
                    raise DriverError(f"volume {obj.name} is in use")
                self.host.volumes.pop(obj.name, None)


class SlowDriver(FakeDriver):
    """A ``FakeDriver`` whose instances take ``delay`` seconds to start."""

    delay = 1.0

    def __init__(self, *, url: str, deployment: str, **options: object) -> None:
        super().__init__(url=url, deployment=deployment, **options)
        self.delay = float(options.get("delay", self.delay))  # type: ignore[arg-type]

    def create_instance(self, spec: InstanceSpec) -> Created:
        time.sleep(self.delay)
        return super().create_instance(spec)


class BrokenDriver(Driver):
    """A lab host that never answers: every call raises a transient error."""

    def _fail(self) -> DriverError:
        return DriverError(f"lab host unreachable: {self.url} (broken driver)", permanent=False)

    def ping(self) -> None:
        raise self._fail()

    def capacity(self) -> HostCapacity:
        raise self._fail()

    def create_network(self, key: str, *, egress: bool = False, isolated: bool = False) -> dict[str, Any]:
        raise self._fail()

    def remove_network(self, network: dict[str, Any]) -> None:
        raise self._fail()

    def create_instance(self, spec: InstanceSpec) -> Created:
        raise self._fail()

    def connect_instance(self, state: dict[str, Any], network: dict[str, Any], *, hostname: str) -> Created:
        raise self._fail()

    def remove_instance(self, state: dict[str, Any]) -> None:
        raise self._fail()

    def inspect(self, state: dict[str, Any]) -> InstanceStatus:
        raise self._fail()

    def usable(self, state: dict[str, Any]) -> bool:
        return False

    def exec(self, state: dict[str, Any], command: str, *, timeout: float = 30.0) -> ExecResult:
        raise self._fail()

    def put_file(self, state: dict[str, Any], path: str, data: bytes) -> None:
        raise self._fail()

    def get_file(self, state: dict[str, Any], path: str) -> bytes:
        raise self._fail()

    def listening_ports(self, state: dict[str, Any]) -> list[int]:
        raise self._fail()

    def stats(self, state: dict[str, Any]) -> InstanceStats:
        raise self._fail()

    def attach(self, state: dict[str, Any], *, replay: bool = False) -> TerminalStream:
        raise self._fail()

    def resize(self, state: dict[str, Any], *, cols: int, rows: int) -> None:
        raise self._fail()

    def recent_output(self, state: dict[str, Any], *, max_bytes: int) -> bytes:
        raise self._fail()

    def disk_usage(self) -> dict[str, int]:
        raise self._fail()

    def events(self, *, since: float | None = None, until: float | None = None) -> _EventStream:
        raise self._fail()

    def list_objects(self) -> list[LabelledObject]:
        raise self._fail()

    def remove_object(self, obj: LabelledObject) -> None:
        raise self._fail()


class _Terminal:
    """One attachment: a socketpair whose far end a thread pumps. What is sent
    on any attachment is echoed to all of them and kept for the replay."""

    def __init__(self, host: _Host, instance: _Instance, *, replay: bytes = b"") -> None:
        self.client, self._far = socket.socketpair()
        self._host = host
        self._instance = instance
        self._send_lock = threading.Lock()  # pumps of several peers deliver here
        self._replay = replay
        if replay:  # peers' output waits until the pump has sent the replay
            self._send_lock.acquire()
        self._thread = threading.Thread(
            target=self._pump, name=f"fake-tty-{instance.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def _pump(self) -> None:
        if self._replay:
            try:
                self._far.sendall(self._replay)
            except OSError:
                pass
            finally:
                self._replay = b""
                self._send_lock.release()
        try:
            while True:
                try:
                    data = self._far.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                with self._host.lock:
                    self._instance.write_output(data)
                    peers = list(self._instance.terminals)
                for peer in peers:
                    peer.deliver(data)
        finally:
            with self._host.lock:
                if self in self._instance.terminals:
                    self._instance.terminals.remove(self)
            self._far.close()

    def deliver(self, data: bytes) -> None:
        try:
            with self._send_lock:
                self._far.sendall(data)
        except OSError:
            pass  # that viewer is gone

    def hang_up(self) -> None:
        try:
            self._far.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _EventStream:
    """A fake host's events of one deployment, from ``since`` (or now)."""

    def __init__(self, host: _Host, deployment: str, *, since: float | None, until: float | None) -> None:
        self._host = host
        self._deployment = deployment
        self._until = until
        self._closed = False
        with host.changed:
            if since is None:
                self._next = len(host.events)
            else:
                self._next = next((n for n, (_, e) in enumerate(host.events) if e.at >= since), len(host.events))
            host.streams.add(self)
            host.streams_opened += 1

    def __iter__(self) -> Iterator[EngineEvent]:
        try:
            while True:
                with self._host.changed:
                    while not self._closed and self._next >= len(self._host.events):
                        if self._until is not None and time.time() >= self._until:
                            return
                        self._host.changed.wait(0.05)
                    if self._closed:
                        return
                    deployment, event = self._host.events[self._next]
                    self._next += 1
                if self._until is not None and event.at > self._until:
                    return
                if deployment == self._deployment:
                    yield event
        finally:
            self.close()

    def close(self) -> None:
        with self._host.changed:
            self._closed = True
            self._host.streams.discard(self)
            self._host.changed.notify_all()


def _close_terminals(instance: _Instance) -> None:
    for terminal in list(instance.terminals):
        terminal.hang_up()
    instance.terminals.clear()


def _check_path(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        raise DriverError(f"{path!r} is not an absolute path", permanent=True)
    normal = "/" + posixpath.normpath(path).lstrip("/")
    if normal == "/" or path.endswith("/"):
        raise DriverError(f"{path!r} does not name a file", permanent=True)
    return normal
