"""Templates and the hot-start pool, on the fake driver (the real engine's side
is in tests/integration/test_templates.py and test_hot_start_pool.py)."""
from __future__ import annotations

import pytest
from django.core.cache import cache

from playground.errors import Invalid, LimitReached
from playground.sessions import actions, hosts
from playground.sessions.models import Instance, Session
from sandboxes.base import DriverError

pytestmark = pytest.mark.django_db


def test_templates_list_only_those_whose_image_exists(settings):
    names = {t["name"] for t in actions.templates()}
    assert names == {"swarm-1m1w", "swarm-3m2w"}
    settings.PLAYGROUND_IMAGES = {"shell": settings.PLAYGROUND_IMAGES["shell"]}
    assert actions.templates() == []
    with pytest.raises(Invalid, match="none here"):
        actions.start_template_session(user=None, template="swarm-1m1w")


def test_a_template_larger_than_the_instance_cap_is_refused(settings, alice):
    settings.PLAYGROUND_MAX_INSTANCES = 4
    with pytest.raises(LimitReached, match="needs 5 instances"):
        actions.start_template_session(user=alice, template="swarm-3m2w")


def test_a_template_session_names_its_instances_by_role(alice, django_capture_on_commit_callbacks, monkeypatch):
    queued = []
    monkeypatch.setattr(actions, "_queue_setup", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        session = actions.start_template_session(user=alice, template="swarm-3m2w")
    hostnames = list(session.instances.order_by("number").values_list("hostname", flat=True))
    assert hostnames == ["manager1", "manager2", "manager3", "worker1", "worker2"]
    assert session.setup["roles"]["worker2"] == "worker"
    assert queued == [session.id]


def test_setup_waits_for_starting_instances_and_fails_when_one_failed(alice):
    session = actions.start_template_session(user=alice, template="swarm-1m1w")
    assert actions.setup_template(session_id=session.id) == "wait"
    Instance.objects.filter(session=session, hostname="worker1").update(state="failed")
    assert actions.setup_template(session_id=session.id) == "failed"
    session.refresh_from_db()
    assert session.setup["state"] == "failed" and "worker1" in session.setup["message"]


def pooled() -> list[Instance]:
    return list(Instance.objects.filter(session__isnull=True))


def test_by_default_the_pool_holds_the_default_image_and_one_docker_instance(settings):
    settings.PLAYGROUND_POOL_SIZE = 2
    assert actions.pool_sizes() == {"shell": 2, "docker": 1}
    hosts.probe("fake://lab1")
    assert sum(actions.fill_pools().values()) == 3
    assert sorted(i.image for i in pooled()) == ["docker", "shell", "shell"]
    # PLAYGROUND_POOL_SIZE=0 (and no PLAYGROUND_POOL_IMAGES) turns it all off.
    settings.PLAYGROUND_POOL_SIZE = 0
    assert actions.pool_sizes() == {"shell": 0}
    actions.fill_pools()
    assert pooled() == []


def test_an_image_that_fails_to_start_waits_before_the_pool_tries_it_again(settings, monkeypatch):
    settings.PLAYGROUND_POOL_IMAGES = {"shell": 1, "docker": 1}
    hosts.probe("fake://lab1")
    driver = hosts.driver_for("fake://lab1")
    real_create = driver.create_instance
    tries = []

    def no_docker(spec):
        if spec.nested_docker:
            tries.append(spec.instance_id)
            raise DriverError("the lab host does not remap user namespaces", permanent=True)
        return real_create(spec)

    monkeypatch.setattr(driver, "create_instance", no_docker)
    actions.fill_pools()
    actions.fill_pools()
    assert len(tries) == 1  # not again on the next round
    assert [i.image for i in pooled()] == ["shell"]
    cache.clear()  # the back-off is over
    actions.fill_pools()
    assert len(tries) == 2


def test_a_pooled_instance_no_longer_usable_is_replaced_before_anyone_claims_it(settings, alice, start):
    settings.PLAYGROUND_POOL_IMAGES = {"docker": 1}
    hosts.probe("fake://lab1")
    actions.fill_pools()
    [broken] = pooled()
    hosts.driver_for("fake://lab1").stop_inner_engine(broken.driver_state)
    actions.fill_pools()
    [fresh] = pooled()
    assert fresh.id != broken.id and fresh.state == "running"
    assert broken.id not in {o.instance_id for o in containers()}
    session = start(user=alice, image="docker")
    assert session.instances.get().id == fresh.id


def test_the_pool_fills_and_a_new_session_takes_a_ready_instance(settings, alice, start):
    settings.PLAYGROUND_POOL_IMAGES = {"shell": 2}
    hosts.probe("fake://lab1")
    made = actions.fill_pools()
    assert sum(made.values()) == 2
    ready = {i.id for i in pooled()}
    assert len(ready) == 2 and all(i.state == "running" and i.pool_network for i in pooled())

    session = start(user=alice)
    [node1] = session.instances.all()
    assert node1.id in ready and node1.state == "running"
    assert session.state == Session.State.RUNNING
    assert session.network_state == node1.pool_network
    # The claim queued a refill (run at once here: Celery is eager in unit tests).
    assert len(pooled()) == 2 and node1.id not in {i.id for i in pooled()}

    # Ending the session removes the claimed container and its network, not the pool.
    actions.end_session(session=session)
    objects = hosts.driver_for("fake://lab1").list_objects()
    assert node1.id not in {o.instance_id for o in objects}
    assert {o.instance_id for o in objects if o.kind == "container"} == {i.id for i in pooled()}


def test_a_smaller_pool_is_trimmed_and_drain_leaves_nothing(settings):
    settings.PLAYGROUND_POOL_IMAGES = {"shell": None}
    settings.PLAYGROUND_POOL_SIZE = 3
    hosts.probe("fake://lab1")
    actions.fill_pools()
    settings.PLAYGROUND_POOL_SIZE = 1
    actions.fill_pools()
    assert len(pooled()) == 1
    assert actions.drain_pools() == 1
    assert pooled() == []
    assert hosts.driver_for("fake://lab1").list_objects() == []


def containers() -> list:
    return [o for o in hosts.driver_for("fake://lab1").list_objects() if o.kind == "container"]


def test_the_pool_holds_the_sizes_it_is_given_per_image(settings):
    settings.PLAYGROUND_POOL_IMAGES = {"shell": 1, "docker": 2}
    hosts.probe("fake://lab1")
    assert sum(actions.fill_pools().values()) == 3
    assert sorted(i.image for i in pooled()) == ["docker", "docker", "shell"]
    assert all(i.state == "running" and i.pool_network for i in pooled())
    # A name alone takes PLAYGROUND_POOL_SIZE.
    settings.PLAYGROUND_POOL_SIZE = 1
    settings.PLAYGROUND_POOL_IMAGES = {"shell": None, "docker": None}
    assert actions.pool_sizes() == {"shell": 1, "docker": 1}


def test_a_docker_session_claims_a_pooled_docker_instance_and_a_shell_one_a_shell_one(settings, alice, bob, start):
    settings.PLAYGROUND_POOL_IMAGES = {"shell": 1, "docker": 1}
    hosts.probe("fake://lab1")
    actions.fill_pools()
    ready = {i.image: i.id for i in pooled()}
    made_before = len(containers())

    docker_session = start(user=alice, image="docker")
    [node1] = docker_session.instances.all()
    assert node1.id == ready["docker"] and node1.state == "running"
    assert docker_session.state == Session.State.RUNNING
    shell_session = start(user=bob)
    assert shell_session.instances.get().id == ready["shell"]
    # Each claim queued a refill, which made one of the image taken.
    assert sorted(i.image for i in pooled()) == ["docker", "shell"]
    assert len(containers()) == made_before + 2


def test_no_pooled_instance_of_another_image_is_claimed(settings, alice, start):
    settings.PLAYGROUND_POOL_IMAGES = {"shell": 2}
    hosts.probe("fake://lab1")
    actions.fill_pools()
    ready = {i.id for i in pooled()}
    session = start(user=alice, image="docker")
    [node1] = session.instances.all()
    assert node1.id not in ready and node1.image == "docker"
    assert {i.id for i in pooled()} == ready


def test_pooled_instances_of_an_image_no_longer_pooled_are_trimmed(settings):
    settings.PLAYGROUND_POOL_IMAGES = {"shell": 1, "docker": 2}
    hosts.probe("fake://lab1")
    actions.fill_pools()
    settings.PLAYGROUND_POOL_IMAGES = {"shell": 2}
    actions.fill_pools()
    assert [i.image for i in pooled()] == ["shell", "shell"]
    assert {o.instance_id for o in containers()} == {i.id for i in pooled()}
    assert actions.drain_pools() == 2
    assert hosts.driver_for("fake://lab1").list_objects() == []


def test_a_short_host_shares_its_room_between_the_pooled_images(settings):
    settings.PLAYGROUND_HOST_CAPACITY = 3
    settings.PLAYGROUND_POOL_IMAGES = {"shell": 3, "docker": 3}
    hosts.probe("fake://lab1")
    assert sum(actions.fill_pools().values()) == 3
    assert sorted(i.image for i in pooled()) == ["docker", "shell", "shell"]


def test_pool_images_are_read_strictly(monkeypatch):
    from playground.settings import PLAYGROUND_IMAGES, env_pool_images

    def read(raw: str):
        monkeypatch.setenv("PLAYGROUND_POOL_IMAGES", raw)
        return env_pool_images("PLAYGROUND_POOL_IMAGES", PLAYGROUND_IMAGES)

    assert read("shell=2, docker=1") == {"shell": 2, "docker": 1}
    assert read("docker") == {"docker": None}
    assert read(" ") == {}
    for wrong, message in (("vim=1", "unknown image 'vim'"), ("docker=x", "not image=count"),
                           ("docker=-1", "fewer than 0")):
        with pytest.raises(ValueError, match=message):
            read(wrong)
