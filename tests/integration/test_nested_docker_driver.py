"""The driver's nested-Docker profile (``InstanceSpec(nested_docker=True)``).

``TestDockerDriver`` runs against the project's real engine with the docker
image (``PLAYGROUND_TEST_DOCKER_IMAGE``, default ``playground-docker:latest``);
``TestFakeDriver`` runs the tests not marked ``engine`` against the in-memory
``FakeDriver``. Everything is made under a deployment label of this run's own
and the last test of each class checks that nothing labelled is left.
"""

from __future__ import annotations

import os
import secrets

import pytest

from sandboxes.base import (
    LABEL_DEPLOYMENT,
    LABEL_INSTANCE,
    LABEL_KIND,
    Created,
    Driver,
    DriverError,
    InstanceSpec,
)
from sandboxes.docker import DockerDriver
from sandboxes.fake import FakeDriver

ENGINE = os.environ.get("PLAYGROUND_TEST_ENGINE", "unix:///run/playground/docker.sock")
DOCKER_IMAGE = os.environ.get("PLAYGROUND_TEST_DOCKER_IMAGE", "playground-docker:latest")
SHELL_IMAGE = os.environ.get("PLAYGROUND_TEST_IMAGE", "playground-shell:latest")
DEPLOYMENT = f"test-nested-{secrets.token_hex(4)}"


class Lab:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.driver: Driver = (
            DockerDriver(url=ENGINE, deployment=DEPLOYMENT)
            if kind == "docker"
            else FakeDriver(url="fake://nested", deployment=DEPLOYMENT)
        )
        self.instances: list[dict] = []
        self._ids: dict[str, str] = {}  # container id -> the spec's instance id

    def instance(self, *, nested_docker: bool = True, image: str | None = None) -> Created:
        instance_id = f"n{secrets.token_hex(5)}"
        created = self.driver.create_instance(
            InstanceSpec(
                instance_id=instance_id,
                image=image or (DOCKER_IMAGE if nested_docker else SHELL_IMAGE),
                hostname="node1",
                network=None,
                nested_docker=nested_docker,
            )
        )
        self.instances.append(created.state)
        self._ids[created.state["id"]] = instance_id
        return created

    def volumes_of(self, created: Created) -> list:
        return [
            o
            for o in self.driver.list_objects()
            if o.kind == "volume" and o.instance_id == self.instance_id_of(created)
        ]

    def instance_id_of(self, created: Created) -> str:
        return self._ids[created.state["id"]]

    def purge(self) -> None:
        for state in self.instances:
            self.driver.remove_instance(state)
        for obj in sorted(self.driver.list_objects(), key=lambda o: o.kind != "container"):
            self.driver.remove_object(obj)


@pytest.fixture(scope="class")
def lab(request):
    made = Lab(request.cls.kind)
    yield made
    made.purge()


@pytest.fixture(scope="class")
def node(lab):
    return lab.instance()


# A btrfs lab host keeps the inner engine's data in the instance's own file
# system, inside its disk limit: no volume (see
# test_on_btrfs_var_lib_docker_is_the_instances_own). The volume's tests are
# collected only on other engines, and for the fake driver, which makes one
# (tests/conftest.py asks the engine at collection).
needs_the_volume = pytest.mark.engine_storage(unless="btrfs")


class NestedDockerContract:
    kind = ""

    @needs_the_volume
    def test_a_nested_docker_instance_has_a_volume_labelled_as_its_own(self, lab, node):
        volumes = lab.volumes_of(node)
        assert len(volumes) == 1
        labels = volumes[0].labels
        assert labels[LABEL_DEPLOYMENT] == DEPLOYMENT
        assert labels[LABEL_KIND] == "volume"
        assert labels[LABEL_INSTANCE] == lab.instance_id_of(node)

    def test_an_instance_of_the_default_profile_has_no_volume(self, lab):
        plain = lab.instance(nested_docker=False)
        assert lab.volumes_of(plain) == []

    @needs_the_volume
    def test_removing_the_instance_removes_its_volume_and_is_idempotent(self, lab):
        doomed = lab.instance()
        assert lab.volumes_of(doomed)
        lab.driver.remove_instance(doomed.state)
        lab.driver.remove_instance(doomed.state)
        assert lab.volumes_of(doomed) == []
        assert lab.driver.inspect(doomed.state).state == "missing"

    @needs_the_volume
    def test_a_volume_left_without_its_instance_is_listed_and_removable(self, lab):
        orphaned = lab.instance()
        container = [o for o in lab.driver.list_objects() if o.id == orphaned.state["id"]]
        lab.driver.remove_object(container[0])  # as the reconciler does, volume apart
        left = lab.volumes_of(orphaned)
        assert len(left) == 1
        lab.driver.remove_object(left[0])
        lab.driver.remove_object(left[0])
        assert lab.volumes_of(orphaned) == []

    @needs_the_volume
    def test_a_volume_in_use_is_kept_until_its_instance_is_gone(self, lab, node):
        [volume] = lab.volumes_of(node)
        with pytest.raises(DriverError) as caught:
            lab.driver.remove_object(volume)
        assert not caught.value.permanent  # removing the container first helps
        assert lab.volumes_of(node) == [volume]

    @pytest.mark.engine
    def test_the_inner_engine_answers_as_soon_as_the_instance_is_created(self, lab, node):
        result = lab.driver.exec(node.state, "docker version --format '{{.Server.Version}}'")
        assert result.exit_code == 0, result.output
        assert result.output.strip()

    @pytest.mark.engine
    def test_the_instance_gets_capabilities_of_its_user_namespace_but_is_never_privileged(
        self, lab, node
    ):
        host = lab.driver.api.inspect_container(node.state["id"])["HostConfig"]
        assert host["Privileged"] is False
        assert host["CapAdd"] == ["ALL"]
        assert host["CapDrop"] == ["SYS_RESOURCE"]
        assert "apparmor=unconfined" in host["SecurityOpt"]
        # Its own seccomp profile (the JSON itself), never unconfined.
        [seccomp] = [opt for opt in host["SecurityOpt"] if opt.startswith("seccomp=")]
        assert '"add_key"' in seccomp and "unconfined" not in seccomp
        assert "/proc/keys" in host["MaskedPaths"]  # the engine's defaults
        assert "/proc/sys" not in host["ReadonlyPaths"] and "/proc/irq" in host["ReadonlyPaths"]
        assert host["UsernsMode"] == ""  # the engine's remapping applies, not "host"

    @pytest.mark.engine
    @needs_the_volume
    def test_var_lib_docker_is_the_instance_volume(self, lab, node):
        mounts = lab.driver.api.inspect_container(node.state["id"])["Mounts"]
        [volume] = lab.volumes_of(node)
        assert [(m["Type"], m["Name"], m["Destination"]) for m in mounts] == [
            ("volume", volume.name, "/var/lib/docker")
        ]

    @pytest.mark.engine
    @pytest.mark.engine_storage(only="btrfs")  # elsewhere the inner engine's data is a volume
    def test_on_btrfs_var_lib_docker_is_the_instances_own(self, lab, node):
        assert lab.volumes_of(node) == []
        assert lab.driver.api.inspect_container(node.state["id"])["Mounts"] == []
        result = lab.driver.exec(node.state, "docker info --format '{{.Driver}}'")
        assert result.output.strip() == b"overlay2"  # its overlay2 on the instance's btrfs

    @pytest.mark.engine
    def test_the_default_profile_keeps_its_own_confinement(self, lab):
        plain = lab.instance(nested_docker=False)
        host = lab.driver.api.inspect_container(plain.state["id"])["HostConfig"]
        assert "ALL" not in (host["CapAdd"] or [])
        assert not any("unconfined" in opt for opt in host["SecurityOpt"] or [])
        assert host["MaskedPaths"]  # the engine's default list
        assert not lab.driver.api.inspect_container(plain.state["id"])["Mounts"]

    def test_an_instance_is_usable_while_its_inner_engine_answers(self, lab):
        made = lab.instance()
        assert lab.driver.usable(made.state)
        if isinstance(lab.driver, FakeDriver):
            lab.driver.stop_inner_engine(made.state)
        else:  # the engine inside stops; the instance runs on
            lab.driver.exec(made.state, "pkill -x dockerd; while pgrep -x dockerd >/dev/null; do sleep 0.1; done")
        assert lab.driver.inspect(made.state).state == "running"
        assert not lab.driver.usable(made.state)
        lab.driver.remove_instance(made.state)
        assert not lab.driver.usable(made.state)

    def test_an_instance_without_an_inner_engine_is_usable_while_it_runs(self, lab):
        plain = lab.instance(nested_docker=False)
        assert lab.driver.usable(plain.state)
        lab.driver.remove_instance(plain.state)
        assert not lab.driver.usable(plain.state)

    @pytest.mark.engine
    def test_an_inner_engine_that_never_answers_fails_the_instance_and_leaves_nothing(self, lab, monkeypatch):
        # The shell image has no dockerd: its socket never appears.
        monkeypatch.setattr(lab.driver, "inner_engine_timeout", 2.0)
        before = {o.id for o in lab.driver.list_objects()}
        with pytest.raises(DriverError) as caught:
            lab.instance(image=SHELL_IMAGE)
        assert "did not answer within 2s" in caught.value.message
        assert not caught.value.permanent
        assert {o.id for o in lab.driver.list_objects()} == before

    # last: nothing leaks
    def test_cleaning_up_leaves_nothing_labelled_on_the_lab_host(self, lab):
        lab.purge()
        assert lab.driver.list_objects() == []


@pytest.mark.fake_lab_host  # its tests marked engine are not collected (tests/conftest.py)
class TestFakeDriver(NestedDockerContract):
    kind = "fake"


@pytest.mark.engine
class TestDockerDriver(NestedDockerContract):
    kind = "docker"
