"""The driver contract (sandboxes/base.py), one sentence per test.

``TestDockerDriver`` runs every test against the project's real engine
(``PLAYGROUND_TEST_ENGINE``, default ``unix:///run/playground/docker.sock``)
with the sandbox image ``PLAYGROUND_TEST_IMAGE`` (default
``playground-shell:latest``). ``TestFakeDriver`` runs the same tests against
the in-memory ``FakeDriver``, except those marked ``engine`` (only a real
engine can answer them: networking, limits, exit codes, a real TTY).
``TestShellImage`` checks what learners see in the shell image's terminal.

Every object is made under a deployment label of its own for this run
(``test-contract-<random>``), and the last test of each class checks that
cleaning up leaves nothing labelled on the lab host.
"""

from __future__ import annotations

import itertools
import os
import secrets
import select
import threading
import time

import pytest

from sandboxes.base import (
    LABEL_DEPLOYMENT,
    LABEL_INSTANCE,
    LABEL_KIND,
    LABEL_NETWORK,
    Created,
    Driver,
    DriverError,
    InstanceSpec,
    LabelledObject,
    Limits,
    NotFound,
    NotRunning,
    TerminalStream,
)
from sandboxes.docker import DockerDriver
from sandboxes.fake import BrokenDriver, FakeDriver

ENGINE = os.environ.get("PLAYGROUND_TEST_ENGINE", "unix:///run/playground/docker.sock")
IMAGE = os.environ.get("PLAYGROUND_TEST_IMAGE", "playground-shell:latest")
DEPLOYMENT = f"test-contract-{secrets.token_hex(4)}"

# Limits of node2, distinct from the defaults so the engine's inspect shows ours.
NODE2_LIMITS = Limits(memory_bytes=200 * 1024 * 1024, cpus=0.5, pids=321, log_max_bytes=512 * 1024)


class Lab:
    """A driver of one kind, and the objects the tests made with it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.driver = self.new_driver()
        self.instances: list[dict] = []
        self.networks: list[dict] = []
        self._serial = itertools.count(1)

    @property
    def real(self) -> bool:
        return self.kind == "docker"

    def new_driver(self) -> Driver:
        """Another driver object for the same lab host."""
        if self.real:
            return DockerDriver(url=ENGINE, deployment=DEPLOYMENT)
        return FakeDriver(url="fake://contract", deployment=DEPLOYMENT, images=[IMAGE])

    def unreachable_driver(self) -> Driver:
        if self.real:
            return DockerDriver(url="unix:///nonexistent.sock", deployment=DEPLOYMENT)
        return BrokenDriver(url="fake://unreachable", deployment=DEPLOYMENT)

    def network(self, *, key: str | None = None, egress: bool = False) -> dict:
        state = self.driver.create_network(key or f"net{next(self._serial)}", egress=egress)
        if state not in self.networks:
            self.networks.append(state)
        return state

    def instance_id(self, hint: str = "i") -> str:
        return f"{hint}{next(self._serial)}{secrets.token_hex(4)}"

    def instance(
        self, hostname: str, network: dict | None, *, instance_id: str | None = None, **spec: object
    ) -> Created:
        spec.setdefault("image", IMAGE)
        instance_id = instance_id or self.instance_id()
        created = self.driver.create_instance(
            InstanceSpec(instance_id=instance_id, hostname=hostname, network=network, **spec)
        )
        self.instances.append(created.state)
        return created

    def stop(self, state: dict) -> None:
        """Make the instance stop by itself, as a crash would."""
        if self.real:
            self.driver.api.kill(state["id"])
            wait_for(lambda: self.driver.inspect(state).state == "stopped", "the instance to stop")
        else:
            self.driver.stop_instance(state, exit_code=137, reason="exited")

    def engine_inspect(self, state: dict) -> dict:
        return self.driver.api.inspect_container(state["id"])

    def clean_up(self) -> None:
        for state in self.instances:
            self.driver.remove_instance(state)
        for network in self.networks:
            self.driver.remove_network(network)
        self.instances.clear()
        self.networks.clear()

    def purge(self) -> None:
        """Whatever a failed test left: remove it, so the engine stays clean."""
        objects = self.driver.list_objects()
        for obj in sorted(objects, key=lambda o: o.kind != "container"):
            self.driver.remove_object(obj)


def wait_for(check, what: str, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def read_until(terminal: TerminalStream, wanted: bytes, timeout: float = 5.0) -> bytes:
    """Terminal output up to and including ``wanted``."""
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        remaining = deadline - time.monotonic()
        pending = getattr(terminal, "has_pending", lambda: False)()
        if remaining <= 0 or not (pending or select.select([terminal], [], [], remaining)[0]):
            pytest.fail(f"did not see {wanted!r} within {timeout}s; saw {seen[-600:]!r}")
        chunk = terminal.recv(65536)
        if not chunk:
            pytest.fail(f"the terminal closed before {wanted!r}; saw {seen[-600:]!r}")
        seen += chunk
    return seen


def run_ok(lab: Lab, state: dict, command: str, **kw: object) -> bytes:
    result = lab.driver.exec(state, command, **kw)
    assert result.exit_code == 0, result.output
    return result.output


# -- shared fixtures ----------------------------------------------------------------
@pytest.fixture(scope="class")
def lab(request):
    made = Lab(request.cls.kind)
    if made.real:
        try:
            made.driver.ping()
        except DriverError as exc:
            pytest.fail(f"the test engine {ENGINE} does not answer: {exc}")
    yield made
    try:
        made.clean_up()
    finally:
        made.purge()


@pytest.fixture(scope="class")
def net(lab):
    return lab.network()


@pytest.fixture(scope="class")
def node1(lab, net):
    return lab.instance("node1", net)


@pytest.fixture(scope="class")
def node2(lab, net):
    return lab.instance("node2", net, limits=NODE2_LIMITS)


@pytest.fixture(scope="class")
def loner(lab):
    """An instance on a network of its own."""
    return lab.instance("node1", lab.network())


@pytest.fixture(scope="class")
def fresh_node1(lab):
    """node1 that no other test typed into."""
    return lab.instance("node1", lab.network())


@pytest.fixture(scope="class")
def removed(lab, net):
    created = lab.instance("node9", net)
    lab.driver.remove_instance(created.state)
    return created


@pytest.fixture(scope="class")
def stopped(lab, net):
    created = lab.instance("node8", net)
    lab.stop(created.state)
    return created


# -- the contract -------------------------------------------------------------------
class DriverContract:
    kind = ""

    # networks
    def test_creating_a_network_twice_returns_the_same_network(self, lab):
        first = lab.network(key="twice")
        assert lab.network(key="twice") == first

    def test_networks_of_different_keys_are_different_networks(self, lab, net):
        other = lab.network()
        assert other["id"] != net["id"]

    @pytest.mark.engine
    def test_instances_on_one_network_reach_each_other_by_hostname(self, lab, node1, node2):
        assert b"node2" in run_ok(lab, node1.state, "ping -c1 -W2 node2")
        assert b"node1" in run_ok(lab, node2.state, "ping -c1 -W2 node1")

    @pytest.mark.engine
    def test_an_instance_on_another_network_reaches_them_neither_by_name_nor_by_address(
        self, lab, node1, loner
    ):
        # Unknown names get no answer on a network without egress: keep the wait short.
        no_wait = "RES_OPTIONS='timeout:1 attempts:1'"
        assert lab.driver.exec(loner.state, f"{no_wait} ping -c1 -W1 node2").exit_code != 0
        assert lab.driver.exec(loner.state, f"ping -c1 -W1 {node1.ip}").exit_code != 0

    # instances
    def test_a_new_instance_runs_with_an_address_on_its_network(self, lab, node1):
        status = lab.driver.inspect(node1.state)
        assert status.state == "running"
        assert node1.ip and status.ip == node1.ip

    def test_instances_and_networks_carry_the_playground_labels_and_names(self, lab, node1):
        network = lab.network(key="labelled")
        instance_id = lab.instance_id("labelled")
        lab.instance("node1", network, instance_id=instance_id)
        listed = {o.name: o for o in lab.driver.list_objects()}
        container = listed[f"pg-{DEPLOYMENT}-{instance_id}"]
        assert (container.kind, container.instance_id) == ("container", instance_id)
        # (Besides any labels the image itself carries.)
        assert (
            container.labels.items()
            >= {
                LABEL_DEPLOYMENT: DEPLOYMENT,
                LABEL_KIND: "instance",
                LABEL_INSTANCE: instance_id,
            }.items()
        )
        assert (
            listed[f"pg-{DEPLOYMENT}-labelled"].kind,
            listed[f"pg-{DEPLOYMENT}-labelled"].labels,
        ) == (
            "network",
            {LABEL_DEPLOYMENT: DEPLOYMENT, LABEL_KIND: "network", LABEL_NETWORK: "labelled"},
        )

    @pytest.mark.engine
    def test_the_engine_applies_the_limits_and_confinement_of_the_spec(self, lab, node2):
        info = lab.engine_inspect(node2.state)
        host = info["HostConfig"]
        assert host["Memory"] == NODE2_LIMITS.memory_bytes
        assert host["MemorySwap"] == NODE2_LIMITS.memory_bytes  # no swap
        assert host["NanoCpus"] == 500_000_000
        assert host["PidsLimit"] == 321
        assert host["LogConfig"] == {
            "Type": "json-file",
            "Config": {"max-size": str(256 * 1024), "max-file": "2"},  # half the cap each
        }
        assert host["Init"] is True
        assert host["SecurityOpt"] == ["no-new-privileges"]  # and so the default seccomp profile
        assert host["CapDrop"] == ["ALL"]
        assert sorted(host["CapAdd"]) == sorted(NODE2_LIMITS.capabilities)
        assert not host["Privileged"] and not host["Binds"] and not info["Mounts"]
        assert (
            info["Config"]["Tty"]
            and info["Config"]["OpenStdin"]
            and not info["Config"]["StdinOnce"]
        )
        assert info["Config"]["Hostname"] == "node2"
        assert "TERM=xterm-256color" in info["Config"]["Env"]
        assert info["Config"]["Labels"][LABEL_INSTANCE] in info["Name"]

    def test_a_pooled_instance_joins_a_network_later_under_a_hostname(self, lab, net, node1):
        pooled = lab.instance("node3", None)
        assert pooled.ip is None
        joined = lab.driver.connect_instance(pooled.state, net, hostname="node3")
        lab.instances[lab.instances.index(pooled.state)] = joined.state
        assert joined.ip and joined.ip != node1.ip
        assert lab.driver.inspect(joined.state).ip == joined.ip
        assert lab.driver.connect_instance(pooled.state, net, hostname="node3").ip == joined.ip
        if lab.real:
            assert b"node3" in run_ok(lab, node1.state, "ping -c1 -W2 node3")

    def test_a_removed_instance_is_missing_and_removing_it_again_is_fine(self, lab, removed):
        assert lab.driver.inspect(removed.state).state == "missing"
        lab.driver.remove_instance(removed.state)

    def test_calls_on_a_removed_instance_raise_not_found(self, lab, removed):
        with pytest.raises(NotFound):
            lab.driver.exec(removed.state, "true")
        with pytest.raises(NotFound):
            lab.driver.put_file(removed.state, "/tmp/x", b"x")
        with pytest.raises(NotFound):
            lab.driver.get_file(removed.state, "/etc/hostname")
        with pytest.raises(NotFound):
            lab.driver.attach(removed.state)

    def test_a_stopped_instance_is_reported_stopped_with_its_exit_code(self, lab, stopped):
        status = lab.driver.inspect(stopped.state)
        assert (status.state, status.exit_code) == ("stopped", 137)
        assert status.reason

    def test_exec_on_a_stopped_instance_is_a_clear_error_not_a_missing_one(self, lab, stopped):
        with pytest.raises(DriverError) as caught:
            lab.driver.exec(stopped.state, "true")
        assert not isinstance(caught.value, NotFound)
        assert "not running" in caught.value.message

    def test_attaching_to_a_stopped_instance_gives_a_stream_that_ends(self, lab, stopped):
        terminal = lab.driver.attach(stopped.state)
        try:
            assert select.select([terminal], [], [], 5)[0] and terminal.recv(1024) == b""
        finally:
            terminal.close()

    def test_an_unknown_image_is_a_permanent_error_naming_it(self, lab, net):
        with pytest.raises(DriverError) as caught:
            lab.instance("node1", net, image="playground-no-such-image:latest")
        assert caught.value.permanent
        assert "playground-no-such-image:latest" in caught.value.message

    def test_an_unreachable_lab_host_is_a_transient_error(self, lab, net):
        unreachable = lab.unreachable_driver()
        for call in (
            unreachable.ping,
            lambda: unreachable.create_network("net-x"),
            lambda: unreachable.create_instance(InstanceSpec("x1", IMAGE, "node1", None)),
        ):
            with pytest.raises(DriverError) as caught:
                call()
            assert not caught.value.permanent
            assert "lab host unreachable" in caught.value.message

    # the host's capacity
    def test_capacity_gives_the_hosts_memory_and_cpus(self, lab):
        found = lab.driver.capacity()
        assert found.memory_bytes > 0 and found.cpus > 0
        if lab.real:  # the project's engine runs on this machine
            meminfo = dict(line.split(":", 1) for line in open("/proc/meminfo").read().splitlines())  # noqa: SIM115 - a one-shot read
            assert found.memory_bytes == int(meminfo["MemTotal"].split()[0]) * 1024
            assert found.cpus == os.cpu_count()
            assert 0 < found.memory_available_bytes < found.memory_bytes

    @pytest.mark.engine
    def test_a_remote_hosts_free_memory_is_read_in_a_running_instance(self, lab, node1):
        remote = lab.new_driver()
        remote.url = "tcp://lab-host.invalid:2376"  # as if over the network; the client stays the local one
        available = remote.capacity().memory_available_bytes
        assert available is not None and 0 < available < remote.capacity().memory_bytes
        empty = DockerDriver(url=ENGINE, deployment=f"{DEPLOYMENT}-none")  # a deployment running nothing there
        empty.url = remote.url
        assert empty.capacity().memory_available_bytes is None  # nothing to read it in

    # exec
    def test_exec_returns_the_output_of_a_command(self, lab, node1):
        result = lab.driver.exec(node1.state, "echo hello contract")
        assert (result.exit_code, result.output) == (0, b"hello contract\n")

    @pytest.mark.engine
    def test_exec_returns_the_exit_code_and_both_output_streams(self, lab, node1):
        result = lab.driver.exec(node1.state, "echo out; echo err >&2; hostname; exit 3")
        assert result.exit_code == 3
        assert b"out\n" in result.output and b"err\n" in result.output
        assert b"node1\n" in result.output

    @pytest.mark.engine
    def test_exec_past_its_timeout_returns_124_promptly_and_kills_the_command(self, lab, node1):
        started = time.monotonic()
        result = lab.driver.exec(node1.state, "echo started; sleep 37", timeout=1)
        assert time.monotonic() - started < 2.5
        assert (result.exit_code, result.output) == (124, b"started\n")

        def sleep_is_gone() -> bool:
            listing = run_ok(lab, node1.state, "cat /proc/[0-9]*/cmdline; true")
            return b"sleep\x0037" not in listing and b"sleep 37" not in listing

        wait_for(sleep_is_gone, "the timed-out command to be killed")

    def test_exec_output_is_capped(self, lab, node1):
        driver = lab.new_driver()
        driver.exec_output_limit = 100
        result = driver.exec(node1.state, "echo " + "x" * 5000)
        assert result.output == b"x" * 100

    # files
    def test_a_file_put_into_a_new_nested_directory_reads_back_byte_for_byte(self, lab, node1):
        data = bytes(range(256)) * 64 + os.urandom(4096) + b"\0\r\n"
        path = f"/tmp/contract-{secrets.token_hex(3)}/a/b/data.bin"
        lab.driver.put_file(node1.state, path, data)
        assert lab.driver.get_file(node1.state, path) == data
        lab.driver.put_file(node1.state, path, b"shorter")
        assert lab.driver.get_file(node1.state, path) == b"shorter"

    def test_putting_a_file_where_a_directory_is_fails_and_keeps_the_directory(self, lab, node1):
        lab.driver.put_file(node1.state, "/tmp/kept/inside.txt", b"inside")
        with pytest.raises(DriverError) as caught:
            lab.driver.put_file(node1.state, "/tmp/kept", b"over")
        assert caught.value.permanent
        assert lab.driver.get_file(node1.state, "/tmp/kept/inside.txt") == b"inside"
        with pytest.raises(DriverError) as caught:
            lab.driver.put_file(node1.state, "/tmp/kept/inside.txt/below", b"under a file")
        assert caught.value.permanent

    @pytest.mark.engine
    def test_a_put_file_is_root_owned_0644_and_existing_directories_keep_their_mode(
        self, lab, node1
    ):
        run_ok(lab, node1.state, "mkdir -p /tmp/shared && chmod 1777 /tmp/shared")
        lab.driver.put_file(node1.state, "/tmp/shared/new/file.txt", b"hi")
        listing = run_ok(
            lab, node1.state, "ls -ldn /tmp/shared /tmp/shared/new /tmp/shared/new/file.txt"
        )
        shared, new, written = listing.decode().splitlines()
        assert shared.startswith("drwxrwxrwt")
        assert new.startswith("drwxr-xr-x")
        assert written.startswith("-rw-r--r--") and written.split()[2:4] == ["0", "0"]

    @pytest.mark.engine
    def test_get_file_follows_a_symbolic_link_to_a_regular_file(self, lab, node1):
        run_ok(lab, node1.state, "ln -sf /etc/hostname /tmp/link-to-hostname")
        assert lab.driver.get_file(node1.state, "/tmp/link-to-hostname") == b"node1\n"

    def test_getting_a_missing_file_raises_not_found(self, lab, node1):
        with pytest.raises(NotFound):
            lab.driver.get_file(node1.state, "/tmp/no-such-file")

    def test_getting_a_directory_is_a_permanent_error(self, lab, node1):
        with pytest.raises(DriverError) as caught:
            lab.driver.get_file(node1.state, "/tmp")
        assert caught.value.permanent and not isinstance(caught.value, NotFound)
        assert "is a directory" in caught.value.message

    def test_getting_a_file_over_the_size_limit_is_a_permanent_error(self, lab, node1):
        lab.driver.put_file(node1.state, "/tmp/big.bin", b"z" * 100)
        driver = lab.new_driver()
        driver.file_size_limit = 99
        with pytest.raises(DriverError) as caught:
            driver.get_file(node1.state, "/tmp/big.bin")
        assert caught.value.permanent

    def test_a_relative_path_is_a_permanent_error(self, lab, node1):
        for call in (
            lambda: lab.driver.put_file(node1.state, "tmp/x", b"x"),
            lambda: lab.driver.get_file(node1.state, "etc/hostname"),
        ):
            with pytest.raises(DriverError) as caught:
                call()
            assert caught.value.permanent

    # the terminal
    @pytest.mark.engine
    def test_input_on_an_attachment_reaches_the_shell_and_its_output_comes_back(self, lab, node1):
        terminal = lab.driver.attach(node1.state)
        try:
            terminal.sendall(b"echo hi-$((40+2))\n")
            read_until(terminal, b"hi-42")
        finally:
            terminal.close()

    def test_two_attachments_see_the_same_output(self, lab, node1):
        first, second = lab.driver.attach(node1.state), lab.driver.attach(node1.state)
        try:
            first.sendall(b"echo both-$((2+3))\n")
            wanted = b"both-5" if lab.real else b"both-$((2+3))"
            read_until(first, wanted)
            read_until(second, wanted)
        finally:
            first.close()
            second.close()

    @pytest.mark.engine
    def test_resizing_the_terminal_changes_what_the_shell_sees(self, lab, node1):
        lab.driver.resize(node1.state, cols=123, rows=45)
        terminal = lab.driver.attach(node1.state)
        try:
            terminal.sendall(b"stty size\n")
            read_until(terminal, b"45 123")
        finally:
            terminal.close()

    def test_recent_output_replays_what_the_terminal_showed(self, lab, node1):
        terminal = lab.driver.attach(node1.state)
        try:
            terminal.sendall(b"echo replay-$((6*7))\n")
            wanted = b"replay-42" if lab.real else b"replay-$((6*7))"
            read_until(terminal, wanted)
        finally:
            terminal.close()
        # The engine writes its log a moment after the output went out.
        wait_for(
            lambda: wanted in lab.driver.recent_output(node1.state, max_bytes=64 * 1024),
            "the output to reach the replay",
        )
        assert len(lab.driver.recent_output(node1.state, max_bytes=10)) <= 10

    def test_an_attachment_with_replay_starts_with_the_recent_output(self, lab, node1):
        terminal = lab.driver.attach(node1.state)
        try:
            terminal.sendall(b"echo seam-$((5*5))\n")
            wanted = b"seam-25" if lab.real else b"seam-$((5*5))"
            read_until(terminal, wanted)
        finally:
            terminal.close()
        wait_for(
            lambda: wanted in lab.driver.recent_output(node1.state, max_bytes=64 * 1024),
            "the output to reach the log",
        )
        replayed = lab.driver.attach(node1.state, replay=True)
        try:
            read_until(replayed, wanted)  # nothing typed: it comes from the replay
        finally:
            replayed.close()

    def test_a_non_blocking_attachment_raises_blocking_io_error_when_quiet(self, lab, node1):
        terminal = lab.driver.attach(node1.state)
        try:
            terminal.setblocking(False)
            with pytest.raises(BlockingIOError):
                while terminal.recv(65536):  # whatever came with the answer
                    pass
            sent = 0
            line = b"echo nb-$((1+2))\n"
            while sent < len(line):
                sent += terminal.send(line[sent:])
            wanted = b"nb-3" if lab.real else b"nb-$((1+2))"
            seen = b""
            deadline = time.monotonic() + 5
            while wanted not in seen and time.monotonic() < deadline:
                select.select([terminal], [], [], 0.5)
                try:
                    chunk = terminal.recv(65536)
                except BlockingIOError:
                    continue
                assert chunk, "the terminal closed"
                seen += chunk
            assert wanted in seen
        finally:
            terminal.close()

    def test_closing_an_attachment_leaves_the_instance_running(self, lab, node1):
        lab.driver.attach(node1.state).close()
        assert lab.driver.inspect(node1.state).state == "running"

    # housekeeping
    def test_listed_objects_can_be_removed_once_or_twice(self, lab):
        network = lab.network()
        created = lab.instance("node1", network)
        ours = [
            o
            for o in lab.driver.list_objects()
            if o.id == created.state["id"] or o.id == network["id"]
        ]
        assert sorted(o.kind for o in ours) == ["container", "network"]
        for obj in sorted(ours, key=lambda o: o.kind == "network"):
            lab.driver.remove_object(obj)
            lab.driver.remove_object(obj)
        listed = {o.id for o in lab.driver.list_objects()}
        assert created.state["id"] not in listed and network["id"] not in listed
        assert lab.driver.inspect(created.state).state == "missing"

    def test_objects_of_another_deployment_are_neither_listed_nor_removed(self, lab):
        stranger = LabelledObject(
            "container", "0" * 64, "pg-someone-else-1", {LABEL_DEPLOYMENT: "someone-else"}
        )
        with pytest.raises(DriverError) as caught:
            lab.driver.remove_object(stranger)
        assert caught.value.permanent
        assert all(o.labels[LABEL_DEPLOYMENT] == DEPLOYMENT for o in lab.driver.list_objects())

    # events
    def test_the_event_stream_tells_of_this_deployments_instances_dying_and_going(self, lab, net):
        begun = time.time() - 1
        stream = lab.driver.events()
        seen: list = []
        reader = threading.Thread(target=lambda: seen.extend(stream), daemon=True)
        reader.start()
        try:
            iid = lab.instance_id("events")
            created = lab.instance("node7", net, instance_id=iid)
            # Listing tells a running container from a stopped one.
            assert [o.running for o in lab.driver.list_objects() if o.instance_id == iid] == [True]
            lab.stop(created.state)
            assert [o.running for o in lab.driver.list_objects() if o.instance_id == iid] == [False]
            lab.driver.remove_instance(created.state)
            wait_for(lambda: any(e.instance_id == iid and e.kind == "destroyed" for e in seen),
                     "the stream to tell of the removal")
        finally:
            stream.close()
            reader.join(5)
        assert not reader.is_alive(), "closing the stream from another thread ends its iteration"
        ours = [(e.kind, e.exit_code) for e in seen if e.instance_id == iid]
        assert ours == [("started", None), ("died", 137), ("destroyed", None)]
        known = {o.instance_id for o in lab.driver.list_objects()} | {iid}
        assert {e.instance_id for e in seen} <= known  # this deployment's only
        # What happened since a past moment, up to a later one: the stream then ends by itself.
        replayed = list(lab.driver.events(since=begun, until=time.time() + 0.5))
        assert [e.kind for e in replayed if e.instance_id == iid] == ["started", "died", "destroyed"]
        with pytest.raises(DriverError) as caught:
            lab.unreachable_driver().events()
        assert not caught.value.permanent

    def test_calls_needing_a_running_instance_on_a_stopped_one_raise_not_running(self, lab, stopped):
        with pytest.raises(NotRunning):
            lab.driver.exec(stopped.state, "true")
        with pytest.raises(NotRunning):
            lab.driver.listening_ports(stopped.state)

    # last: nothing leaks
    def test_cleaning_up_leaves_nothing_labelled_on_the_lab_host(self, lab):
        lab.clean_up()
        assert lab.driver.list_objects() == []


@pytest.mark.engine
class TestDockerDriver(DriverContract):
    kind = "docker"


@pytest.mark.fake_lab_host  # its tests marked engine are not collected (tests/conftest.py)
class TestFakeDriver(DriverContract):
    kind = "fake"


# -- the shell image, as a learner sees it -------------------------------------------
@pytest.mark.engine
class TestShellImage:
    kind = "docker"

    def test_the_prompt_shows_root_at_the_hostname(self, lab, fresh_node1):
        terminal = lab.driver.attach(fresh_node1.state)
        try:
            terminal.sendall(b"\n")
            read_until(terminal, b"root@node1")
        finally:
            terminal.close()

    def test_typing_exit_gives_a_new_prompt_and_the_instance_keeps_running(self, lab, fresh_node1):
        terminal = lab.driver.attach(fresh_node1.state)
        try:
            terminal.sendall(b"exit\n")
            seen = read_until(terminal, b"exit")
            if b"root@node1" not in seen.split(b"exit", 1)[1]:
                read_until(terminal, b"root@node1")
            terminal.sendall(b"echo still-$((1+1))\n")
            read_until(terminal, b"still-2")
        finally:
            terminal.close()
        assert lab.driver.inspect(fresh_node1.state).state == "running"

    def test_cleaning_up_leaves_nothing_labelled_on_the_lab_host(self, lab):
        lab.clean_up()
        assert lab.driver.list_objects() == []
