"""The disk watchdog (actions.enforce_disk_limit) and the shell profile's
capability set, against the fake driver."""
from __future__ import annotations

import pytest

from playground.sessions import actions, hosts

pytestmark = pytest.mark.django_db


def test_it_ends_an_instance_that_wrote_more_than_the_limit(alice, start, settings):
    settings.PLAYGROUND_INSTANCE_DISK_MB = 1
    session = start(user=alice)
    node1 = session.instances.get()
    driver = hosts.driver_for("fake://lab1")
    driver.put_file(node1.driver_state, "/root/big", b"x" * (2 * 1024 * 1024))

    ended = actions.enforce_disk_limit(host="fake://lab1")

    assert ended == [node1.id]
    node1.refresh_from_db()
    assert node1.state == "failed"
    assert "over the limit of 1 MB" in node1.reason
    assert driver.inspect(node1.driver_state).state == "missing"


def test_it_leaves_instances_within_the_limit_alone(alice, start, settings):
    settings.PLAYGROUND_INSTANCE_DISK_MB = 3
    session = start(user=alice)
    node1 = session.instances.get()
    hosts.driver_for("fake://lab1").put_file(node1.driver_state, "/root/big", b"x" * (2 * 1024 * 1024))

    assert actions.enforce_disk_limit(host="fake://lab1") == []
    node1.refresh_from_db()
    assert node1.state == "running"


def test_instances_get_the_configured_capabilities(settings):
    settings.PLAYGROUND_INSTANCE_CAPABILITIES = ["CHOWN", "KILL"]
    assert actions.instance_limits().capabilities == ("CHOWN", "KILL")


def test_an_images_own_disk_limit_applies_to_its_instances(alice, start, settings):
    settings.PLAYGROUND_INSTANCE_DISK_MB = 1
    shell = {**settings.PLAYGROUND_IMAGES["shell"], "disk_mb": 3}
    settings.PLAYGROUND_IMAGES = {**settings.PLAYGROUND_IMAGES, "shell": shell}
    session = start(user=alice)
    node1 = session.instances.get()
    hosts.driver_for("fake://lab1").put_file(node1.driver_state, "/root/big", b"x" * (2 * 1024 * 1024))

    assert actions.enforce_disk_limit(host="fake://lab1") == []
    assert actions.instance_limits("shell").disk_bytes == 3 * 1024 * 1024


def test_the_docker_image_gets_a_larger_disk_by_default_and_the_setting_sets_any_image(monkeypatch):
    from playground import settings as module

    assert module.PLAYGROUND_IMAGES["docker"]["disk_mb"] == 8192
    images = {"shell": {}, "docker": {"disk_mb": 8192}}
    monkeypatch.setenv("PLAYGROUND_IMAGE_DISK_MB", "docker=4096, shell=100")
    module.env_image_disk("PLAYGROUND_IMAGE_DISK_MB", images)
    assert images == {"shell": {"disk_mb": 100}, "docker": {"disk_mb": 4096}}
    for bad in ("nope=1", "shell=0", "shell=lots"):
        monkeypatch.setenv("PLAYGROUND_IMAGE_DISK_MB", bad)
        with pytest.raises(ValueError):
            module.env_image_disk("PLAYGROUND_IMAGE_DISK_MB", images)
