"""Use cases of sandbox sessions.

Views, consumers, admin and tasks validate input and call these functions;
the rules live here. The web tier allocates (rows, host choice, caps) and the
Celery workers do the slow work on lab hosts (create, remove), except where
the contract asks for it before the answer (DELETE).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from django import db
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from playground import audit, events, jobs, metrics
from playground.accounts.actions import guest_address, is_guest, lock_guests_of
from playground.errors import (
    Forbidden,
    Invalid,
    LimitReached,
    NoCapacity,
    NotFoundError,
    NotReady,
    SessionOver,
)
from sandboxes.base import (
    DriverError,
    EngineEvent,
    ExecResult,
    InstanceSpec,
    Limits,
    NotFound,
    NotRunning,
    load_driver,
)

from . import hosts
from .models import Instance, LabHost, Session

log = logging.getLogger(__name__)
T = TypeVar("T")

LIVE_INSTANCE_STATES = (Instance.State.PROVISIONING, Instance.State.RUNNING)
# Transient lab-host errors while provisioning are retried after these pauses.
PROVISION_RETRY_DELAYS = (0.5, 1.5, 3.0)
# How long ending a session waits for a worker already tearing it down.
TEARDOWN_WAIT_SECONDS = 30.0


# -- catalogue ------------------------------------------------------------------

def images() -> list[dict]:
    return [{"name": name, "description": spec["description"]} for name, spec in settings.PLAYGROUND_IMAGES.items()]


def templates() -> list[dict]:
    """Ready-made multi-instance setups whose image this installation has."""
    return [
        {"name": name, "description": spec["description"], "instances": len(_template_roles(spec))}
        for name, spec in settings.PLAYGROUND_TEMPLATES.items()
        if spec["image"] in settings.PLAYGROUND_IMAGES
    ]


def _template_roles(spec: dict) -> dict[str, str]:
    """hostname -> role, in instance order (managers first)."""
    swarm = spec.get("swarm") or {}
    roles = {name: "manager" for name in swarm.get("managers", [])}
    roles.update({name: "worker" for name in swarm.get("workers", [])})
    for name in spec.get("instances", []):
        roles.setdefault(name, "")
    return roles


def _template(name: str) -> dict:
    known = {t["name"] for t in templates()}
    if name not in known:
        choices = ", ".join(sorted(known)) or "none here"
        raise Invalid(f"Unknown template {name!r}; choose one of: {choices}.")
    return settings.PLAYGROUND_TEMPLATES[name]


def _image_ref(name: str) -> str:
    try:
        return settings.PLAYGROUND_IMAGES[name]["ref"]
    except KeyError:
        known = ", ".join(sorted(settings.PLAYGROUND_IMAGES))
        raise Invalid(f"Unknown image {name!r}; choose one of: {known}.") from None


def _image_options(name: str, egress: str) -> dict:
    """What an image kind adds to its InstanceSpec: the nested-Docker profile,
    and for its inner engine the port of the lab host's registry mirror (it
    pulls Docker Hub images from there) and whether Docker Hub is reachable."""
    if not settings.PLAYGROUND_IMAGES[name].get("nested_docker"):
        return {}
    env = {
        "PLAYGROUND_MIRROR_PORT": str(settings.PLAYGROUND_MIRROR_PORT),
        "PLAYGROUND_EGRESS": "1" if egress == "internet" else "0",
    }
    return {"nested_docker": True, "env": env}


def egress_policy(*, image: str | None = None, lab: str | None = None) -> str:
    """Where a session's instances may send traffic: the lab's policy, else
    its first image's (PLAYGROUND_IMAGE_EGRESS), else the installation's."""
    if lab:
        if lab not in settings.EGRESS_POLICIES:
            raise Invalid(f"Unknown egress policy {lab!r}; choose one of: {', '.join(settings.EGRESS_POLICIES)}.")
        return lab
    image = image or settings.PLAYGROUND_DEFAULT_IMAGE
    return settings.PLAYGROUND_IMAGES.get(image, {}).get("egress") or settings.PLAYGROUND_EGRESS


def _network_options(egress: str) -> dict:
    """The driver's create_network flags for a policy."""
    return {"egress": egress == "internet", "isolated": egress == "none"}


def instance_limits(image: str | None = None) -> Limits:
    return Limits(
        memory_bytes=settings.PLAYGROUND_INSTANCE_MEMORY_MB * 1024 * 1024,
        cpus=settings.PLAYGROUND_INSTANCE_CPUS,
        pids=settings.PLAYGROUND_INSTANCE_PIDS,
        log_max_bytes=settings.PLAYGROUND_INSTANCE_LOG_KB * 1024,
        capabilities=tuple(settings.PLAYGROUND_INSTANCE_CAPABILITIES),
        disk_bytes=disk_limit_mb(image) * 1024 * 1024,
    )


def disk_limit_mb(image: str | None) -> int:
    """The disk an instance of ``image`` may write (PLAYGROUND_IMAGE_DISK_MB,
    else PLAYGROUND_INSTANCE_DISK_MB)."""
    own = settings.PLAYGROUND_IMAGES.get(image or "", {}).get("disk_mb")
    return int(own or settings.PLAYGROUND_INSTANCE_DISK_MB)


# -- lookups with ownership -------------------------------------------------------

def session_of(*, user, session_id: str) -> Session:
    """The caller's own session; someone else's is as unknown as a missing one."""
    session = Session.objects.filter(id=session_id, owner=user).first()
    if session is None:
        raise NotFoundError("No such session.")
    return session


def instance_of(*, user, session_id: str, instance_id: str) -> Instance:
    instance = (
        Instance.objects.select_related("session")
        .filter(id=instance_id, session_id=session_id, session__owner=user)
        .first()
    )
    if instance is None:
        raise NotFoundError("No such instance.")
    return instance


def _require_live(session: Session) -> None:
    if not session.is_live:
        raise SessionOver(f"This session is over ({session.state}{': ' + session.reason if session.reason else ''}).")


# -- allocation -------------------------------------------------------------------

@dataclass(frozen=True)
class Reservation:
    """What placing one instance of an image takes of a lab host: what such
    an instance typically uses, not its limit (most sit idle)."""

    memory_bytes: int
    cpus: float


def reservation(image: str) -> Reservation:
    spec = settings.PLAYGROUND_IMAGES.get(image) or {}
    memory_mb = spec.get("reserve_memory_mb", settings.PLAYGROUND_RESERVE_MEMORY_MB)
    return Reservation(memory_bytes=int(memory_mb) * 1024 * 1024,
                       cpus=float(spec.get("reserve_cpus", settings.PLAYGROUND_RESERVE_CPUS)))


@dataclass
class _Load:
    instances: int = 0
    memory_bytes: int = 0
    cpus: float = 0.0

    def add(self, each: Reservation, n: int = 1) -> None:
        self.instances += n
        self.memory_bytes += each.memory_bytes * n
        self.cpus += each.cpus * n


def _host_loads() -> dict[str, _Load]:
    """What the live instances (pooled ones too) reserve on each host: one query."""
    loads: dict[str, _Load] = {}
    rows = (Instance.objects.filter(state__in=LIVE_INSTANCE_STATES)
            .values("host", "image").annotate(n=Count("id")).values_list("host", "image", "n"))
    for host, image, n in rows:
        loads.setdefault(host, _Load()).add(reservation(image), n)
    return loads


def _room_left(health: hosts.Health, load: _Load, want: Reservation, count: int) -> tuple[float, str]:
    """How much of a host would be left after placing ``count`` instances
    reserving ``want`` each (the smaller share of memory and CPU, 1.0 when
    its capacity is unknown), or a negative number and why they do not fit:
    the reservations past its memory and CPUs times their overcommit
    factors, or its available memory under PLAYGROUND_HOST_MIN_FREE_MEMORY
    of the whole (so 503 comes before the host starts swapping or killing)."""
    cap = settings.PLAYGROUND_HOST_CAPACITY
    if cap and load.instances + count > cap:
        return -1.0, "full"
    shares = [1.0]
    if health.memory_bytes:
        allowed = health.memory_bytes * settings.PLAYGROUND_HOST_MEMORY_OVERCOMMIT
        memory = load.memory_bytes + want.memory_bytes * count
        if memory > allowed:
            return -1.0, "full (memory reserved)"
        shares.append(1 - memory / allowed)
        available = health.memory_available_bytes
        floor = health.memory_bytes * settings.PLAYGROUND_HOST_MIN_FREE_MEMORY
        if available is not None and available - want.memory_bytes * count < floor:
            return -1.0, "low on free memory"
    if health.cpus:
        allowed = health.cpus * settings.PLAYGROUND_HOST_CPU_OVERCOMMIT
        cpus = load.cpus + want.cpus * count
        if cpus > allowed:
            return -1.0, "full (CPU reserved)"
        shares.append(1 - cpus / allowed)
    return min(shares), ""


def _choose_host(image: str | None = None, count: int = 1) -> str:
    """The healthy lab host with the most room left for ``count`` instances
    of ``image``, or 503 no_capacity."""
    want = reservation(image or settings.PLAYGROUND_DEFAULT_IMAGE)
    loads = _host_loads()
    candidates = []
    reasons = []
    for host in hosts.placeable_hosts():
        health = hosts.health_of(host)
        if not health.ok:
            reasons.append(health.error or "unreachable")
            continue
        room, why = _room_left(health, loads.get(host, _Load()), want, count)
        if room < 0:
            reasons.append(why)
            continue
        candidates.append((-room, loads.get(host, _Load()).instances, host))
    if not candidates:
        detail = "; ".join(reasons) or "no lab host takes new sandboxes"
        raise NoCapacity(f"No lab host can take a sandbox now ({detail}). Try again shortly.")
    return min(candidates)[2]


def _check_room(host: str, image: str) -> None:
    """503 no_capacity when ``host`` cannot take one more instance of ``image``."""
    room, why = _room_left(hosts.health_of(host), _host_loads().get(host, _Load()), reservation(image), 1)
    if room < 0:
        raise NoCapacity(f"The lab host of this session cannot take another sandbox now ({why}). "
                         "Try again shortly.")


def _next_number(session: Session) -> int:
    taken = set(session.instances.values_list("number", flat=True))
    number = 1
    while number in taken:
        number += 1
    return number


def start_session(*, user, image: str | None = None, hostname: str = "node1", egress: str | None = None,
                  address: str | None = None) -> Session:
    """Allocate a session with one instance; a worker provisions it.
    ``egress``: a lab's policy, over the image's and the installation's.
    ``address``: the client's, when a guest asks for it itself (not through a
    class): its instance counts against the guests of that address."""
    image = image or settings.PLAYGROUND_DEFAULT_IMAGE
    _image_ref(image)
    with _new_session(user=user, egress=egress_policy(image=image, lab=egress), address=address,
                      image=image) as session:
        instance = _claim_pooled(session=session, image=image, hostname=hostname)
        if instance is None:
            instance = Instance.objects.create(
                session=session, number=1, hostname=hostname, image=image, host=session.host
            )
            transaction.on_commit(lambda: _queue_provision(instance.id))
        else:
            transaction.on_commit(_queue_fill_pools)
    log.info("session %s started for %s on %s", session.id, user, session.host)
    audit.record("session.started", user=user, session=session.id, host=session.host, image=image)
    return session


@contextmanager
def _new_session(*, user, address: str | None = None, instances: int = 1, image: str | None = None,
                 **fields) -> Iterator[Session]:
    """A new session row of ``user`` (caps checked: its own, and with
    ``address`` a guest's per-address one for ``instances`` more) on the lab
    host with the most room, its lifetime and idle clock starting now; the
    caller adds its instances inside the transaction this opens."""
    check_session_cap(user)
    host = _choose_host(image, instances)  # before the transaction: it may probe, and SQLite writers queue
    now = timezone.now()
    with transaction.atomic():
        check_guest_address_cap(user, address, adding=instances)
        yield Session.objects.create(
            owner=user,
            host=host,
            expires_at=now + timedelta(seconds=settings.PLAYGROUND_SESSION_LIFETIME),
            last_activity_at=now,
            **fields,
        )


def instance_cap(session: Session) -> int:
    """Instances a session may have: its own limit (a class's) or the default."""
    return session.max_instances or settings.PLAYGROUND_MAX_INSTANCES


def check_guest_address_cap(user, address: str | None, *, adding: int = 1) -> None:
    """Guests of one client address hold at most
    PLAYGROUND_GUEST_INSTANCES_PER_ADDRESS live instances together (class
    sessions aside). Call inside the transaction that creates the instances:
    the guests of the address stay locked until it ends, so two creations
    from one address count in turn. ``address`` None: not a guest's own
    request (a class join, a lab's later instances), nothing to check."""
    if address is None:
        return
    guest, counted_at = guest_address(user, address)
    if not guest:
        return
    guests = lock_guests_of(counted_at)
    live = Instance.objects.filter(
        session__owner_id__in=guests, session__state__in=Session.LIVE_STATES, state__in=LIVE_INSTANCE_STATES,
        session__seat__isnull=True,  # a class's seat (classrooms app) does not count
    ).count()
    cap = settings.PLAYGROUND_GUEST_INSTANCES_PER_ADDRESS
    if live + adding > cap:
        raise LimitReached(
            f"Guests from your network already run {live} instance(s), the most allowed without an account "
            f"({cap}); end a session you no longer use, or sign in."
        )


def check_session_cap(user) -> None:
    if getattr(user, "username", None) == settings.PLAYGROUND_POOL_USERNAME:
        return  # the hot-start pool's system user holds sessions for whole classes
    cap = settings.PLAYGROUND_MAX_SESSIONS_GUEST if is_guest(user) else settings.PLAYGROUND_MAX_SESSIONS_USER
    live = Session.objects.filter(owner=user, state__in=Session.LIVE_STATES).count()
    if live >= cap:
        raise LimitReached(f"You already have {live} live session(s), the most allowed; end one first.")


def start_template_session(*, user, template: str, egress: str | None = None,
                           address: str | None = None) -> Session:
    """Allocate a session with a template's instances; workers provision them
    and then set the template up (a swarm: init on the first manager, join the rest)."""
    spec = _template(template)
    roles = _template_roles(spec)
    if len(roles) > settings.PLAYGROUND_MAX_INSTANCES:
        raise LimitReached(
            f"Template {template!r} needs {len(roles)} instances; sessions here may have "
            f"{settings.PLAYGROUND_MAX_INSTANCES}."
        )
    setup = {"state": "pending", "message": "starting the instances", "roles": roles}
    policy = egress_policy(image=spec["image"], lab=egress)
    with _new_session(user=user, template=template, setup=setup, egress=policy, address=address,
                      instances=len(roles), image=spec["image"]) as session:
        made = [
            Instance.objects.create(session=session, number=n, hostname=name, image=spec["image"], host=session.host)
            for n, name in enumerate(roles, start=1)
        ]
        for instance in made:
            transaction.on_commit(lambda iid=instance.id: _queue_provision(iid))
        transaction.on_commit(lambda: _queue_setup(session.id))
    log.info("session %s started for %s on %s from template %s", session.id, user, session.host, template)
    audit.record("session.started", user=user, session=session.id, host=session.host, template=template)
    return session


def _queue_setup(session_id: str) -> None:
    from .tasks import setup_template

    jobs.enqueue(setup_template, session_id)


def _set_setup(session: Session, state: str, message: str) -> None:
    setup = {**(session.setup or {}), "state": state, "message": message}
    Session.objects.filter(id=session.id).update(setup=setup)
    session.setup = setup


WAIT_FOR_DOCKER = (
    "for i in $(seq 1 240); do docker info >/dev/null 2>&1 && exit 0; sleep 0.25; done; "
    "echo 'the Docker Engine in this instance did not start' >&2; exit 1"
)


def setup_template(*, session_id: str) -> str:
    """One step of a template's set-up: "wait" while instances still start
    (the task asks again shortly), else "done" or "failed" ("busy": another
    worker is at it). Idempotent: a node already in the swarm is left as it is."""
    with jobs.lease(f"template:{session_id}") as mine:
        return _setup_template(session_id) if mine else "busy"


def _setup_template(session_id: str) -> str:
    session = Session.objects.filter(id=session_id).first()
    if session is None or not session.is_live or not session.setup:
        return "done"
    if session.setup.get("state") in ("done", "failed"):
        return session.setup["state"]
    instances = {i.hostname: i for i in session.instances.all()}
    failed = [i.hostname for i in instances.values() if i.state in (Instance.State.FAILED, Instance.State.STOPPED)]
    if failed:
        _set_setup(session, "failed", f"{', '.join(failed)} did not start, so the set-up stopped")
        return "failed"
    if any(i.state != Instance.State.RUNNING for i in instances.values()):
        age = (timezone.now() - session.created_at).total_seconds()
        if age > settings.PLAYGROUND_TEMPLATE_SETUP_SECONDS:
            _set_setup(session, "failed", "the instances took too long to start")
            return "failed"
        return "wait"
    swarm = settings.PLAYGROUND_TEMPLATES.get(session.template, {}).get("swarm")
    try:
        if swarm:
            _form_swarm(session, instances, swarm)
        _set_setup(session, "done", "ready")
        return "done"
    except (DriverError, _SetupFailed) as exc:
        _set_setup(session, "failed", str(exc))
        return "failed"


class _SetupFailed(Exception):
    pass


def _run(instance: Instance, command: str, *, timeout: float = 60.0) -> str:
    result = hosts.driver_for(instance.host).exec(instance.driver_state, command, timeout=timeout)
    output = result.output.decode("utf-8", "replace").strip()
    if result.exit_code != 0:
        raise _SetupFailed(f"{instance.hostname}: `{command.split(';')[0][:60]}` failed: {output[-300:]}")
    return output


def _form_swarm(session: Session, instances: dict[str, Instance], swarm: dict) -> None:
    managers, workers = swarm.get("managers", []), swarm.get("workers", [])
    _set_setup(session, "running", "waiting for Docker in every instance")
    for name in [*managers, *workers]:
        _run(instances[name], WAIT_FOR_DOCKER, timeout=90)
    leader = instances[managers[0]]
    state = "docker info --format '{{.Swarm.LocalNodeState}}'"
    _set_setup(session, "running", f"initialising the swarm on {leader.hostname}")
    if _run(leader, state) != "active":
        _run(leader, f"docker swarm init --advertise-addr {leader.ip}")
    tokens = {role: _run(leader, f"docker swarm join-token -q {role}") for role in ("manager", "worker")}
    for role, names in (("manager", managers[1:]), ("worker", workers)):
        for name in names:
            node = instances[name]
            _set_setup(session, "running", f"joining {name} as a {role}")
            if _run(node, state) != "active":
                _run(node, f"docker swarm join --token {tokens[role]} {leader.ip}:2377")
    log.info("session %s: swarm of %d manager(s) and %d worker(s) formed", session.id, len(managers), len(workers))


def add_instance(*, session: Session, image: str | None = None, hostname: str | None = None,
                 address: str | None = None) -> Instance:
    """Add an instance (``nodeN`` unless a lab names it ``hostname``).
    ``address``: the client's, when a guest asks for it itself (start_session)."""
    _require_live(session)
    image = image or settings.PLAYGROUND_DEFAULT_IMAGE
    _image_ref(image)
    if getattr(session, "seat", None) is not None:
        address = None  # a class's session: the class's own limits apply, not the guests' of an address
    _check_room(session.host, image)  # before the transaction: it may probe the host
    with transaction.atomic():
        live = session.instances.filter(state__in=LIVE_INSTANCE_STATES).count()
        if live >= instance_cap(session):
            raise LimitReached(f"This session already has {live} instances, the most allowed.")
        check_guest_address_cap(session.owner, address)
        number = _next_number(session)
        instance = Instance.objects.create(
            session=session, number=number, hostname=hostname or f"node{number}", image=image, host=session.host
        )
        transaction.on_commit(lambda: _queue_provision(instance.id))
    audit.record("instance.added", user=session.owner, session=session.id, instance=instance.id,
                 hostname=instance.hostname, image=image)
    return instance


def _queue_provision(instance_id: str) -> None:
    from .tasks import provision_instance

    jobs.enqueue(provision_instance, instance_id)


# -- provisioning (worker side) -------------------------------------------------------

def _ensure_network(session: Session, *, timeout: float = 30.0) -> dict:
    """The session's network, created once even when its instances provision
    at the same time (the engine's duplicate-name check is not atomic)."""
    lock = f"network-lock:{session.id}"
    deadline = time.monotonic() + timeout
    while not session.network_state:
        if cache.add(lock, 1, timeout=int(timeout)):
            try:
                session.refresh_from_db(fields=["network_state"])
                if not session.network_state:
                    network = hosts.driver_for(session.host).create_network(
                        session.network_key, **_network_options(session.egress)
                    )
                    Session.objects.filter(id=session.id).update(network_state=network)
                    session.network_state = network
            finally:
                cache.delete(lock)
            break
        if time.monotonic() > deadline:
            raise DriverError("timed out waiting for the session network", permanent=False)
        time.sleep(0.02)
        session.refresh_from_db(fields=["network_state"])
    return session.network_state


def provision_instance(*, instance_id: str) -> None:
    """Create the instance's container; safe to run twice."""
    with jobs.lease(f"provision:{instance_id}") as mine:
        if mine:
            _provision_instance(instance_id)


def _provision_instance(instance_id: str) -> None:
    instance = Instance.objects.select_related("session").filter(id=instance_id).first()
    if instance is None or instance.state != Instance.State.PROVISIONING:
        return
    session = instance.session
    if session is not None and not session.is_live:
        Instance.objects.filter(id=instance.id, state=Instance.State.PROVISIONING).update(
            state=Instance.State.STOPPED, reason="the session ended before the instance started"
        )
        return
    started = time.perf_counter()
    # Queued to started: a claimed pooled instance was queued when its session was made.
    queued_at = session.created_at if instance.driver_state and session is not None else instance.created_at
    hop_ms = (timezone.now() - queued_at).total_seconds() * 1000
    driver = hosts.driver_for(instance.host)
    # A pooled instance waits under its image's policy (_claim_pooled matches it).
    egress = session.egress if session is not None else egress_policy(image=instance.image)
    created = None
    for attempt, delay in enumerate((0.0, *PROVISION_RETRY_DELAYS)):
        time.sleep(delay)
        try:
            if session is not None:
                network = _ensure_network(session)
            else:  # a pooled instance waits on a network of its own, handed over with it
                network = driver.create_network(instance.id, **_network_options(egress))
                Instance.objects.filter(id=instance.id).update(pool_network=network)
            if instance.driver_state and network is not None:
                # A pooled container, claimed: it joins the session's network.
                created = driver.connect_instance(instance.driver_state, network, hostname=instance.hostname)
                break
            created = driver.create_instance(
                InstanceSpec(
                    instance_id=instance.id,
                    image=_image_ref(instance.image),
                    **_image_options(instance.image, egress),
                    hostname=instance.hostname,
                    network=network,
                    limits=instance_limits(instance.image),
                )
            )
            break
        except DriverError as exc:
            if exc.permanent or attempt == len(PROVISION_RETRY_DELAYS):
                metrics.provisioning_failed(image=instance.image, pooled=session is None,
                                            reason="refused" if exc.permanent else "unavailable")
                _fail_instance(instance, f"could not start: {exc.message}")
                return
            log.warning("provisioning %s failed (%s); retrying", instance.id, exc.message)
    if created is None:  # pragma: no cover - the loop either breaks or returns
        return
    if instance.driver_state:
        log.info("instance %s running: claimed from the pool, hop_ms=%.1f connect_ms=%.1f", instance.id,
                 hop_ms, (time.perf_counter() - started) * 1000)
    else:
        log.info("instance %s running: hop_ms=%.1f create_ms=%.1f", instance.id, hop_ms,
                 (time.perf_counter() - started) * 1000)
    won = Instance.objects.filter(
        id=instance.id, state=Instance.State.PROVISIONING, session=instance.session_id
    ).update(state=Instance.State.RUNNING, ip=created.ip, driver_state=created.state, running_at=timezone.now())
    if not won:
        # Removed or ended while we were creating it: leave nothing behind.
        # (A pooled one claimed meanwhile is its new session's to connect.)
        if not Instance.objects.filter(id=instance.id, state__in=LIVE_INSTANCE_STATES).exists():
            _remove_quietly(instance.host, created.state)
        return
    if session is not None:
        if Session.objects.filter(id=session.id, state=Session.State.STARTING).update(state=Session.State.RUNNING):
            metrics.session_started(image=instance.image, since=session.created_at,
                                    pooled=bool(instance.driver_state))
        if not Session.objects.filter(id=session.id, state__in=Session.LIVE_STATES).exists():
            # The session ended between our claim and now; its teardown may have missed us.
            teardown_session(session_id=session.id)


# -- hot-start pool ---------------------------------------------------------------------
# Pooled instances are Instance rows without a session: running containers of
# the pooled images, hostname node1, each on a network of its own. A new
# session whose node1 is of a pooled image claims one with a conditional
# update (two requests never get the same one) and takes its network as the
# session's. The filler keeps pool_sizes() of each image per healthy host,
# within the host's capacity. A pooled instance turns running only once it is
# usable, so a claimed docker instance's inner engine already answers (the
# driver waits for it while creating it).

POOL_HOSTNAME = "node1"


def pool_sizes() -> dict[str, int]:
    """Ready instances wanted per image on each lab host: PLAYGROUND_POOL_IMAGES,
    else PLAYGROUND_POOL_SIZE of the default image and each other image's own
    ``"pool"`` (none at all when PLAYGROUND_POOL_SIZE is 0)."""
    configured = settings.PLAYGROUND_POOL_IMAGES
    if not configured:
        default = settings.PLAYGROUND_DEFAULT_IMAGE
        sizes = {default: settings.PLAYGROUND_POOL_SIZE}
        if settings.PLAYGROUND_POOL_SIZE:
            for image, config in settings.PLAYGROUND_IMAGES.items():
                if image != default and config.get("pool"):
                    sizes[image] = int(config["pool"])
        return sizes
    return {
        image: settings.PLAYGROUND_POOL_SIZE if size is None else size
        for image, size in configured.items()
        if image in settings.PLAYGROUND_IMAGES
    }


def _claim_pooled(*, session: Session, image: str, hostname: str) -> Instance | None:
    # A pooled instance waits on a network of its image's policy: a lab that
    # asks for another gets an instance of its own.
    if hostname != POOL_HOSTNAME or session.egress != egress_policy(image=image):
        return None
    candidates = Instance.objects.filter(
        session__isnull=True, host=session.host, image=image, state=Instance.State.RUNNING
    ).order_by("created_at").values_list("id", flat=True)[:5]
    for candidate in candidates:
        claimed = Instance.objects.filter(id=candidate, session__isnull=True, state=Instance.State.RUNNING).update(
            session=session, number=1
        )
        if not claimed:
            continue  # another request was quicker
        instance = Instance.objects.get(id=candidate)
        if instance.pool_network:
            # Running already, on a network of its own that becomes the
            # session's: nothing is left for a worker to do.
            Session.objects.filter(id=session.id).update(
                network_state=instance.pool_network, state=Session.State.RUNNING
            )
            session.refresh_from_db()
            transaction.on_commit(lambda: metrics.session_started(image=image, since=session.created_at,
                                                                  pooled=True))
        else:  # made without a network (an older pool): a worker connects it
            Instance.objects.filter(id=candidate).update(state=Instance.State.PROVISIONING)
            transaction.on_commit(lambda: _queue_provision(candidate))  # noqa: B023 - the loop returns right after
        log.info("session %s claimed pooled %s instance %s", session.id, image, candidate)
        return instance
    return None


def _queue_fill_pools() -> None:
    from .tasks import fill_pools

    jobs.enqueue(fill_pools)


def fill_pools() -> dict[str, int]:
    """Bring every healthy host's pool to its sizes; returns instances made per host.

    One filler at a time per deployment (a cache lock); pooled rows that failed
    are removed with their containers; pooled instances beyond an image's size,
    or of an image no longer pooled, are trimmed. When the host's room is short
    the images take turns, so each gets some."""
    lock = f"pool-lock:{settings.PLAYGROUND_DEPLOYMENT}"
    if not cache.add(lock, 1, timeout=300):
        return {}
    try:
        made: dict[str, int] = {}
        for dead in Instance.objects.filter(session__isnull=True).exclude(state__in=LIVE_INSTANCE_STATES):
            if _remove_pooled(dead):
                dead.delete()
        sizes = pool_sizes()
        placeable = set(hosts.placeable_hosts())
        for host in hosts.draining_hosts():  # its pool moves: the other hosts' grow instead
            for extra in Instance.objects.filter(session__isnull=True, host=host, state__in=LIVE_INSTANCE_STATES):
                _discard_pooled(extra)
        for host in hosts.lab_hosts():
            if host not in placeable or not hosts.health_of(host).ok:
                continue  # cordoned: its pool stays as it is
            pooled = [
                instance
                for instance in Instance.objects.filter(
                    session__isnull=True, host=host, state__in=LIVE_INSTANCE_STATES
                ).order_by("-created_at")
                if _still_usable(instance)
            ]
            missing: dict[str, int] = {}
            for image, size in sizes.items():
                kept = [i for i in pooled if i.image == image][:size]
                # An image that just failed here waits (a host that cannot run
                # it would otherwise fail every round).
                missing[image] = 0 if cache.get(_pool_backoff_key(host, image)) else size - len(kept)
                pooled = [i for i in pooled if i not in kept]
            for extra in pooled:
                _discard_pooled(extra)
            health = hosts.health_of(host)
            load = _host_loads().get(host, _Load())  # kept up to date below: one query per host
            made[host] = 0
            while any(n > 0 for n in missing.values()):
                for image in [i for i, n in missing.items() if n > 0]:
                    if _room_left(health, load, reservation(image), 1)[0] < 0:
                        missing[image] = 0  # no room for it: the images take turns in what is left
                        continue
                    row = Instance.objects.create(
                        session=None, number=1, hostname=POOL_HOSTNAME, image=image, host=host
                    )
                    provision_instance(instance_id=row.id)
                    row.refresh_from_db()
                    if row.state in LIVE_INSTANCE_STATES:
                        load.add(reservation(image))
                    if row.state != Instance.State.RUNNING:
                        missing[image] = 0  # the host is struggling: try again after the back-off
                        if settings.PLAYGROUND_POOL_BACKOFF_SECONDS:
                            cache.set(_pool_backoff_key(host, image), row.reason or "failed",
                                      timeout=settings.PLAYGROUND_POOL_BACKOFF_SECONDS)
                            log.warning("pool: %s instances on %s wait %.0f s after a failed start: %s", image,
                                        host, settings.PLAYGROUND_POOL_BACKOFF_SECONDS, row.reason)
                        continue
                    missing[image] -= 1
                    made[host] += 1
        return made
    finally:
        cache.delete(lock)


def _still_usable(instance: Instance) -> bool:
    """A pooled instance that runs (and whose inner engine, if it has one,
    answers) is kept; one that no longer does is removed here, so that no
    learner claims it."""
    if instance.state != Instance.State.RUNNING or hosts.driver_for(instance.host).usable(instance.driver_state or {}):
        return True
    log.warning("pool: %s instance %s is no longer usable; replacing it", instance.image, instance.id)
    _discard_pooled(instance)
    return False


def _pool_backoff_key(host: str, image: str) -> str:
    return f"pool-backoff:{settings.PLAYGROUND_DEPLOYMENT}:{host}:{image}"


def _discard_pooled(instance: Instance) -> None:
    claimed = Instance.objects.filter(id=instance.id, session__isnull=True, state__in=LIVE_INSTANCE_STATES).update(
        state=Instance.State.STOPPED, reason="removed from the pool"
    )
    if claimed and _remove_pooled(instance):
        instance.delete()


def _remove_pooled(instance: Instance) -> bool:
    """Remove a pooled instance's container and network; False if the host balked."""
    instance.refresh_from_db(fields=["driver_state", "pool_network"])
    if not _remove_quietly(instance.host, instance.driver_state):
        return False
    if instance.pool_network:
        try:
            hosts.driver_for(instance.host).remove_network(instance.pool_network)
        except DriverError as exc:
            log.warning("could not remove pool network %s (%s)", instance.pool_network.get("name"), exc.message)
            return False
    return True


def drain_pools() -> int:
    """Remove every pooled instance (an operator shrinking to nothing, or tests)."""
    drained = 0
    for instance in Instance.objects.filter(session__isnull=True):
        _discard_pooled(instance)
        drained += 1
    return drained


def _fail_instance(instance: Instance, reason: str) -> None:
    Instance.objects.filter(id=instance.id, state__in=LIVE_INSTANCE_STATES).update(
        state=Instance.State.FAILED, reason=reason[:300]
    )
    log.warning("instance %s failed: %s", instance.id, reason)
    audit.record("instance.failed", user=instance.session.owner if instance.session else None,
                 session=instance.session_id, instance=instance.id, reason=reason)
    session = instance.session
    if session is None:
        return
    # A session whose every instance failed before it ever ran has failed.
    if not session.instances.exclude(state=Instance.State.FAILED).exists():
        Session.objects.filter(id=session.id, state=Session.State.STARTING).update(
            state=Session.State.FAILED, ended_at=timezone.now(), reason=reason[:200]
        )


def _remove_quietly(host: str, state: dict | None) -> bool:
    if not state:
        return True
    try:
        hosts.driver_for(host).remove_instance(state)
        return True
    except DriverError as exc:
        log.warning("could not remove an instance on %s (%s); the reconciler will", host, exc.message)
        return False


# -- removal and the end of sessions ------------------------------------------------------

def remove_instance(*, instance: Instance) -> None:
    """Remove one instance now; its row goes too, freeing its number."""
    _require_live(instance.session)
    # Claim it so a worker still creating it removes what it made.
    Instance.objects.filter(id=instance.id).update(state=Instance.State.STOPPED, reason="removed")
    instance.refresh_from_db()
    audit.record("instance.removed", user=instance.session.owner, session=instance.session_id,
                 instance=instance.id, hostname=instance.hostname)
    if not _remove_quietly(instance.host, instance.driver_state):
        # Keep the row (stopped) so nothing points at a container the engine may
        # still hold; the reconciler removes it when the host answers.
        return
    instance.delete()


def end_session(*, session: Session, reason: str = "ended by its owner") -> None:
    """End a live session; its containers and network are gone on return."""
    claimed = Session.objects.filter(id=session.id, state__in=Session.LIVE_STATES).update(
        state=Session.State.ENDED, ended_at=timezone.now(), reason=reason
    )
    if not claimed:
        session.refresh_from_db()
        _require_live(session)
    notify_session(session_id=session.id, event={"type": "session.status", "state": "session_over"})
    # Gone before the answer (docs/api.md): a worker already at it is waited for.
    teardown_session(session_id=session.id, wait=TEARDOWN_WAIT_SECONDS)
    log.info("session %s ended: %s", session.id, reason)
    audit.record("session.ended", user=session.owner, session=session.id, reason=reason)


def teardown_session(*, session_id: str, wait: float = 0.0) -> None:
    """Remove every container and the network of a session that is over.
    Idempotent; a copy running elsewhere is waited for up to ``wait`` s."""
    with jobs.lease(f"teardown:{session_id}", wait=wait) as mine:
        if mine:
            _teardown_session(session_id)


def _teardown_session(session_id: str) -> None:
    session = Session.objects.filter(id=session_id).first()
    if session is None or session.is_live:
        return
    for instance in list(session.instances.filter(state__in=LIVE_INSTANCE_STATES)):
        Instance.objects.filter(id=instance.id).update(state=Instance.State.STOPPED, reason=f"session {session.state}")
        instance.refresh_from_db(fields=["driver_state"])
        _remove_quietly(instance.host, instance.driver_state)
    if session.network_state:
        try:
            hosts.driver_for(session.host).remove_network(session.network_state)
        except DriverError as exc:
            log.warning("could not remove the network of %s (%s); the reconciler will", session.id, exc.message)


def extend_session(*, session: Session) -> Session:
    _require_live(session)
    extended = Session.objects.filter(
        id=session.id, state__in=Session.LIVE_STATES, extensions__lt=settings.PLAYGROUND_MAX_EXTENSIONS
    ).update(
        extensions=F("extensions") + 1,
        expires_at=F("expires_at") + timedelta(seconds=settings.PLAYGROUND_EXTENSION),
    )
    session.refresh_from_db()
    if not extended:
        _require_live(session)
        raise LimitReached(f"This session was already extended {session.extensions} time(s), the most allowed.")
    notify_session(session_id=session.id, event={"type": "session.expiry", "expires_at": _iso(session.expires_at)})
    return session


def give_time(*, session: Session, seconds: int, user=None) -> Session:
    """More time for a session from its class's instructor (no cap: their call)."""
    _require_live(session)
    Session.objects.filter(id=session.id, state__in=Session.LIVE_STATES).update(
        expires_at=F("expires_at") + timedelta(seconds=seconds)
    )
    session.refresh_from_db()
    notify_session(session_id=session.id, event={"type": "session.expiry", "expires_at": _iso(session.expires_at)})
    audit.record("session.time_given", user=user, session=session.id, seconds=seconds)
    return session


def tell_session(*, session_id: str, text: str, sender: str) -> None:
    """Show a message on the session's pages (an instructor's broadcast)."""
    notify_session(session_id=session_id, event={"type": "session.message", "text": text, "from": sender})


def expire_due_sessions() -> list[str]:
    """Claim sessions past their lifetime or idle too long; queue their teardown."""
    now = timezone.now()
    idle_since = now - timedelta(seconds=settings.PLAYGROUND_IDLE_TIMEOUT)
    is_due = Q(expires_at__lte=now) | Q(last_activity_at__lte=idle_since)
    due = Session.objects.filter(state__in=Session.LIVE_STATES).filter(is_due)
    due = due.select_related("owner")  # named in the audit log
    expired = []
    for session in due:
        if session.expires_at <= now:
            reason = "its lifetime ran out"
        else:
            reason = f"no activity for {settings.PLAYGROUND_IDLE_TIMEOUT // 60} min"
        # Still due when claimed: an extend (or activity) that committed since
        # the read above wins, and the session lives on.
        claimed = Session.objects.filter(is_due, id=session.id, state__in=Session.LIVE_STATES).update(
            state=Session.State.EXPIRED, ended_at=now, reason=reason
        )
        if claimed:
            expired.append(session.id)
            notify_session(session_id=session.id, event={"type": "session.status", "state": "session_over"})
            transaction.on_commit(lambda sid=session.id: _queue_teardown(sid))
            log.info("session %s expired: %s", session.id, reason)
            audit.record("session.expired", user=session.owner, session=session.id, reason=reason)
    return expired


def recover_lost_jobs() -> dict[str, int]:
    """Queue again the jobs a dead worker (or a lost message) left undone:
    instances still provisioning, sessions over with instances still live,
    template set-ups still pending. A job tried PLAYGROUND_JOB_ATTEMPTS times
    fails its instance, or its set-up, with the reason (playground/jobs.py)."""
    counts = {"requeued": 0, "failed": 0}
    for instance in Instance.objects.select_related("session").filter(state=Instance.State.PROVISIONING):
        verdict = jobs.should_requeue(f"provision:{instance.id}", queued_at=instance.created_at)
        if verdict:
            _queue_provision(instance.id)
            counts["requeued"] += 1
        elif verdict is None:
            metrics.provisioning_failed(image=instance.image, reason="lost", pooled=instance.session_id is None)
            _fail_instance(instance, f"its start was interrupted {settings.PLAYGROUND_JOB_ATTEMPTS} times "
                                     "(no worker finished it); remove it and add another")
            counts["failed"] += 1
    for session in Session.objects.exclude(state__in=Session.LIVE_STATES).filter(
        instances__state__in=LIVE_INSTANCE_STATES
    ).distinct():
        # Never given up on: what the rows say must become true (the
        # reconciler removes the containers meanwhile anyway).
        if jobs.should_requeue(f"teardown:{session.id}", queued_at=session.ended_at or session.created_at):
            _queue_teardown(session.id)
            counts["requeued"] += 1
    for session in Session.objects.filter(state__in=Session.LIVE_STATES, setup__state__in=["pending", "running"]):
        verdict = jobs.should_requeue(f"template:{session.id}", queued_at=session.created_at)
        if verdict:
            _queue_setup(session.id)
            counts["requeued"] += 1
        elif verdict is None:
            _set_setup(session, "failed", f"the set-up was interrupted {settings.PLAYGROUND_JOB_ATTEMPTS} times")
            counts["failed"] += 1
    return counts


def _queue_teardown(session_id: str) -> None:
    from .tasks import teardown_session as task

    jobs.enqueue(task, session_id)


# -- terminals ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TerminalTarget:
    """What the terminal WebSocket needs to know of an instance."""

    instance_id: str
    session_id: str
    state: str
    """The instance's state (``provisioning``, ``running``, ``stopped``, ``failed``)."""
    host: str
    driver_state: dict | None
    expires_at: str
    reason: str
    role: str = "owner"
    """``owner``, or ``instructor`` for a class's instructor watching a learner."""


def terminal_target(*, user, instance_id: str) -> TerminalTarget:
    """The instance of a live session whose terminal ``user`` opens: their
    own, or a learner's in a class they teach (role ``instructor``).

    Raises ``NotFoundError`` for an unknown instance or someone else's (alike,
    existence is not revealed) and ``SessionOver`` once its session ended.
    """
    found = Instance.objects.select_related("session").filter(id=instance_id)
    instance, role = found.filter(session__owner=user).first(), "owner"
    if instance is None:
        # The classes app links a session to its class (``seat``).
        instance, role = found.filter(session__seat__classroom__instructors=user).first(), "instructor"
    if instance is None:
        raise NotFoundError("No such instance.")
    _require_live(instance.session)
    return TerminalTarget(
        instance_id=instance.id,
        session_id=instance.session_id,
        state=instance.state,
        host=instance.host,
        driver_state=instance.driver_state,
        expires_at=_iso(instance.session.expires_at),
        reason=instance.reason,
        role=role,
    )


def _control_key(instance_id: str) -> str:
    return f"terminal-control:{settings.PLAYGROUND_DEPLOYMENT}:{instance_id}"


def terminal_control(*, instance_id: str) -> str:
    """Who may type on an instance's terminal now: ``owner`` or ``instructor``."""
    try:
        return cache.get(_control_key(instance_id)) or "owner"
    except Exception as exc:  # noqa: BLE001 - Redis down: the owner types, as by default
        log.warning("terminal control of %s unknown (%s); the owner has it", instance_id, exc)
        return "owner"


def set_terminal_control(*, target: TerminalTarget, by: str, user=None) -> None:
    """An instructor takes over a learner's terminal (``by="instructor"``) or
    gives it back (``"owner"``); every connection to it is told."""
    if target.role != "instructor":
        raise Forbidden("Only a class's instructor takes over a learner's terminal.")
    if by == "instructor":
        cache.set(_control_key(target.instance_id), "instructor", timeout=12 * 3600)
    else:
        cache.delete(_control_key(target.instance_id))
    notify_session(session_id=target.session_id,
                   event={"type": "session.control", "instance": target.instance_id, "by": by})
    audit.record("terminal.takeover" if by == "instructor" else "terminal.released", user=user,
                 session=target.session_id, instance=target.instance_id)


def session_group(session_id: str) -> str:
    """The channel-layer group of a session's open terminals."""
    return f"session-{session_id}"


def notify_session(*, session_id: str, event: dict) -> None:
    """Send a small event (``session.status``, ``session.expiry``) to the
    session's open terminals once the transaction commits; best effort
    (terminals also notice a session's end when its containers go)."""
    events.broadcast(session_group(session_id), event)


def _iso(moment) -> str:
    """A time as the API writes it (ISO 8601, ``Z`` for UTC)."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


# -- activity ----------------------------------------------------------------------------

def note_activity(*, session_id: str) -> None:
    """Count activity for the idle timeout without a database write each time."""
    flush_key = f"activity-flushed:{session_id}"
    if cache.add(flush_key, 1, timeout=max(1, int(settings.PLAYGROUND_ACTIVITY_FLUSH_SECONDS))):
        Session.objects.filter(id=session_id, state__in=Session.LIVE_STATES).update(last_activity_at=timezone.now())


# -- asking every running instance (ports, stats) ----------------------------------------------

# Work grows with what people watch (docs/performance.md, "Idle sessions"): the periodic port scan and
# stats sampling ask only the instances of sessions somebody read lately
# through the API (the session page polls it; an open terminal alone reads
# neither). A session read after a quiet spell is looked at at once.

def _watch_key(session_id: str) -> str:
    return f"watched:{session_id}"


def note_watched(*, session_ids: list[str], look: Callable[[list[str]], None] | None = None) -> None:
    """Somebody reads these sessions' ports and stats now: keep asking their
    instances for ``PLAYGROUND_WATCH_SECONDS``. Those nobody watched until
    now are looked at at once (``look(ids)``; by default a port scan and a
    stats sample of theirs are queued). Best effort: with Redis down nothing
    is scanned and the API shows none."""
    if not session_ids:
        return
    timeout = max(1, int(settings.PLAYGROUND_WATCH_SECONDS))
    try:
        fresh = [sid for sid in session_ids if cache.add(_watch_key(sid), 1, timeout=timeout)]
        for sid in set(session_ids) - set(fresh):
            cache.touch(_watch_key(sid), timeout)
    except Exception as exc:  # noqa: BLE001 - the read goes on without it
        log.debug("could not note watched sessions (%s)", exc)
        return
    if fresh:
        (look or _look_now)(fresh)


def _look_now(session_ids: list[str]) -> None:
    """Scan the ports of these sessions' instances and sample their stats now."""
    from playground.ports import tasks as port_tasks
    from playground.stats import tasks as stats_tasks

    jobs.enqueue(port_tasks.scan_ports, session_ids)
    jobs.enqueue(stats_tasks.sample_stats, session_ids)


def watched_sessions(session_ids: set[str]) -> set[str]:
    """Those of ``session_ids`` somebody watches now (one cache round trip)."""
    if not session_ids:
        return set()
    keys = {_watch_key(sid): sid for sid in session_ids}
    return {keys[key] for key in cache.get_many(list(keys))}


def ask_running_instances(*, task: str, ask: Callable[[str, dict], T | None], threads: int = 8,
                          session_ids: list[str] | None = None) -> dict[str, T]:
    """``ask(host, driver_state)`` for every running instance of a live
    session that somebody watches (``note_watched``), ``threads`` at a time;
    the answers that are not None, by instance id. One round of ``task`` at
    a time per deployment (a cache lock): a round that finds the previous
    one still going returns {}. With ``session_ids``: those sessions'
    instances only, watched or not, beside any round."""
    lock = f"{task}-lock:{settings.PLAYGROUND_DEPLOYMENT}"
    if session_ids is None and not cache.add(lock, 1, timeout=60):
        return {}
    try:
        live = Instance.objects.filter(state=Instance.State.RUNNING, session__state__in=Session.LIVE_STATES)
        if session_ids is not None:
            live = live.filter(session_id__in=session_ids)
        rows = list(live.values_list("id", "host", "driver_state", "session_id"))
        if session_ids is None:
            watched = watched_sessions({row[3] for row in rows})
            rows = [row for row in rows if row[3] in watched]
        if not rows:
            return {}
        with ThreadPoolExecutor(max_workers=min(threads, len(rows)), thread_name_prefix=task) as pool:
            answers = list(pool.map(lambda row: (row[0], ask(row[1], row[2])), rows))
        return {iid: answer for iid, answer in answers if answer is not None}
    finally:
        if session_ids is None:
            cache.delete(lock)


# -- working in an instance ------------------------------------------------------------------

def _wait_running(instance: Instance, *, deadline: float) -> Instance:
    """Wait until a provisioning instance runs, up to ``deadline`` (monotonic)."""
    pause = 0.01
    while True:
        _require_live(instance.session)
        if instance.state == Instance.State.RUNNING:
            return instance
        if instance.state != Instance.State.PROVISIONING:
            detail = f": {instance.reason}" if instance.reason else ""
            raise NotReady(f"{instance.hostname} is {instance.state}{detail}.")
        if time.monotonic() >= deadline:
            raise NotReady(f"{instance.hostname} did not start in time; try again.")
        time.sleep(pause)
        pause = min(pause * 1.5, 0.1)
        instance.refresh_from_db(fields=["state", "ip", "driver_state", "reason"])
        instance.session.refresh_from_db(fields=["state", "reason"])


def _driver_call(instance: Instance, call):
    try:
        return call(hosts.driver_for(instance.host), instance.driver_state)
    except NotFound:
        _fail_instance(instance, "its container vanished from the lab host")
        raise NotReady(f"{instance.hostname} is gone from its lab host.") from None
    except NotRunning:
        # The row said running, the engine says otherwise: the instance died
        # and the engine watcher has not told us yet (or does not run).
        reason = instance_died(instance=instance) or "its container is not running"
        raise NotReady(f"{instance.hostname} is not running: {reason}.") from None


def exec_command(*, instance: Instance, command: str, timeout: float, activity: bool = True) -> ExecResult:
    """Run ``command`` in the instance. ``activity=False`` for what the
    playground runs on its own (a lab player's automatic checks): it must not
    keep a session the learner walked away from alive."""
    deadline = time.monotonic() + timeout
    instance = _wait_running(instance, deadline=deadline)
    if activity:
        note_activity(session_id=instance.session_id)
    remaining = max(0.1, deadline - time.monotonic())
    _release_database()
    return _driver_call(instance, lambda d, s: d.exec(s, command, timeout=remaining))


def _release_database() -> None:
    """Give this thread's database connection back before a wait on the
    engine (an exec may take up to 600 s): a hundred long execs must not hold
    a hundred connections. Django opens a new one if the caller needs the
    database again. Inside a transaction (a caller's atomic block) the
    connection must stay; callers do not hold one across the wait."""
    if not db.connection.in_atomic_block:
        db.connection.close()


def _check_path(path: str | None) -> str:
    if not path or not path.startswith("/") or "\x00" in path or path.endswith("/"):
        raise Invalid("path must be an absolute file path, e.g. ?path=/root/notes.txt")
    return path


def put_file(*, instance: Instance, path: str | None, data: bytes, timeout: float = 30.0) -> int:
    path = _check_path(path)
    instance = _wait_running(instance, deadline=time.monotonic() + timeout)
    note_activity(session_id=instance.session_id)
    _driver_call(instance, lambda d, s: d.put_file(s, path, data))
    return len(data)


# The interactive shell's current directory: the newest bash on the terminal
# of the login-shell loop (playground-shell, on the terminal relay's pty; in
# an image without the relay, the container's TTY, pts/0), read from /proc;
# the home directory when there is none.
_SHELL_CWD = (
    't=$(ps -o tty= -p "$(pgrep -o -x playground-shel)" 2>/dev/null | tr -d " ");'
    ' p=$(pgrep -n -t "${t:-pts/0}" -x bash 2>/dev/null) && d=$(readlink "/proc/$p/cwd" 2>/dev/null)'
    ' && [ -d "$d" ] && printf "%s" "$d" || printf /root'
)


def check_file_name(name: str | None) -> str:
    if not name or name in (".", "..") or "/" in name or "\x00" in name or len(name.encode()) > 255:
        raise Invalid("name must be a plain file name (no slash, not . or ..), e.g. ?name=notes.txt")
    return name


def shell_cwd(*, instance: Instance, timeout: float = 10.0) -> str:
    """The current directory of the instance's interactive shell (/root if unknown)."""
    result = _driver_call(instance, lambda d, s: d.exec(s, _SHELL_CWD, timeout=timeout))
    cwd = result.output.decode("utf-8", "replace").strip() if result.exit_code == 0 else ""
    if not cwd.startswith("/") or "\n" in cwd or "\x00" in cwd:
        return "/root"
    return cwd


def put_file_in_cwd(*, instance: Instance, name: str | None, data: bytes, timeout: float = 30.0) -> tuple[str, int]:
    """Write ``data`` as ``name`` into the shell's current directory: (path, size)."""
    name = check_file_name(name)
    instance = _wait_running(instance, deadline=time.monotonic() + timeout)
    cwd = shell_cwd(instance=instance)
    path = cwd.rstrip("/") + "/" + name
    return path, put_file(instance=instance, path=path, data=data, timeout=timeout)


def get_file(*, instance: Instance, path: str | None, timeout: float = 30.0) -> bytes:
    path = _check_path(path)
    instance = _wait_running(instance, deadline=time.monotonic() + timeout)
    driver = hosts.driver_for(instance.host)
    try:
        return driver.get_file(instance.driver_state, path)
    except NotRunning:
        reason = instance_died(instance=instance) or "its container is not running"
        raise NotReady(f"{instance.hostname} is not running: {reason}.") from None
    except NotFound:
        if driver.inspect(instance.driver_state).state == "missing":
            _fail_instance(instance, "its container vanished from the lab host")
            raise NotReady(f"{instance.hostname} is gone from its lab host.") from None
        raise NotFoundError(f"No file at {path}.") from None


# -- lab hosts: health and reconciliation --------------------------------------------------

def check_hosts() -> dict[str, bool]:
    """Refresh the view of every host; fail instances of a host silent too long."""
    result = {}
    for host in hosts.lab_hosts():
        health = hosts.probe(host)
        result[host] = health.ok
        down_key = f"host-down-since:{settings.PLAYGROUND_DEPLOYMENT}:{host}"
        if health.ok:
            cache.delete(down_key)
            continue
        cache.add(down_key, health.checked_at, timeout=None)
        down_since = cache.get(down_key, health.checked_at)
        if health.checked_at - down_since >= settings.PLAYGROUND_HOST_DOWN_GRACE:
            fail_instances_on_host(host=host, reason=f"its lab host stopped answering ({health.error})")
    return result


# -- the fleet: adding, cordoning, draining lab hosts ---------------------------------------

def check_new_host(*, url: str) -> None:
    """Invalid unless ``url`` can be a lab host: an address its driver
    accepts (a network engine needs the mutual TLS settings) that answers."""
    if "://" not in url:
        raise Invalid(f"{url!r} is no engine address: give unix:///path/docker.sock or tcp://host:2376.")
    try:
        driver = load_driver(settings.PLAYGROUND_DRIVER, url=url, deployment=settings.PLAYGROUND_DEPLOYMENT,
                             **settings.PLAYGROUND_LAB_HOST_OPTIONS)
        driver.ping()
    except DriverError as exc:
        raise Invalid(f"{url} cannot be a lab host: {exc.message}") from None


def add_host(*, url: str) -> LabHost:
    """Register a lab host (or find it); it takes new instances at once, once
    check_new_host passes."""
    url = url.strip()
    check_new_host(url=url)
    host, created = LabHost.objects.get_or_create(url=url)
    audit.record("lab_host.added" if created else "lab_host.found", host=url)
    hosts.probe(url)
    return host


def set_host_state(*, url: str, state: str, note: str = "") -> LabHost:
    """``active`` (takes new instances), ``cordoned`` (takes none; what runs
    there goes on) or ``draining`` (as cordoned, and its pooled and class
    warm instances are replaced elsewhere by the next pool and warm rounds)."""
    if state not in LabHost.State.values:
        raise Invalid(f"{state!r} is no lab host state: one of {', '.join(LabHost.State.values)}.")
    host = LabHost.objects.filter(url=url).first()
    if host is None:
        raise NotFoundError(f"No lab host {url} is registered.")
    LabHost.objects.filter(pk=host.pk).update(state=state, note=note if state != "active" else "",
                                              changed_at=timezone.now())
    host.refresh_from_db()
    audit.record("lab_host.state", host=url, state=state, note=note)
    log.info("lab host %s is now %s%s", url, state, f" ({note})" if note else "")
    return host


def remove_host(*, url: str) -> None:
    """Forget a lab host that runs nothing of ours any more (drain it first)."""
    live = Instance.objects.filter(host=url, state__in=LIVE_INSTANCE_STATES).count()
    if live:
        raise Invalid(f"{url} still runs {live} instance(s): drain it and wait for its sessions to end.")
    if not LabHost.objects.filter(url=url).delete()[0]:
        raise NotFoundError(f"No lab host {url} is registered.")
    audit.record("lab_host.removed", host=url)


def fleet() -> list[dict]:
    """Every registered lab host as an operator sees it."""
    counts = {
        host: {"instances": n, "pooled": pooled}
        for host, n, pooled in Instance.objects.filter(state__in=LIVE_INSTANCE_STATES).values("host")
        .annotate(n=Count("id"), pooled=Count("id", filter=Q(session__isnull=True)))
        .values_list("host", "n", "pooled")
    }
    loads = _host_loads()
    rows = []
    for host in LabHost.objects.all():
        health = hosts.health_of(host.url)
        load = loads.get(host.url, _Load())
        rows.append({
            "url": host.url, "state": host.state, "note": host.note, "ok": health.ok, "error": health.error,
            **counts.get(host.url, {"instances": 0, "pooled": 0}),
            "memory_reserved": load.memory_bytes, "memory_bytes": health.memory_bytes,
            "memory_available_bytes": health.memory_available_bytes,
            "cpus_reserved": round(load.cpus, 2), "cpus": health.cpus,
        })
    return rows


def fail_instances_on_host(*, host: str, reason: str) -> int:
    doomed = list(Instance.objects.select_related("session").filter(host=host, state__in=LIVE_INSTANCE_STATES))
    for instance in doomed:
        _fail_instance(instance, reason)
    return len(doomed)


def enforce_disk_limit(*, host: str) -> list[str]:
    """End the instances on ``host`` that wrote more than their disk limit.
    On a lab host without quotas (overlay2 on ext4) this is what stops a disk
    fill; on a btrfs one the engine refuses the writes and this only sees
    instances made without a limit. Returns the ids of the instances it ended."""
    usage = hosts.driver_for(host).disk_usage()
    smallest_mb = min([settings.PLAYGROUND_INSTANCE_DISK_MB]
                      + [disk_limit_mb(name) for name in settings.PLAYGROUND_IMAGES])
    over = {iid: used for iid, used in usage.items() if used > smallest_mb * 1024 * 1024}
    ended = []
    for instance in Instance.objects.select_related("session").filter(
        id__in=over, host=host, state__in=LIVE_INSTANCE_STATES
    ):
        limit_mb = disk_limit_mb(instance.image)
        if over[instance.id] <= limit_mb * 1024 * 1024:
            continue
        used_mb = over[instance.id] // (1024 * 1024)
        _fail_instance(
            instance,
            f"stopped: it wrote {used_mb} MB to its disk, over the limit of {limit_mb} MB",
        )
        _remove_quietly(host, instance.driver_state)
        ended.append(instance.id)
    return ended


def reconcile_host(*, host: str) -> dict[str, int]:
    """Remove this deployment's objects that no live row owns; fail instances
    whose container vanished."""
    listed_at = timezone.now()
    objects = hosts.driver_for(host).list_objects()
    live_instances = set(
        Instance.objects.filter(host=host, state__in=LIVE_INSTANCE_STATES)
        .filter(Q(session__isnull=True) | Q(session__state__in=Session.LIVE_STATES))
        .values_list("id", flat=True)
    )
    live_networks = set()
    for sid, network in Session.objects.filter(host=host, state__in=Session.LIVE_STATES).values_list(
        "id", "network_state"
    ):
        live_networks.add(sid)
        if network:  # a network handed over from the pool keeps its key
            live_networks.add(network.get("key"))
    live_networks |= set(
        Instance.objects.filter(host=host, session__isnull=True, state__in=LIVE_INSTANCE_STATES)
        .values_list("id", flat=True)
    )
    removed = 0
    present = set()
    driver = hosts.driver_for(host)
    # Containers first: neither a network nor a volume can go while a
    # container uses it.
    for obj in sorted(objects, key=lambda o: o.kind != "container"):
        if obj.kind == "network":
            owned = obj.network_key in live_networks
        else:
            owned = obj.instance_id in live_instances
            if obj.kind == "container" and owned:
                present.add(obj.instance_id)
        if not owned:
            log.info("reconciler: removing orphan %s %s on %s", obj.kind, obj.name, host)
            try:
                driver.remove_object(obj)
                removed += 1
            except DriverError as exc:
                log.warning("reconciler: could not remove %s (%s)", obj.name, exc.message)
    vanished = 0
    for instance in Instance.objects.select_related("session").filter(
        host=host, state=Instance.State.RUNNING, running_at__lt=listed_at
    ):
        if instance.id not in present:
            _fail_instance(instance, "its container vanished from the lab host")
            vanished += 1
    return {"removed": removed, "vanished": vanished}


# -- engine events: instances that died ----------------------------------------------------
# A process of its own (``manage.py watch_engines``) holds each lab host's
# event stream and calls these, so a dead instance says so within seconds
# instead of at the next reconcile round (or never, for a container that
# stopped but was not removed). The event only says "look": the engine's
# own inspect decides, so a late or repeated event never fails an instance
# that runs.

ENGINE_RESTARTED = "the lab host's engine restarted and did not keep it"


def _death_reason(status, *, engine_restarted: bool) -> str:
    if status.state == "missing":
        return "its container vanished from the lab host"
    code = status.exit_code
    if status.reason == "OOMKilled":
        return f"its container exited (code {code}, out of memory)"
    # 143: SIGTERM, which nobody but a stopping engine sends a sandbox's main process.
    if engine_restarted or code == 143:
        return f"{ENGINE_RESTARTED} (code {code})"
    return f"its container exited (code {code})"


def instance_died(*, instance: Instance, engine_restarted: bool = False) -> str | None:
    """Mark ``instance`` failed if its container really stopped or vanished,
    tell the session's viewers, and return the reason; None (nothing
    changed) while it runs or when the engine does not answer now."""
    try:
        status = hosts.driver_for(instance.host).inspect(instance.driver_state or {})
    except DriverError as exc:
        log.info("engine events: cannot inspect %s on %s now (%s)", instance.id, instance.host, exc.message)
        return None
    if status.state == "running":
        return None
    reason = _death_reason(status, engine_restarted=engine_restarted)
    if not Instance.objects.filter(id=instance.id, state=Instance.State.RUNNING).exists():
        return reason
    _fail_instance(instance, reason)
    if instance.session_id:
        notify_session(session_id=instance.session_id, event={
            "type": "session.status", "state": "exited", "instance": instance.id, "reason": reason,
        })
    return reason


def engine_event(*, host: str, event: EngineEvent) -> str | None:
    """React to one event of ``host``'s engine: the reason when it failed an instance."""
    if event.kind not in ("died", "destroyed"):
        return None  # ``oom`` alone: a process in it was killed, the instance may run on
    instance = Instance.objects.select_related("session").filter(
        id=event.instance_id, host=host, state=Instance.State.RUNNING
    ).first()
    if instance is None:
        return None  # ours to remove (a session ending), or already marked
    return instance_died(instance=instance)


def catch_up_host(*, host: str, engine_restarted: bool = False) -> list[str]:
    """One listing of ``host``: fail the running rows whose container does
    not run (what died while no stream was open). ``engine_restarted``: the
    stream was lost, so a stopped container most likely went with its
    engine. Returns the ids of the instances it failed."""
    listed_at = timezone.now()
    running = {
        obj.instance_id
        for obj in hosts.driver_for(host).list_objects()
        if obj.kind == "container" and obj.running
    }
    failed = []
    for instance in Instance.objects.select_related("session").filter(
        host=host, state=Instance.State.RUNNING, running_at__lt=listed_at
    ).exclude(id__in=running):
        if instance_died(instance=instance, engine_restarted=engine_restarted):
            failed.append(instance.id)
    return failed


def watch_engines(*, stop: threading.Event) -> None:
    """Hold the event stream of every lab host until ``stop`` is set: one
    thread per host, reconnecting when an engine goes and comes back, with
    a ``catch_up_host`` round after every (re)connection."""
    watchers: dict[str, _HostWatcher] = {}
    while True:
        # A host registered later is watched within a round; one removed is let go.
        db.close_old_connections()
        registered = set(hosts.lab_hosts())
        for host in registered - set(watchers):
            watchers[host] = _HostWatcher(host, threading.Event())
            watchers[host].start()
        for host in set(watchers) - registered:
            watcher = watchers.pop(host)
            watcher.stop.set()
            watcher.close()
        if stop.wait(HOST_LIST_SECONDS):
            break
    for watcher in watchers.values():
        watcher.stop.set()
        watcher.close()
    for watcher in watchers.values():
        watcher.join(timeout=10)


HOST_LIST_SECONDS = 5.0
"""How often the engine watcher looks for lab hosts added or removed."""


class _HostWatcher(threading.Thread):
    """The event stream of one lab host, held until ``stop`` is set."""

    RECONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0)

    def __init__(self, host: str, stop: threading.Event) -> None:
        super().__init__(name=f"watch {host}", daemon=True)
        self.host = host
        self.stop = stop
        self.stream = None
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:
            if self.stream is not None:
                self.stream.close()

    def run(self) -> None:
        driver = hosts.driver_for(self.host)
        engine_lost = False  # the stream ended early or the engine did not answer
        failures = 0
        since: float | None = None  # resume point of a planned renewal; None: list instead
        while not self.stop.is_set():
            if failures:
                self.stop.wait(self.RECONNECT_DELAYS[min(failures, len(self.RECONNECT_DELAYS)) - 1])
                if self.stop.is_set():
                    return
            opened_at = time.time()
            # A remote engine can vanish without closing the connection: a
            # stream renewed every few minutes never hangs for longer.
            renew_at = opened_at + settings.PLAYGROUND_ENGINE_EVENTS_RENEW_SECONDS
            try:
                stream = driver.events(since=since, until=renew_at)
            except NotImplementedError:
                log.warning("engine events: the driver of %s has no event stream; not watching it", self.host)
                return
            except DriverError as exc:
                if not engine_lost:
                    log.warning("engine events: %s does not answer (%s); retrying", self.host, exc.message)
                engine_lost, since, failures = True, None, failures + 1
                continue
            with self.lock:
                self.stream = stream
            if self.stop.is_set():
                stream.close()
                return
            try:
                if since is None:
                    db.close_old_connections()
                    failed = catch_up_host(host=self.host, engine_restarted=engine_lost)
                    log.info("engine events: watching %s%s; %d instance(s) found dead", self.host,
                             " again" if engine_lost else "", len(failed))
                engine_lost, failures, since = False, 0, since or opened_at
                for event in stream:
                    since = max(since, event.at)
                    db.close_old_connections()
                    engine_event(host=self.host, event=event)
            except Exception as exc:  # noqa: BLE001 - the database, Redis, the engine: reconnect, catch up
                log.warning("engine events: watching %s failed (%s); reconnecting", self.host, exc)
                stream.close()
                since, failures = None, failures + 1
                continue
            if not self.stop.is_set() and time.time() < renew_at - 1:
                log.warning("engine events: %s went away; reconnecting", self.host)
                engine_lost, since, failures = True, None, 1
