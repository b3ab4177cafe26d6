"""The Docker Engine driver: one lab host is one Docker Engine.

It talks to the engine with docker-py's low-level ``APIClient`` at a fixed API
version (1.41, Debian's engine 20.10), so no call pays for a version
negotiation, and keeps every operation to as few engine round trips as it can:

==================  ==========================================================
create_network      1 (2 when the network already exists)
create_instance     3: create (attached to its network), start, inspect (IP);
                    nested Docker: +1 volume, +3 exec waiting for the inner engine;
                    btrfs engine: +1 image inspect (its size), no volume;
                    +1 engine info a minute (its storage driver)
connect_instance    3: disconnect ``none``, connect, inspect
exec                3: exec create, exec start (hijacked stream), exec inspect
usable              1: inspect; nested Docker: 3 instead (an exec asking the inner engine)
put_file/get_file   1 (get: +1 per symbolic link followed)
attach              relay images: inspect + a TCP connection to the instance's
                    relay; others: attach (hijacked stream), inspect
resize              1
remove_*            1
events              1 long-lived GET /events (label-filtered by the engine);
                    nothing per event
list_objects        3: containers, networks, volumes
==================  ==========================================================

Each public method is built from small ``_steps`` that a subclass can override
(for instance ``_host_config`` to give an image more privileges).

Engine quirks this module works around (engine 20.10, API 1.41):

* An attachment's default detach keys (ctrl-p ctrl-q) swallow a lone ctrl-p
  (readline's "previous line") until the next key; 20.10 cannot turn them off,
  so ``attach`` asks for a sequence nobody types (``detach_keys``).
* ``ConsoleSize`` at create is ignored on Linux before API 1.42: a new TTY is
  0x0 until the first ``resize``.
* A network created without ``CheckDuplicate`` may share its name with another.
* A container on network mode ``none`` must leave ``none`` before it can join
  a network.
* The engine's attach path (containerd-shim, a FIFO, dockerd, HTTP) carries
  about 16 MB/s of terminal output here while a pseudo-terminal carries 40.
  Images labelled ``playground.relay=PORT`` run their main process under
  ``playground-relay`` (sandboxes/images/shell/relay/), which owns the
  terminal and serves it on the instance's address; ``attach`` reads it
  there (or, when that address cannot be reached, through ``docker exec
  playground-relay --connect``). ``resize`` still goes to the container's TTY:
  the relay copies its size onto the shell's terminal.
* ``StorageOpt.size`` works only on a btrfs engine here (overlay2 needs xfs
  project quotas, which this kernel lacks), and there it limits what the
  container's subvolume *refers to*: the image's own bytes count. The size
  asked for is therefore the disk limit plus the image's size. Volumes are
  outside it: on btrfs, nested Docker keeps /var/lib/docker in the
  writable layer (its overlay2 works on btrfs; on overlay2 it cannot stack).
* An ``internal`` bridge network still gives the host an address on the
  bridge: instances can open connections to services the lab host itself
  listens on (0.0.0.0). Block them on the host (scripts/engine.sh's INPUT
  chain for the engine's address pool and the ``pgbr*`` bridges this driver
  names), the driver cannot. Likewise where an egress (non-internal) network
  may go (its egress chain in ``DOCKER-USER``: no private, link-local or lab
  host address) and IPv6: the bridges have IPv6 link-local addresses even
  though the driver never enables IPv6, and an instance holding
  ``NET_ADMIN`` in its namespace (the nested-Docker kind) can turn it on.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import posixpath
import re
import secrets
import select
import socket
import ssl
import tarfile
import threading
import time
from base64 import b64decode
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import docker
import docker.errors
import docker.tls
import docker.types
import requests.exceptions
import urllib3.exceptions

from .base import (
    LABEL_DEPLOYMENT,
    LABEL_INSTANCE,
    LABEL_KIND,
    LABEL_NETWORK,
    Created,
    Driver,
    DriverError,
    EngineEvent,
    ExecResult,
    HostCapacity,
    InstanceSpec,
    InstanceStats,
    InstanceStatus,
    LabelledObject,
    NotFound,
    NotRunning,
    OutOfCapacity,
    TerminalStream,
    parse_listening,
)

if TYPE_CHECKING:

    class _APIClient(docker.APIClient):
        """What the driver calls of docker-py's ``APIClient`` beyond its
        public API (the raw HTTP helpers behind exec start, ``/_ping``, the
        archive and log endpoints), which types-docker leaves out; and
        ``create_container_from_config``, which it leaves untyped."""

        def _url(self, pathfmt: str, *args: str, versioned_api: bool = True) -> str: ...
        def _get(self, url: str, **kwargs: Any) -> requests.Response: ...
        def _post(self, url: str, **kwargs: Any) -> requests.Response: ...
        def _put(self, url: str, **kwargs: Any) -> requests.Response: ...
        def _post_json(self, url: str, data: Any, **kwargs: Any) -> requests.Response: ...
        def _raise_for_status(self, response: requests.Response) -> None: ...
        def _result(self, response: requests.Response, json: bool = False, binary: bool = False) -> Any: ...
        def _stream_helper(
            self, response: requests.Response, decode: bool = False
        ) -> Iterator[dict[str, Any]]: ...
        def create_container_from_config(
            self, config: dict[str, Any], name: str | None = None, platform: str | None = None
        ) -> dict[str, Any]: ...

else:
    _APIClient = docker.APIClient

log = logging.getLogger(__name__)

# Docker object names: [a-zA-Z0-9][a-zA-Z0-9_.-]+ (the engine's own rule).
_NAME_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

# Engine messages that mean "this host is full", not "this request is wrong".
_CAPACITY_MESSAGES = (
    "could not find an available, non-overlapping ipv4 address pool",
    "no available ipv4 addresses",
    "no space left on device",
    "cannot allocate memory",
)

# Go's os.FileMode type bits, as the archive endpoint reports them.
_MODE_DIR = 1 << 31
_MODE_SYMLINK = 1 << 27
_MODE_TYPE = _MODE_DIR | _MODE_SYMLINK | 1 << 26 | 1 << 25 | 1 << 24 | 1 << 21 | 1 << 19

_STDOUT = 1
_ICC_OPTION = "com.docker.network.bridge.enable_icc"
# The terminal relay (sandboxes/images/shell/relay/): the image label naming
# its port, the environment variable carrying its key, where it is installed.
LABEL_RELAY = "playground.relay"
RELAY_TOKEN = "PLAYGROUND_RELAY_TOKEN"
RELAY_PATH = "/usr/local/sbin/playground-relay"
RELAY_READ_LIMIT = 1024 * 1024
"""Most bytes read from a relay's one-shot answer (socket tables, kept output)."""
# On instances whose disk limit the engine enforces (a btrfs engine): the
# limit in bytes. The disk watchdog need not measure them.
LABEL_DISK_QUOTA = "playground.disk-quota"
_EXIT_TIMEOUT = 124
# What a network (tcp://, https://) lab host needs, all three: file paths.
_TLS_OPTIONS = ("tls_ca_cert", "tls_client_cert", "tls_client_key")

# The docker kind's seccomp profile (docs/security.md, "The docker kind").
NESTED_DOCKER_SECCOMP = Path(__file__).parent / "seccomp" / "nested-docker.json"


@cache
def nested_docker_seccomp_profile() -> str:
    """The profile as the engine takes it in ``SecurityOpt`` (its JSON text,
    compact: every inspect of the container carries it)."""
    return json.dumps(json.loads(NESTED_DOCKER_SECCOMP.read_text()), separators=(",", ":"))


class DockerDriver(Driver):
    """A lab host reached through the Docker Engine API.

    Options (keyword arguments after ``url`` and ``deployment``, all optional):
    ``timeout`` (seconds per engine call, default 30), ``ping_timeout``
    (default 2), ``pool_size`` (HTTP connections kept open, default 32),
    ``tls_ca_cert``, ``tls_client_cert``, ``tls_client_key`` (file paths:
    required, all three, for a host reached over the network, ``tcp://`` or
    ``https://``, which is spoken to over mutual TLS only; ignored for a
    ``unix://`` socket), ``inner_engine_timeout`` (seconds a
    nested-Docker instance's own engine may take to answer, default 30),
    ``relay_timeout`` (seconds to reach an instance's terminal relay before
    going through the engine instead, default 1).
    """

    api_version = "1.41"
    timeout = 30.0
    ping_timeout = 2.0
    ports_timeout = 5.0
    pool_size = 32
    name_prefix = "pg"
    bridge_prefix = "pgbr"
    # The first key is held back by the engine until the next one arrives, so
    # it must be one learners practically never type alone (0x1e, ctrl-^).
    detach_keys = "ctrl-^,ctrl-@,ctrl-^,ctrl-@"
    relay_timeout = 1.0

    def __init__(self, *, url: str, deployment: str, **options: object) -> None:
        super().__init__(url=url, deployment=deployment, **options)
        if not _NAME_PART.match(deployment):
            raise DriverError(
                f"deployment {deployment!r} must be letters, digits, '_', '.' or '-'",
                permanent=True,
            )
        self.timeout = _number(options, "timeout", self.timeout)
        self.ping_timeout = _number(options, "ping_timeout", self.ping_timeout)
        self.pool_size = int(_number(options, "pool_size", self.pool_size))
        self.inner_engine_timeout = _number(
            options, "inner_engine_timeout", self.inner_engine_timeout
        )
        self.relay_timeout = _number(options, "relay_timeout", self.relay_timeout)
        try:
            self.api = self._make_client()
        except docker.errors.DockerException as exc:
            raise DriverError(f"bad lab host url {url!r}: {exc}", permanent=True) from exc

    # -- steps: the client and names ------------------------------------------
    def _make_client(self) -> _APIClient:
        client = _APIClient(
            base_url=self.url,
            version=self.api_version,
            timeout=self.timeout,  # type: ignore[arg-type]  # requests takes a float; types-docker says int
            max_pool_size=self.pool_size,
            tls=self._tls(),
        )
        # requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override the
        # client's CA (docker/docker-py#2433): the engine would be verified
        # against the system's public CAs instead of ours. Nor may a proxy
        # of the environment stand between us and an engine.
        client.trust_env = False
        return client

    def _tls(self) -> docker.tls.TLSConfig | bool:
        """Mutual TLS for an engine reached over the network: its certificate
        verified against ``tls_ca_cert`` (and its address against the
        certificate's names), ours shown to it. Whoever speaks to an engine's
        API is root on its host, so such an engine is never spoken to in plain
        HTTP, nor without verifying it, nor without a certificate of our own."""
        scheme = self.url.partition("://")[0].lower() if "://" in self.url else "tcp"
        if scheme not in ("tcp", "https", "http"):
            return False  # unix:// (the socket file's permissions guard it), ssh://
        if scheme == "http":
            raise DriverError(
                f"lab host {self.url}: plain HTTP is refused; use tcp:// or https:// with mutual TLS",
                permanent=True,
            )
        paths = {name: self.options.get(name) for name in _TLS_OPTIONS}
        missing = [name for name, path in paths.items() if not path]
        if missing:
            raise DriverError(
                f"lab host {self.url} is reached over the network, which needs mutual TLS: "
                f"{', '.join(missing)} not given",
                permanent=True,
            )
        return docker.tls.TLSConfig(
            client_cert=(str(paths["tls_client_cert"]), str(paths["tls_client_key"])),
            ca_cert=str(paths["tls_ca_cert"]),
            verify=True,
        )

    def container_name(self, instance_id: str) -> str:
        return self._name(instance_id)

    def network_name(self, key: str) -> str:
        return self._name(key)

    def _name(self, part: str) -> str:
        if not _NAME_PART.match(part):
            raise DriverError(
                f"{part!r} cannot name an engine object (letters, digits, '_', '.' or '-')",
                permanent=True,
            )
        return f"{self.name_prefix}-{self.deployment}-{part}"

    # -- the host ---------------------------------------------------------------
    def ping(self) -> None:
        with self._engine_errors("ping"):
            response = self.api._get(self.api._url("/_ping"), timeout=self.ping_timeout)
            self.api._raise_for_status(response)

    # The engine's totals (MemTotal, NCPU) change only with the machine: read
    # again after this long, not every health round (the engine's /info costs
    # it several milliseconds of CPU; the health check runs every few seconds).
    totals_ttl = 300.0
    _totals: tuple[float, int, float] | None = None  # (read at, memory, cpus)

    def capacity(self) -> HostCapacity:
        totals = self._totals
        if totals is None or time.monotonic() - totals[0] > self.totals_ttl:
            with self._engine_errors("read the host's capacity"):
                info = self.api.info()
            totals = self._totals = (time.monotonic(), int(info.get("MemTotal") or 0), float(info.get("NCPU") or 0))
        return HostCapacity(
            memory_bytes=totals[1],
            cpus=totals[2],
            memory_available_bytes=self._memory_available(),
        )

    def _memory_available(self) -> int | None:
        """The host's MemAvailable: a unix socket's engine runs on this very
        machine, whose /proc/meminfo tells; a remote one's is read in one of
        this deployment's running instances (a container's /proc/meminfo is
        its host's), None while it runs none (an empty host has its memory)."""
        if self.url.startswith("unix://"):
            try:
                return parse_meminfo(Path("/proc/meminfo").read_text())
            except OSError:
                return None
        filters = {"label": [f"{LABEL_DEPLOYMENT}={self.deployment}", f"{LABEL_KIND}=instance"],
                   "status": ["running"]}
        with self._engine_errors("list running instances"):
            running = self.api.containers(filters=filters, limit=1)
        if not running:
            return None
        try:
            result = self.exec({"id": running[0]["Id"], "name": "capacity"}, "cat /proc/meminfo", timeout=5.0)
        except DriverError:
            return None  # it stopped meanwhile: known again next round
        return parse_meminfo(result.output.decode(errors="replace")) if result.exit_code == 0 else None

    # -- networks ---------------------------------------------------------------
    def create_network(self, key: str, *, egress: bool = False, isolated: bool = False) -> dict[str, Any]:
        if egress and isolated:
            raise DriverError("a network cannot both have egress and be isolated", permanent=True)
        name = self.network_name(key)
        labels = {LABEL_DEPLOYMENT: self.deployment, LABEL_KIND: "network", LABEL_NETWORK: key}
        options = {"com.docker.network.bridge.name": self._bridge_name(name)}
        if isolated:  # no traffic between the bridge's containers
            options[_ICC_OPTION] = "false"
        with self._engine_errors(f"create network {name}"):
            try:
                created = self.api.create_network(
                    name,
                    driver="bridge",
                    internal=not egress,
                    attachable=True,
                    check_duplicate=True,
                    labels=labels,
                    options=options,
                )
                network_id = created["Id"]
            except docker.errors.APIError as exc:
                if exc.status_code != 409:
                    raise
                network_id = self._adopt_network(name, labels, egress=egress, isolated=isolated)
        return {"id": network_id, "name": name, "key": key}

    def _bridge_name(self, network_name: str) -> str:
        """The host interface of a session network: ``pgbr`` and a digest (15
        characters, Linux's limit), so the lab host's firewall can match every
        sandbox bridge by name (``-i pgbr+``), spoofed source addresses too."""
        return self.bridge_prefix + hashlib.sha256(network_name.encode()).hexdigest()[:11]

    def _adopt_network(self, name: str, labels: dict[str, str], *, egress: bool, isolated: bool) -> str:
        """The id of the existing network ``name`` if it is ours and alike."""
        info = self.api.inspect_network(name)
        theirs = info.get("Labels") or {}
        if any(theirs.get(k) != v for k, v in labels.items()):
            raise DriverError(f"network {name} exists but is not this deployment's", permanent=True)
        theirs_isolated = (info.get("Options") or {}).get(_ICC_OPTION) == "false"
        if bool(info.get("Internal")) == egress or theirs_isolated != isolated:
            raise DriverError(f"network {name} exists with another egress policy", permanent=True)
        return cast(str, info["Id"])

    def remove_network(self, network: dict[str, Any]) -> None:
        with self._engine_errors(f"remove network {network.get('name')}"):
            try:
                self.api.remove_network(network["id"])
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if exc.status_code in (403, 409):  # "has active endpoints"
                    name = network.get("name")
                    raise DriverError(
                        f"network {name} still has instances on it: {exc.explanation}"
                    ) from exc
                raise

    # -- instances --------------------------------------------------------------
    def create_instance(self, spec: InstanceSpec) -> Created:
        name = self.container_name(spec.instance_id)
        with self._engine_errors(f"create instance {name}"):
            volumes = self._create_volumes(name, spec)
            try:
                container_id = self._create_container(name, spec)
            except BaseException:
                self._discard_volumes(volumes)
                raise
            try:
                self._start_container(container_id)
                info = self.api.inspect_container(container_id)
                self._check_started(name, info)
                if spec.nested_docker:
                    self._wait_for_inner_engine(name, container_id)
            except BaseException:
                self._discard(container_id)
                self._discard_volumes(volumes)
                raise
        state = self._instance_state(info, spec.network, spec.hostname)
        if volumes:
            state["volumes"] = volumes
        if spec.nested_docker:
            state["nested_docker"] = True
        return Created(state=state, ip=self._ip(info, state))

    def _create_container(self, name: str, spec: InstanceSpec) -> str:
        """Create the container (or find the one an earlier attempt made); its id."""
        labels = self._instance_labels(spec)
        network_name = spec.network["name"] if spec.network else None
        networking = None
        if network_name:
            networking = self.api.create_networking_config(
                # docker-py takes {network: endpoint}; types-docker says one endpoint
                {network_name: self.api.create_endpoint_config(aliases=[spec.hostname])}  # type: ignore[arg-type]
            )
        config = self.api.create_container_config(
            spec.image,
            None,  # type: ignore[arg-type]  # no command: the image's own (types-docker wants one)
            hostname=spec.hostname,
            tty=True,
            stdin_open=True,
            # The relay's key (images without a relay ignore it): what lets
            # the web tier, and nothing else on the network, use the terminal.
            environment={"TERM": "xterm-256color", **spec.env, RELAY_TOKEN: secrets.token_urlsafe(24)},
            labels=labels,
            host_config=self._host_config(spec),  # type: ignore[arg-type]  # a HostConfig is a dict
            networking_config=networking,
        )
        # docker-py sets StdinOnce with stdin_open: the engine would then close
        # the shell's stdin when the first attachment ends, and the shell exit.
        config["StdinOnce"] = False
        try:
            created = self.api.create_container_from_config(config, name)
        except docker.errors.ImageNotFound as exc:
            raise DriverError(
                f"image {spec.image!r} is not on the lab host", permanent=True
            ) from exc
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
            # A retry after a lost answer: the container is ours already.
            return self._adopt_container(name, labels)
        return cast(str, created["Id"])

    def _instance_labels(self, spec: InstanceSpec) -> dict[str, str]:
        labels = {
            LABEL_DEPLOYMENT: self.deployment,
            LABEL_KIND: "instance",
            LABEL_INSTANCE: spec.instance_id,
        }
        if self._enforces_disk_limit(spec):
            # What disk_usage() needs no longer measure (the engine enforces it).
            labels[LABEL_DISK_QUOTA] = str(spec.limits.disk_bytes)
        return labels

    def _host_config(self, spec: InstanceSpec) -> dict[str, Any]:
        """Limits and confinement; override to grant an image more (nested Docker)."""
        if spec.nested_docker:
            return self._nested_docker_host_config(spec)
        limits = spec.limits
        return self.api.create_host_config(
            init=True,
            network_mode=spec.network["name"] if spec.network else "none",
            mem_limit=limits.memory_bytes,
            memswap_limit=limits.memory_bytes,  # equal: no swap
            nano_cpus=int(limits.cpus * 1e9),
            pids_limit=limits.pids,
            log_config=self._log_config(limits.log_max_bytes),  # type: ignore[arg-type]  # docker-py takes a dict
            storage_opt=self._storage_opt(spec),
            # Every capability goes but the few a learner's shell uses. The
            # engine's default seccomp profile, AppArmor profile and masked
            # /proc paths stay on: nothing here may pass "unconfined".
            cap_drop=["ALL"],
            cap_add=list(limits.capabilities),
            security_opt=["no-new-privileges"],
        )

    # -- steps: the nested-Docker profile (InstanceSpec.nested_docker) --------------
    # Kept apart from the default profile above: what an engine inside the
    # instance needs (docs/security.md, "The `docker` kind") and nothing for the shell.
    inner_engine_timeout = 30.0
    inner_engine_volume_path = "/var/lib/docker"

    def _nested_docker_host_config(self, spec: InstanceSpec) -> dict[str, Any]:
        """Every capability of the instance's user namespace but SYS_RESOURCE
        (the kernel grants it to no container here), no AppArmor, a seccomp
        profile of its own (``sandboxes/seccomp/nested-docker.json``: what
        the inner engine needs, but no kernel keys, modules or kexec) and the
        engine's masked paths, /proc/sys writable: the inner engine mounts
        and builds namespaces. Never ``privileged``. The user namespace of
        the remapped lab-host engine is what confines it
        (``_require_userns_remap``)."""
        self._require_userns_remap()
        limits = spec.limits
        config = self.api.create_host_config(
            init=True,
            network_mode=spec.network["name"] if spec.network else "none",
            mem_limit=limits.memory_bytes,
            memswap_limit=limits.memory_bytes,  # equal: no swap
            nano_cpus=int(limits.cpus * 1e9),
            pids_limit=limits.pids,  # nested containers count too
            log_config=self._log_config(limits.log_max_bytes),  # type: ignore[arg-type]  # docker-py takes a dict
            cap_add=["ALL"],
            cap_drop=["SYS_RESOURCE"],
            # No no-new-privileges: it would be inherited by every nested
            # container (setuid su, sudo and file capabilities in learners'
            # images would fail), and root here holds all its namespace
            # allows already. The seccomp profile is the JSON itself (the
            # engine takes its content, as the CLI sends it).
            security_opt=[f"seccomp={nested_docker_seccomp_profile()}", "apparmor=unconfined"],
            mounts=self._inner_engine_mounts(spec),
            storage_opt=self._storage_opt(spec),
        )
        # The engine's masked paths stay (no MaskedPaths: its defaults, such
        # as /proc/keys and /proc/kcore): the inner runtime still mounts a new
        # /proc for its containers, in the instance's own user namespace.
        # /proc/sys alone must be writable, for the inner engine's and
        # runtime's network sysctls (ip_forward, ip_unprivileged_port_start);
        # the host's own sysctls there stay the host root's (permission denied).
        config["ReadonlyPaths"] = list(self.nested_docker_readonly_paths)
        return config

    # The engine's default read-only paths but /proc/sys (docs/security.md).
    nested_docker_readonly_paths = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sysrq-trigger")

    # -- steps: the hard disk limit (Limits.disk_bytes) -------------------------
    # On a btrfs engine (scripts/engine.sh's default) `StorageOpt.size` is a
    # btrfs quota on the container's subvolume: past it every write, of data
    # or of metadata (new files), fails with EDQUOT. Other storage drivers
    # here (overlay2 on ext4) have no quota: the watchdog is the limit there.
    # How long the engine's storage driver is trusted: it changes only when
    # the engine is restarted on another data root.
    storage_check_seconds = 60.0
    _storage_driver = ""
    _storage_checked_at = float("-inf")

    def _hard_disk_limits(self) -> bool:
        """Whether this engine enforces a size per container (btrfs)."""
        now = time.monotonic()
        if now - self._storage_checked_at >= self.storage_check_seconds:
            self._storage_driver = str(self.api.info().get("Driver") or "")
            self._storage_checked_at = now
        return self._storage_driver == "btrfs"

    def _enforces_disk_limit(self, spec: InstanceSpec) -> bool:
        return spec.limits.disk_bytes is not None and self._hard_disk_limits()

    def _storage_opt(self, spec: InstanceSpec) -> dict[str, str] | None:
        """The container's size on a btrfs engine: its disk limit. With the
        simple quotas scripts/engine.sh turns on, an extent counts against
        the subvolume that wrote it, so the image's files (its snapshot's
        origin) do not: the learner may write the limit, never more, and the
        watchdog, counting file bytes, has nothing to find on such a host."""
        if not self._enforces_disk_limit(spec):
            return None
        return {"size": str(int(spec.limits.disk_bytes or 0))}

    _userns_checked = False

    def _require_userns_remap(self) -> None:
        """Refuse nested Docker on an engine that does not remap user
        namespaces: there, those capabilities would be the host's own."""
        if self._userns_checked:
            return
        options = self.api.info().get("SecurityOptions") or []
        if not any(str(o).startswith("name=userns") for o in options):
            raise DriverError(
                f"the lab host {self.url} does not remap user namespaces "
                "(dockerd --userns-remap): it cannot run Docker inside instances safely",
                permanent=True,
            )
        self._userns_checked = True

    def _inner_engine_volume(self, container_name: str) -> str:
        return f"{container_name}-docker"

    def _inner_engine_in_volume(self, spec: InstanceSpec) -> bool:
        """Whether the inner engine's data (/var/lib/docker) is a named volume.
        On an overlay2 lab host it must be: its overlay2 cannot stack on the
        container's own overlay root. On a btrfs lab host it stays in the
        container's writable layer (the inner overlay2 works on btrfs), so
        the instance's disk limit (``_storage_opt``) covers it: volumes are
        outside any container's quota."""
        return spec.nested_docker and not self._hard_disk_limits()

    def _inner_engine_mounts(self, spec: InstanceSpec) -> list[docker.types.Mount]:
        if not self._inner_engine_in_volume(spec):
            return []
        return [
            docker.types.Mount(
                target=self.inner_engine_volume_path,
                source=self._inner_engine_volume(self.container_name(spec.instance_id)),
                type="volume",
            )
        ]

    def _create_volumes(self, container_name: str, spec: InstanceSpec) -> list[str]:
        """The instance's named volumes (labelled like it); creating one that
        exists (a retried call) finds it."""
        if not spec.nested_docker:
            return []
        self._require_userns_remap()  # before anything is made
        if not self._inner_engine_in_volume(spec):
            return []
        name = self._inner_engine_volume(container_name)
        labels = {
            LABEL_DEPLOYMENT: self.deployment,
            LABEL_KIND: "volume",
            LABEL_INSTANCE: spec.instance_id,
        }
        self.api.create_volume(name=name, driver="local", labels=labels)
        return [name]

    def _discard_volumes(self, volumes: list[str]) -> None:
        """Best-effort removal of the volumes of an instance that failed to start."""
        for volume in volumes:
            try:
                self.api.remove_volume(volume, force=True)
            except Exception:  # noqa: BLE001, S110 - the original error matters more
                pass

    def _remove_volume(self, volume: str) -> None:
        try:
            self.api.remove_volume(volume, force=True)
        except docker.errors.NotFound:
            pass

    def _wait_for_inner_engine(self, name: str, container_id: str) -> None:
        """Return once the engine inside answers (the image's main process
        starts it), so a running instance is a usable one."""
        state = {"id": container_id, "name": name}
        result = self.exec(state, _INNER_ENGINE_WAIT.format(seconds=int(self.inner_engine_timeout)),
                           timeout=self.inner_engine_timeout + 5)
        if result.exit_code != 0:
            log = self.exec(state, "tail -n 5 /var/log/dockerd.log 2>&1", timeout=5)
            raise DriverError(
                f"the Docker engine inside instance {name} did not answer within "
                f"{self.inner_engine_timeout:.0f}s: "
                + log.output.decode("utf-8", "replace").strip()[-500:],
                permanent=False,
            )

    def _log_config(self, max_bytes: int) -> dict[str, Any]:
        """Two files of half the cap each: the disk use stays within the cap and,
        unlike one file (emptied when it rotates), the replay always has at
        least half of it."""
        half = max(max_bytes // 2, 64 * 1024)
        return {"type": "json-file", "config": {"max-size": str(half), "max-file": "2"}}

    def _adopt_container(self, name: str, labels: dict[str, str]) -> str:
        info = self.api.inspect_container(name)
        theirs = info["Config"].get("Labels") or {}
        if any(theirs.get(k) != v for k, v in labels.items()):
            raise DriverError(f"container {name} exists but is not this instance", permanent=True)
        return cast(str, info["Id"])

    def _start_container(self, container_id: str) -> None:
        self.api.start(container_id)  # starting a running container is a no-op

    def _check_started(self, name: str, info: dict[str, Any]) -> None:
        state = info["State"]
        if not state.get("Running"):
            error = f", {state['Error']}" if state.get("Error") else ""
            raise DriverError(
                f"instance {name} stopped right after it started "
                f"(exit code {state.get('ExitCode')}{error})",
                permanent=True,
            )

    def _discard(self, container_id: str) -> None:
        """Best-effort removal of a container that failed to start."""
        try:
            self.api.remove_container(container_id, force=True, v=True)
        except Exception:  # noqa: BLE001, S110 - the original error matters more
            pass

    def _instance_state(self, info: dict[str, Any], network: dict[str, Any] | None, hostname: str) -> dict[str, Any]:
        state = {
            "id": info["Id"],
            "name": info["Name"].lstrip("/"),
            "network": network["name"] if network else None,
            "hostname": hostname,
        }
        relay = _relay_of(info)
        if relay:
            state["relay"] = relay[0]  # its port: not one of the learner's
        return state

    @staticmethod
    def _ip(info: dict[str, Any], state: dict[str, Any]) -> str | None:
        networks = info.get("NetworkSettings", {}).get("Networks") or {}
        endpoint = networks.get(state.get("network") or "")
        return (endpoint or {}).get("IPAddress") or None

    def connect_instance(self, state: dict[str, Any], network: dict[str, Any], *, hostname: str) -> Created:
        container_id = state["id"]
        with self._engine_errors(f"connect instance {state.get('name')}"):
            if state.get("network") is None:
                self._leave_network(container_id, "none")
            try:
                self.api.connect_container_to_network(
                    container_id, network["id"], aliases=[hostname]
                )
            except docker.errors.APIError as exc:
                # Connected already (a retried call) is what we wanted.
                if exc.status_code == 404 or "already exists" not in str(exc.explanation):
                    raise
            info = self.api.inspect_container(container_id)
        new_state = {**state, "network": network["name"], "hostname": hostname}
        return Created(state=new_state, ip=self._ip(info, new_state))

    def _leave_network(self, container_id: str, network: str) -> None:
        try:
            self.api.disconnect_container_from_network(container_id, network)
        except docker.errors.APIError as exc:
            if "is not connected" not in str(exc.explanation):
                raise

    def remove_instance(self, state: dict[str, Any]) -> None:
        with self._engine_errors(f"remove instance {state.get('name')}"):
            self._remove_container(state["id"])
            for volume in state.get("volumes") or ():
                self._remove_volume(volume)

    def _remove_container(self, container_id: str) -> None:
        try:
            self.api.remove_container(container_id, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409 or "already in progress" not in str(exc.explanation):
                raise
            # Another caller (the watcher, a second teardown) is removing it:
            # gone before this returns too, as the caller's contract says.
            self._wait_removed(container_id)

    def _wait_removed(self, container_id: str) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                self.api.inspect_container(container_id)
            except docker.errors.NotFound:
                return
            time.sleep(0.1)

    def inspect(self, state: dict[str, Any]) -> InstanceStatus:
        with self._engine_errors(f"inspect instance {state.get('name')}"):
            try:
                info = self.api.inspect_container(state["id"])
            except docker.errors.NotFound:
                return InstanceStatus(state="missing", reason="no such container")
        engine_state = info["State"]
        if engine_state.get("Status") == "removing":
            # A forced removal kills first: between its ``die`` and its
            # ``destroy`` the container is already as good as gone.
            return InstanceStatus(state="missing", reason="being removed")
        if engine_state.get("Running") and not engine_state.get("Paused"):
            return InstanceStatus(state="running", ip=self._ip(info, state))
        if engine_state.get("OOMKilled"):
            reason = "OOMKilled"
        else:
            reason = engine_state.get("Error") or engine_state.get("Status") or "exited"
        return InstanceStatus(
            state="stopped", exit_code=engine_state.get("ExitCode"), reason=reason
        )

    # -- exec -------------------------------------------------------------------
    def usable(self, state: dict[str, Any]) -> bool:
        try:
            if state.get("nested_docker"):  # an exec needs a running instance: it asks both
                return self.exec(state, _INNER_ENGINE_WAIT.format(seconds=2), timeout=10).exit_code == 0
            return self.inspect(state).state == "running"
        except DriverError:
            return False

    def exec(self, state: dict[str, Any], command: str, *, timeout: float = 30.0) -> ExecResult:
        name = state.get("name")
        deadline = time.monotonic() + timeout
        with self._engine_errors(f"exec in instance {name}"):
            exec_id = self._exec_create(state["id"], command)
            stream = self._hijack(self._exec_start(exec_id))
            output = _ExecOutput(self.exec_output_limit)
            try:
                finished = self._read_exec(stream, output, deadline)
            finally:
                stream.close()
            info = self._exec_result(exec_id, wait=finished)
            if info.get("Running"):
                self._kill_exec(state["id"], output.pid)
                return ExecResult(exit_code=_EXIT_TIMEOUT, output=bytes(output.data))
        exit_code = info.get("ExitCode")
        return ExecResult(
            exit_code=_EXIT_TIMEOUT if exit_code is None else exit_code,
            output=bytes(output.data),
        )

    def _exec_argv(self, command: str) -> list[str]:
        """``sh -c command``, first printing its pid (a process group leader)
        so that a command past its timeout can be killed with its children."""
        return ["sh", "-c", 'echo $$; exec sh -c "$1"', "sh", command]

    def _exec_create(self, container_id: str, command: str) -> str:
        try:
            created = self.api.exec_create(
                container_id, self._exec_argv(command), stdout=True, stderr=True, user="0"
            )
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                raise NotRunning(f"instance is not running: {exc.explanation}") from exc
            raise
        return cast(str, created["Id"])

    def _exec_start(self, exec_id: str) -> requests.Response:
        return self.api._post_json(
            self.api._url("/exec/{0}/start", exec_id),
            data={"Tty": False, "Detach": False},
            headers={"Connection": "Upgrade", "Upgrade": "tcp"},
            stream=True,
        )

    def _hijack(self, response: requests.Response) -> _Hijacked:
        try:
            self.api._raise_for_status(response)
        except BaseException:
            response.close()
            raise
        return _Hijacked(response)

    def _read_exec(self, stream: _Hijacked, output: _ExecOutput, deadline: float) -> bool:
        """Feed the multiplexed stream to ``output``; True at its end, False at the deadline."""
        output.feed(stream.take_pending())
        poller = select.poll()  # not select(): descriptors may exceed 1024
        poller.register(stream.fileno(), select.POLLIN)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if not stream.has_buffered() and not poller.poll(remaining * 1000):
                return False
            chunk = stream.recv_nowait(65536)
            if chunk is None:
                continue
            if not chunk:
                return True
            output.feed(chunk)

    def _exec_result(self, exec_id: str, *, wait: bool) -> dict[str, Any]:
        """``exec_inspect``; after the stream ended, wait briefly for the exit code
        (the engine records it just after closing the stream)."""
        info = self.api.exec_inspect(exec_id)
        tries = 50 if wait else 0
        while info.get("Running") and tries:
            time.sleep(0.01)
            tries -= 1
            info = self.api.exec_inspect(exec_id)
        return info

    def _kill_exec(self, container_id: str, pid: int | None) -> None:
        """Kill a command past its timeout, with its children (best effort)."""
        if not pid:
            return
        try:
            self._detached(container_id, f"kill -9 -{pid} 2>/dev/null || kill -9 {pid}")
        except Exception:  # noqa: BLE001, S110 - the timeout is the answer; a survivor is bounded by limits
            pass

    def _detached(self, container_id: str, script: str) -> None:
        """Start a short shell command as root in the container, not waiting for it."""
        created = self.api.exec_create(container_id, ["sh", "-c", script], user="0")
        self.api.exec_start(created["Id"], detach=True)

    # -- files ------------------------------------------------------------------
    def put_file(self, state: dict[str, Any], path: str, data: bytes) -> None:
        path = _check_path(path)
        with self._engine_errors(f"write {path} in instance {state.get('name')}"):
            response = self.api._put(
                self.api._url("/containers/{0}/archive", state["id"]),
                # Without it the engine replaces a directory at ``path`` (and
                # everything in it) by the file. docker-py never sets it.
                params={"path": "/", "noOverwriteDirNonDir": "true"},
                data=_tar_of(path, data),
            )
            try:
                self.api._raise_for_status(response)
            except docker.errors.NotFound:
                raise
            except docker.errors.APIError as exc:
                error = self._api_error(f"cannot write {path}", exc)
                if "tar file" in str(exc.explanation):  # in the way: a directory, a file
                    error.permanent = True
                raise error from exc

    def get_file(self, state: dict[str, Any], path: str) -> bytes:
        path = _check_path(path)
        with self._engine_errors(f"read {path} in instance {state.get('name')}"):
            for _ in range(8):  # symbolic links followed
                response = self.api._get(
                    self.api._url("/containers/{0}/archive", state["id"]),
                    params={"path": path},
                    stream=True,
                )
                try:
                    self.api._raise_for_status(response)
                    stat = _path_stat(response)
                    if stat["mode"] & _MODE_SYMLINK and stat.get("linkTarget"):
                        path = stat["linkTarget"]
                        continue
                    self._check_readable(path, stat)
                    archive = _read_capped(response, stat["size"] + 64 * 1024)
                finally:
                    response.close()
                return _file_in_tar(archive, path)
        raise DriverError(f"too many symbolic links at {path}", permanent=True)

    def _check_readable(self, path: str, stat: dict[str, Any]) -> None:
        if stat["mode"] & _MODE_DIR:
            raise DriverError(f"{path} is a directory", permanent=True)
        if stat["mode"] & _MODE_TYPE:
            raise DriverError(f"{path} is not a regular file", permanent=True)
        if stat["size"] > self.file_size_limit:
            raise DriverError(f"{path} is larger than {self.file_size_limit} bytes", permanent=True)

    # -- ports ------------------------------------------------------------------
    def listening_ports(self, state: dict[str, Any]) -> list[int]:
        # One exec: the kernel's socket tables of the instance's network
        # namespace (nested containers' published ports included, as
        # docker-proxy listens there). ``ss`` or ``netstat`` may be missing.
        tables = self._relay_socket_tables(state) if state.get("relay") else None
        if tables is None:
            tables = self.exec(state, "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null", timeout=self.ports_timeout).output
        ports = parse_listening(tables.decode("ascii", "replace"))
        return [port for port in ports if port != state.get("relay")]

    def _relay_socket_tables(self, state: dict[str, Any]) -> bytes | None:
        """The socket tables as the instance's relay reads them (its mode
        ``P``): a TCP connection, where an exec costs the engine a runtime
        call per instance per scan. None when the relay cannot be reached on
        the instance's address (the caller execs instead)."""
        with self._engine_errors(f"ports of instance {state.get('name')}"):
            info = self.api.inspect_container(state["id"])
        if not info["State"].get("Running"):
            return None
        sock = self._relay_connect(info, state, "P")
        if sock is None:
            return None
        try:
            data, complete = _read_to_end(sock, self.ports_timeout)
        except OSError:
            return None
        finally:
            sock.close()
        return data if complete else None

    # -- stats ------------------------------------------------------------------
    def stats(self, state: dict[str, Any]) -> InstanceStats:
        # One-shot (API 1.41): the engine answers at once with one sample,
        # instead of waiting a second for a second one.
        with self._engine_errors(f"stats of instance {state.get('name')}"):
            response = self.api._get(
                self.api._url("/containers/{0}/stats", state["id"]),
                params={"stream": "false", "one-shot": "true"},
                timeout=self.ports_timeout,
            )
            info = self.api._result(response, json=True)
        return parse_stats(info, name=str(state.get("name")))

    # -- the terminal -----------------------------------------------------------
    def attach(self, state: dict[str, Any], *, replay: bool = False) -> TerminalStream:
        if state.get("relay"):
            return self._attach_relay(state, "R" if replay else "L")
        return self._attach_engine(state, replay=replay)

    def _attach_relay(self, state: dict[str, Any], mode: str) -> socket.socket | DockerTerminal:
        """The instance's relay: on its address, else through an exec."""
        with self._engine_errors(f"attach to instance {state.get('name')}"):
            info = self.api.inspect_container(state["id"])
            if not info["State"].get("Running"):
                return _ended_stream()
            if _relay_of(info) is None:  # an image without one (state from before a rebuild)
                return self._attach_engine(state, replay=mode == "R")
            sock = self._relay_connect(info, state, mode)
            if sock is None:
                return self._attach_relay_exec(state, mode)
            sock.settimeout(None)  # a quiet terminal is not an error
            return sock

    def _relay_connect(self, info: dict[str, Any], state: dict[str, Any], mode: str) -> socket.socket | None:
        """A connection to the container's relay on one of its addresses, the
        hello (key and ``mode``) sent; None if it has no relay or none answers."""
        relay = _relay_of(info)
        if relay is None:
            return None
        port, token = relay
        for address in _addresses(info, state):
            try:
                sock = socket.create_connection((address, port), timeout=self.relay_timeout)
            except OSError:
                continue
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.sendall(f"{token} {mode}\n".encode())
            except OSError:
                sock.close()
                continue
            return sock
        return None

    def _attach_relay_exec(self, state: dict[str, Any], mode: str) -> socket.socket | DockerTerminal:
        """The relay through the engine (an instance the web tier cannot reach,
        such as one on no network, or on another lab host): a client of it
        exec'd in the instance.

        With a TTY the engine does not end an exec when its attachment
        closes: the client would copy the terminal into nowhere for as long
        as the instance runs. So it says its PID first, and closing the
        stream stops it."""
        created = self.api.exec_create(
            state["id"], ["/bin/sh", "-c", 'echo "$$"; exec "$0" --connect "$1"', RELAY_PATH, mode],
            stdin=True, stdout=True, stderr=True, tty=True, user="0",
        )
        response = self.api._post_json(
            self.api._url("/exec/{0}/start", created["Id"]),
            data={"Tty": True, "Detach": False},
            headers={"Connection": "Upgrade", "Upgrade": "tcp"},
            stream=True,
        )
        stream = self._hijack(response)
        try:
            pid = _first_line_pid(stream, deadline=time.monotonic() + self.timeout)
        except BaseException:
            stream.close()
            raise
        container_id = state["id"]
        return DockerTerminal(stream, on_close=lambda: self._stop_relay_client(container_id, pid))

    def _stop_relay_client(self, container_id: str, pid: int) -> None:
        """Stop the relay client ``pid`` exec'd for an attachment that closed,
        in the background (closing a stream never waits for the engine). Only
        a relay client is stopped, should the PID be another's by then."""

        def stop() -> None:
            try:
                self._detached(container_id, f"grep -q -- --connect /proc/{pid}/cmdline 2>/dev/null && kill {pid}")
            except Exception as exc:  # noqa: BLE001 - the instance may be gone, and the client with it
                log.debug("could not stop relay client %s in %s: %s", pid, container_id[:12], exc)

        threading.Thread(target=stop, name="relay-client-stop", daemon=True).start()

    def _attach_engine(self, state: dict[str, Any], *, replay: bool) -> socket.socket | DockerTerminal:
        with self._engine_errors(f"attach to instance {state.get('name')}"):
            response = self.api._post(
                self.api._url("/containers/{0}/attach", state["id"]),
                params={
                    "stdin": 1,
                    "stdout": 1,
                    "stderr": 1,
                    "stream": 1,
                    # The engine sends its log first, then the live stream.
                    "logs": 1 if replay else 0,
                    "detachKeys": self.detach_keys,
                },
                headers={"Connection": "Upgrade", "Upgrade": "tcp"},
                stream=True,
            )
            terminal = DockerTerminal(self._hijack(response))
            # The engine holds an attachment to a stopped container open
            # forever; one that stops after this inspect closes it.
            try:
                running = self.api.inspect_container(state["id"])["State"].get("Running")
            except BaseException:
                terminal.close()
                raise
        if not running:
            terminal.close()
            return _ended_stream()
        return terminal

    def resize(self, state: dict[str, Any], *, cols: int, rows: int) -> None:
        with self._engine_errors(f"resize the terminal of {state.get('name')}"):
            self.api.resize(state["id"], height=rows, width=cols)

    def recent_output(self, state: dict[str, Any], *, max_bytes: int) -> bytes:
        if max_bytes <= 0:
            return b""
        if state.get("relay"):
            return _tail_from_line(self._relay_kept(state), max_bytes)
        # The log keeps a line per entry: ask for about enough lines first,
        # and for the whole (size-capped) log only when that fell short.
        lines = max(100, max_bytes // 32)
        with self._engine_errors(f"read the output of {state.get('name')}"):
            data = self._log_tail(state["id"], str(lines))
            if len(data) < max_bytes and data.count(b"\n") >= lines - 1:
                data = self._log_tail(state["id"], "all")
        return _tail_from_line(data, max_bytes)

    def _relay_kept(self, state: dict[str, Any]) -> bytes:
        """What the relay keeps of the recent output (its mode ``O``)."""
        stream = self._attach_relay(state, "O")
        try:
            with self._engine_errors(f"read the output of {state.get('name')}"):
                return _read_to_end(stream, self.timeout)[0]
        finally:
            stream.close()

    def _log_tail(self, container_id: str, tail: str) -> bytes:
        # docker-py's logs() inspects the container first to learn whether it
        # has a TTY; ours always do, so the body is the raw output.
        response = self.api._get(
            self.api._url("/containers/{0}/logs", container_id),
            params={"stdout": 1, "stderr": 1, "tail": tail},
        )
        self.api._raise_for_status(response)
        return response.content

    # -- housekeeping -----------------------------------------------------------
    def disk_usage(self) -> dict[str, int]:
        # One listing with sizes for the whole deployment: the engine walks each
        # writable layer (SizeRw), so this costs disk reads, not round trips.
        filters = {"label": [f"{LABEL_DEPLOYMENT}={self.deployment}", f"{LABEL_KIND}=instance"]}
        usage: dict[str, int] = {}
        with self._engine_errors("measure disk use"):
            if self._hard_disk_limits():
                return self._unlimited_disk_usage(filters)
            for c in self.api.containers(filters=filters, size=True):
                instance_id = (c.get("Labels") or {}).get(LABEL_INSTANCE)
                if instance_id:
                    usage[instance_id] = int(c.get("SizeRw") or 0)
            # Named volumes (nested Docker's /var/lib/docker) are outside the
            # writable layer. Only the engine's disk-usage report sizes them,
            # and it walks everything, so ask for it only when there are some.
            volume_filters = {"label": [f"{LABEL_DEPLOYMENT}={self.deployment}", f"{LABEL_KIND}=volume"]}
            if usage and (self.api.volumes(filters=volume_filters) or {}).get("Volumes"):
                for v in self.api.df().get("Volumes") or []:
                    labels = v.get("Labels") or {}
                    instance_id = labels.get(LABEL_INSTANCE)
                    size = int((v.get("UsageData") or {}).get("Size") or 0)
                    if labels.get(LABEL_DEPLOYMENT) == self.deployment and instance_id in usage and size > 0:
                        usage[instance_id] += size
        return usage

    def _unlimited_disk_usage(self, filters: dict[str, Any]) -> dict[str, int]:
        """On a btrfs engine, only the instances it does not limit (made
        without ``disk_bytes``): the engine sizes a btrfs writable layer by
        comparing it with its image file by file (seconds per instance), so
        the ones it limits are never measured. 1 listing, +1 inspect each."""
        usage: dict[str, int] = {}
        for c in self.api.containers(filters=filters):
            labels = c.get("Labels") or {}
            instance_id = labels.get(LABEL_INSTANCE)
            if not instance_id or LABEL_DISK_QUOTA in labels:
                continue
            response = self.api._get(self.api._url("/containers/{0}/json", c["Id"]), params={"size": 1})
            usage[instance_id] = int(self.api._result(response, json=True).get("SizeRw") or 0)
        return usage

    def list_objects(self) -> list[LabelledObject]:
        filters = {"label": [f"{LABEL_DEPLOYMENT}={self.deployment}"]}
        found: list[LabelledObject] = []
        with self._engine_errors("list objects"):
            for c in self.api.containers(all=True, filters=filters):
                name = (c.get("Names") or [""])[0].lstrip("/")
                found.append(LabelledObject(
                    "container", c["Id"], name, c.get("Labels") or {}, running=c.get("State") == "running"
                ))
            for n in self.api.networks(filters=filters):
                found.append(LabelledObject("network", n["Id"], n["Name"], n.get("Labels") or {}))
            for v in self.api.volumes(filters=filters).get("Volumes") or []:
                found.append(LabelledObject("volume", v["Name"], v["Name"], v.get("Labels") or {}))
        return found

    def remove_object(self, obj: LabelledObject) -> None:
        if obj.labels.get(LABEL_DEPLOYMENT) != self.deployment:
            raise DriverError(
                f"{obj.kind} {obj.name} belongs to another deployment", permanent=True
            )
        with self._engine_errors(f"remove {obj.kind} {obj.name}"):
            try:
                if obj.kind == "container":
                    self._remove_container(obj.id)
                elif obj.kind == "network":
                    self._force_remove_network(obj.id)
                elif obj.kind == "volume":
                    self.api.remove_volume(obj.id, force=True)
                else:
                    raise DriverError(f"unknown object kind {obj.kind!r}", permanent=True)
            except docker.errors.NotFound:
                pass

    def _force_remove_network(self, network_id: str) -> None:
        """Remove a network, first disconnecting whatever is still on it."""
        try:
            self.api.remove_network(network_id)
            return
        except docker.errors.APIError as exc:
            if exc.status_code not in (403, 409):
                raise
        for container_id in self.api.inspect_network(network_id).get("Containers") or {}:
            try:
                self.api.disconnect_container_from_network(container_id, network_id, force=True)
            except docker.errors.NotFound:
                pass
        self.api.remove_network(network_id)

    # -- events -----------------------------------------------------------------
    def events(self, *, since: float | None = None, until: float | None = None) -> DockerEvents:
        # The engine filters: only this deployment's containers, only the
        # four actions the contract names (``exec_die`` and the like are other
        # actions, not matched).
        filters = {
            "type": ["container"],
            "label": [f"{LABEL_DEPLOYMENT}={self.deployment}"],
            "event": list(_EVENT_KINDS),
        }
        params: dict[str, str] = {"filters": json.dumps(filters)}
        if since is not None:
            params["since"] = f"{since:.9f}"
        if until is not None:
            params["until"] = f"{until:.9f}"
        with self._engine_errors("watch events"):
            # No read timeout: a quiet host sends nothing for hours.
            response = self.api._get(self.api._url("/events"), params=params, stream=True, timeout=None)
            try:
                self.api._raise_for_status(response)
            except BaseException:
                response.close()
                raise
        return DockerEvents(self.api._stream_helper(response, decode=True), response)

    # -- errors -----------------------------------------------------------------
    @contextmanager
    def _engine_errors(self, doing: str) -> Iterator[None]:
        """Turn whatever the SDK raises into ``DriverError`` and its kinds."""
        try:
            yield
        except DriverError:
            raise
        except docker.errors.NotFound as exc:
            raise NotFound(f"{doing}: {exc.explanation or 'no such object'}") from exc
        except docker.errors.APIError as exc:  # before RequestException: it is one
            raise self._api_error(doing, exc) from exc
        except (
            requests.exceptions.RequestException,
            urllib3.exceptions.HTTPError,
            OSError,  # includes socket timeouts and TLS errors on the raw stream
        ) as exc:
            raise DriverError(f"lab host unreachable: {doing}: {exc}", permanent=False) from exc
        except docker.errors.DockerException as exc:
            raise DriverError(f"{doing}: {exc}", permanent=False) from exc

    def _api_error(self, doing: str, exc: docker.errors.APIError) -> DriverError:
        explanation = str(exc.explanation or exc)
        if any(m in explanation.lower() for m in _CAPACITY_MESSAGES):
            return OutOfCapacity(f"the lab host is full: {doing}: {explanation}")
        status = exc.status_code or 500
        # A wrong request stays wrong; a conflict (removal in progress...) or
        # an engine failure may pass.
        return DriverError(
            f"{doing}: {explanation}", permanent=400 <= status < 500 and status != 409
        )


# Engine actions -> EngineEvent kinds.
_EVENT_KINDS = {"start": "started", "die": "died", "oom": "oom", "destroy": "destroyed"}


class DockerEvents:
    """An ``EventStream`` over the engine's ``/events``. ``close`` from another
    thread shuts the socket down, which ends the iteration."""

    def __init__(self, decoded: Iterator[dict[str, Any]], response: requests.Response) -> None:
        self._decoded = decoded
        self._response = response
        self._oom: set[str] = set()
        self._closed = False

    def __iter__(self) -> Iterator[EngineEvent]:
        try:
            for raw in self._decoded:
                event = self._event(raw)
                if event is not None:
                    yield event
        except Exception as exc:  # noqa: BLE001 - a broken connection ends the stream, whatever broke it
            if not self._closed:
                log.info("engine events: the stream ended: %s", exc)
        finally:
            self.close()

    def _event(self, raw: dict[str, Any]) -> EngineEvent | None:
        kind = _EVENT_KINDS.get(raw.get("Action") or raw.get("status") or "")
        actor = raw.get("Actor") or {}
        attributes = actor.get("Attributes") or {}
        instance_id = attributes.get(LABEL_INSTANCE)
        if kind is None or not instance_id:
            return None
        container = actor.get("ID") or raw.get("id") or ""
        at = raw.get("timeNano")
        at = at / 1e9 if at else float(raw.get("time") or 0)
        if kind == "oom":
            self._oom.add(container)
            return EngineEvent(instance_id=instance_id, kind="oom", at=at)
        if kind == "died":
            code = attributes.get("exitCode")
            return EngineEvent(
                instance_id=instance_id, kind="died", at=at,
                exit_code=int(code) if code and code.lstrip("-").isdigit() else None,
                oom=container in self._oom,
            )
        self._oom.discard(container)
        return EngineEvent(instance_id=instance_id, kind=kind, at=at)  # type: ignore[arg-type]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            # docker-py's own cancel: it shuts the socket down, which wakes a
            # thread blocked reading it (a plain close does not).
            docker.types.CancellableStream(iter(()), self._response).close()
        except Exception:  # noqa: BLE001, S110 - already gone, or a transport it cannot cancel
            pass
        self._response.close()


def _number(options: dict[str, object], name: str, default: float) -> float:
    value = options.get(name, default)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DriverError(f"option {name}={value!r} is not a number", permanent=True) from None


# -- hijacked streams -----------------------------------------------------------
class _Hijacked:
    """The raw connection under an upgraded HTTP response (attach, exec start).

    http.client reads the response headers through a buffer that may already
    hold the first bytes of the stream; they are kept and returned first.
    """

    def __init__(self, response: requests.Response) -> None:
        self._response = response  # keeps TLS sockets from being collected
        reader = cast(Any, response.raw)._fp.fp  # the BufferedReader http.client parsed
        sock = reader.raw._sock
        self.sock: socket.socket = sock
        self._pending = _drain_buffer(reader, sock)

    def take_pending(self) -> bytes:
        pending, self._pending = self._pending, b""
        return pending

    def unread(self, data: bytes) -> None:
        """Put ``data`` back, to be read before anything else."""
        self._pending = data + self._pending

    def has_buffered(self) -> bool:
        return bool(self._pending) or (
            isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0
        )

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv_nowait(self, size: int) -> bytes | None:
        """Bytes available now; ``b""`` at the end; None if none yet."""
        if self._pending:
            return self.take_pending()
        self.sock.setblocking(False)
        try:
            return self.sock.recv(size)
        except (BlockingIOError, ssl.SSLWantReadError):
            return None

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._response.close()
        except Exception:  # noqa: BLE001, S110 - closing is best effort
            pass
        self.sock.close()


def _drain_buffer(reader: io.BufferedReader, sock: socket.socket) -> bytes:
    timeout = sock.gettimeout()
    sock.settimeout(0)
    try:
        # peek() returns what is buffered, or reads once without blocking.
        buffered = reader.peek(65536)
        return reader.read(len(buffered)) if buffered else b""
    except (OSError, ValueError):
        return b""
    finally:
        sock.settimeout(timeout)


class DockerTerminal:
    """``TerminalStream`` over an attachment to a container's TTY.

    With a TTY the stream is raw (no multiplexing). ``recv`` blocks until
    output comes and returns ``b""`` once the engine closed the attachment (the
    instance stopped or was removed); socket errors surface as ``OSError`` as
    they would on a socket. Bytes that arrived together with the engine's
    answer are returned by the first ``recv``: a caller waiting on
    ``fileno()`` should call ``recv`` once right away if ``has_pending()``.
    """

    def __init__(self, stream: _Hijacked, *, on_close: Callable[[], None] | None = None) -> None:
        self._stream = stream
        self._on_close = on_close
        stream.sock.settimeout(None)  # a quiet terminal is not an error

    def fileno(self) -> int:
        return self._stream.fileno()

    def has_pending(self) -> bool:
        return self._stream.has_buffered()

    def recv(self, size: int) -> bytes:
        pending = self._stream.take_pending()
        if pending:
            return pending
        return self._stream.sock.recv(size)

    def sendall(self, data: bytes) -> None:
        self._stream.sock.sendall(data)

    def send(self, data: bytes) -> int:
        return self._stream.sock.send(data)

    def setblocking(self, flag: bool) -> None:
        self._stream.sock.setblocking(flag)

    def settimeout(self, seconds: float | None) -> None:
        self._stream.sock.settimeout(seconds)

    def close(self) -> None:
        self._stream.close()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()


def _first_line_pid(stream: _Hijacked, *, deadline: float) -> int:
    """Read the PID an exec'd relay client prints first; what follows stays
    in the stream, to be read as the terminal's."""
    data = stream.take_pending()
    poller = select.poll()
    poller.register(stream.fileno(), select.POLLIN)
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            raise DriverError("the relay client in the instance did not start")
        chunk = stream.recv_nowait(4096)
        if chunk == b"":
            raise DriverError("the relay client in the instance ended at once")
        data += chunk or b""
    line, rest = data.split(b"\n", 1)
    stream.unread(rest)
    try:
        return int(line.strip())
    except ValueError:
        raise DriverError(f"the relay client in the instance said {line[:80]!r}, not its PID") from None


# Waits in the instance until its engine answers. dockerd makes its socket
# before it serves it, so a request that connects early waits for the answer
# rather than for the next poll; curl costs a fraction of what a `docker`
# CLI start does (CPU the starting engine needs), which is kept for images
# without curl.
_INNER_ENGINE_WAIT = (
    "sock=/var/run/docker.sock; end=$(($(date +%s) + {seconds})); "
    "ping() {{ if command -v curl >/dev/null; then "
    "curl -sf --max-time 5 --unix-socket $sock http://localhost/_ping; "
    "else docker version; fi; }}; "
    "until [ -S $sock ] && ping >/dev/null 2>&1; do "
    "[ $(date +%s) -lt $end ] || exit 1; sleep 0.02; done"
)


def _relay_of(info: dict[str, Any]) -> tuple[int, str] | None:
    """(port, token) of a container's terminal relay, from its image's label
    and its environment; None for an image without one."""
    config = info.get("Config") or {}
    port = (config.get("Labels") or {}).get(LABEL_RELAY, "")
    token = next((e.split("=", 1)[1] for e in config.get("Env") or () if e.startswith(RELAY_TOKEN + "=")), "")
    if not port.isdigit() or not token:
        return None
    return int(port), token


class _Receiver(Protocol):
    def settimeout(self, value: float | None, /) -> None: ...
    def recv(self, size: int, /) -> bytes: ...


def _read_to_end(stream: _Receiver, seconds: float, limit: int = RELAY_READ_LIMIT) -> tuple[bytes, bool]:
    """What ``stream`` sends until it closes, for ``seconds`` at most and
    ``limit`` bytes at most (what an instance sends is the learner's to
    choose: it must not fill the web tier's memory or hold a thread); and
    whether it closed (False: the time or the size ran out first)."""
    deadline = time.monotonic() + seconds
    data = bytearray()
    while (left := deadline - time.monotonic()) > 0 and len(data) < limit:
        stream.settimeout(left)
        try:
            chunk = stream.recv(min(65536, limit - len(data)))
        except TimeoutError:
            break
        if not chunk:
            return bytes(data), True
        data += chunk
    return bytes(data), False


def _addresses(info: dict[str, Any], state: dict[str, Any]) -> list[str]:
    """The container's addresses, that of the session's network first."""
    networks = info.get("NetworkSettings", {}).get("Networks") or {}
    named = sorted(networks.items(), key=lambda item: item[0] != state.get("network"))
    return [endpoint["IPAddress"] for _, endpoint in named if (endpoint or {}).get("IPAddress")]


def _tail_from_line(data: bytes, max_bytes: int) -> bytes:
    """The last ``max_bytes`` at most, from the start of a line rather than
    from a cut escape sequence."""
    if len(data) <= max_bytes:
        return data
    data = data[-max_bytes:]
    newline = data.find(b"\n")
    return data[newline + 1 :] if newline != -1 else data


def _ended_stream() -> socket.socket:
    """A stream with nothing to read: ``recv`` gives ``b""`` at once."""
    ours, theirs = socket.socketpair()
    theirs.close()
    return ours


class _ExecOutput:
    """Demultiplexes an exec stream: the leading pid line of stdout goes to
    ``pid``; stdout and stderr go to ``data`` in arrival order, up to ``limit``
    bytes (the rest is read and dropped so that the command can finish)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.pid: int | None = None
        self._buffer = bytearray()
        self._pid_line: bytearray | None = bytearray()

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        while len(self._buffer) >= 8:
            size = int.from_bytes(self._buffer[4:8], "big")
            if len(self._buffer) < 8 + size:
                return
            kind = self._buffer[0]
            payload = bytes(self._buffer[8 : 8 + size])
            del self._buffer[: 8 + size]
            if kind == _STDOUT and self._pid_line is not None:
                payload = self._take_pid(payload)
            room = self.limit - len(self.data)
            if room > 0:
                self.data += payload[:room]

    def _take_pid(self, payload: bytes) -> bytes:
        assert self._pid_line is not None
        line, newline, rest = payload.partition(b"\n")
        self._pid_line += line
        if not newline:
            return b""
        text = self._pid_line.decode("ascii", "replace").strip()
        self.pid = int(text) if text.isdigit() else None
        self._pid_line = None
        return rest


# -- files ----------------------------------------------------------------------
def _check_path(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        raise DriverError(f"{path!r} is not an absolute path", permanent=True)
    normal = posixpath.normpath(path)
    if normal.startswith("//"):
        normal = "/" + normal.lstrip("/")
    if normal == "/" or path.endswith("/"):
        raise DriverError(f"{path!r} does not name a file", permanent=True)
    return normal


def _tar_of(path: str, data: bytes) -> bytes:
    """An archive holding only the file: the engine creates missing parents
    (root, 0755) and leaves existing ones as they are, whereas a directory
    entry would reset an existing directory's mode (``/tmp`` would lose 1777)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo(path.lstrip("/"))
        info.size = len(data)
        info.mode = 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = int(time.time())
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _path_stat(response: requests.Response) -> dict[str, Any]:
    try:
        stat: dict[str, Any] = json.loads(b64decode(response.headers["X-Docker-Container-Path-Stat"]))
        int(stat["mode"]), int(stat["size"])
        return stat
    except (KeyError, TypeError, ValueError) as exc:
        raise DriverError(f"the engine sent no usable file stat: {exc}") from exc


def _read_capped(response: requests.Response, cap: int) -> bytes:
    data = bytearray()
    for chunk in response.iter_content(65536):
        data += chunk
        if len(data) > cap:
            raise DriverError("the file grew while it was being read", permanent=False)
    return bytes(data)


def _file_in_tar(archive: bytes, path: str) -> bytes:
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            for member in tar:
                if member.isfile():
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    return extracted.read()
    except tarfile.TarError as exc:
        raise DriverError(f"the engine sent a broken archive for {path}: {exc}") from exc
    raise DriverError(f"{path} is not a regular file", permanent=True)


def parse_meminfo(text: str) -> int | None:
    """MemAvailable of Linux's /proc/meminfo, in bytes."""
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * 1024
    return None


def parse_stats(info: dict[str, Any], *, name: str = "") -> InstanceStats:
    """``InstanceStats`` from the engine's stats answer (cgroup v1 or v2)."""
    cpu = (info.get("cpu_stats") or {}).get("cpu_usage") or {}
    memory = info.get("memory_stats") or {}
    if not cpu.get("total_usage") or "usage" not in memory:
        # What the engine answers for a container that does not run.
        raise NotRunning(f"instance {name} is not running")
    details = memory.get("stats") or {}
    # As ``docker stats`` counts: the page cache that could be dropped left out.
    inactive = details.get("inactive_file", details.get("total_inactive_file", 0))
    used = int(memory["usage"])
    if inactive < used:
        used -= int(inactive)
    return InstanceStats(
        cpu_ns=int(cpu["total_usage"]),
        memory_bytes=used,
        memory_limit_bytes=int(memory.get("limit") or 0),
        at=time.time(),
    )
