"""The ``docker`` image kind in the web layer, against the fake lab host: the
session asks the driver for the nested-Docker profile, whose volume goes with
the instance (and with the reconciler, when its instance is gone)."""
from __future__ import annotations

import pytest

from playground.sessions import actions, hosts
from sandboxes.base import InstanceSpec

pytestmark = pytest.mark.django_db


def volumes() -> list:
    return [o for o in hosts.driver_for("fake://lab1").list_objects() if o.kind == "volume"]


def test_the_docker_image_is_listed_with_a_description():
    listed = {image["name"]: image["description"] for image in actions.images()}
    assert "Docker Engine" in listed["docker"]


def test_a_docker_session_asks_for_the_nested_docker_profile(alice, start):
    session = start(user=alice, image="docker")
    [node1] = session.instances.all()
    assert [v.instance_id for v in volumes()] == [node1.id]


def test_a_shell_session_gets_no_volume(alice, start):
    start(user=alice)
    assert volumes() == []


def test_ending_a_docker_session_removes_its_volume(alice, start):
    session = start(user=alice, image="docker")
    actions.end_session(session=session)
    assert volumes() == []


def test_the_reconciler_removes_a_docker_instance_and_volume_no_row_owns():
    driver = hosts.driver_for("fake://lab1")
    driver.create_instance(InstanceSpec(instance_id="orphan", image="playground-docker:latest",
                                        hostname="node1", network=None, nested_docker=True))
    assert [v.instance_id for v in volumes()] == ["orphan"]
    actions.reconcile_host(host="fake://lab1")
    assert driver.list_objects() == []
