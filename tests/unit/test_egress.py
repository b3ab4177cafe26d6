"""Egress policies (docs/security.md, "Egress"): the installation's default,
an image's (PLAYGROUND_IMAGE_EGRESS) and a lab's (environment.egress), the lab
first; each session's network is made with its policy (fake driver)."""
from __future__ import annotations

import pytest

from playground.errors import Invalid
from playground.labs import actions as lab_actions
from playground.labs.loader import LabInvalid, load_lab
from playground.sessions import actions, hosts
from playground.sessions.models import Instance, Session
from sandboxes import fake
from tests.unit.labs_helpers import MINIMAL, write_lab

pytestmark = pytest.mark.django_db


def network_of(session: Session) -> fake._Network:
    session.refresh_from_db()
    return fake._host("fake://lab1").networks[session.network_state["name"]]


def test_the_installation_the_image_and_the_lab_each_decide_in_turn(settings):
    settings.PLAYGROUND_EGRESS = "session"
    assert actions.egress_policy(image="shell") == "session"
    settings.PLAYGROUND_IMAGES = {**settings.PLAYGROUND_IMAGES, "docker": {**settings.PLAYGROUND_IMAGES["docker"], "egress": "internet"}}
    assert actions.egress_policy(image="docker") == "internet"
    assert actions.egress_policy(image="shell") == "session"
    assert actions.egress_policy(image="docker", lab="none") == "none"
    with pytest.raises(Invalid, match="choose one of: none, session, internet"):
        actions.egress_policy(lab="everywhere")


@pytest.mark.parametrize(("policy", "egress", "isolated"), [
    ("none", False, True), ("session", False, False), ("internet", True, False),
])
def test_a_session_network_is_made_with_its_policy(settings, alice, start, policy, egress, isolated):
    settings.PLAYGROUND_EGRESS = policy
    session = start(user=alice)
    assert session.egress == policy
    network = network_of(session)
    assert (network.egress, network.isolated) == (egress, isolated)


def test_a_lab_sets_its_sessions_policy_and_pooled_instances_of_another_stay_in_the_pool(
    settings, tmp_path, alice, django_capture_on_commit_callbacks
):
    settings.PLAYGROUND_EGRESS = "session"
    settings.PLAYGROUND_POOL_IMAGES = {"shell": 2}
    hosts.probe("fake://lab1")
    actions.fill_pools()
    pooled = set(Instance.objects.filter(session__isnull=True).values_list("id", flat=True))
    assert len(pooled) == 2
    lab_yaml = MINIMAL.replace("environment:\n", "environment:\n  egress: none\n")
    lab_actions.import_lab(lab_def=load_lab(write_lab(tmp_path, lab_yaml)))
    with django_capture_on_commit_callbacks(execute=True):
        session = lab_actions.start_lab(user=alice, slug="hello")
    assert session.egress == "none"
    [node1] = session.instances.all()
    assert node1.id not in pooled  # a pooled instance waits on a "session" network: not this lab's
    assert network_of(session).isolated and not network_of(session).egress


def test_a_nested_docker_instance_is_told_whether_docker_hub_is_reachable(settings):
    assert actions._image_options("docker", "internet")["env"]["PLAYGROUND_EGRESS"] == "1"
    assert actions._image_options("docker", "session")["env"]["PLAYGROUND_EGRESS"] == "0"
    assert actions._image_options("shell", "internet") == {}


def test_a_lab_with_an_unknown_policy_is_refused_with_its_line(tmp_path):
    lab_yaml = MINIMAL.replace("environment:\n", "environment:\n  egress: everywhere\n")
    with pytest.raises(LabInvalid) as caught:
        load_lab(write_lab(tmp_path, lab_yaml))
    text = str(caught.value)
    assert "lab.yaml:7" in text and "egress" in text


def test_the_driver_refuses_a_network_both_open_and_isolated():
    from sandboxes.base import DriverError

    driver = fake.FakeDriver(url="fake://lab1", deployment="test-unit")
    with pytest.raises(DriverError):
        driver.create_network("both", egress=True, isolated=True)
    driver.create_network("n", isolated=True)
    with pytest.raises(DriverError, match="another egress policy"):
        driver.create_network("n")


@pytest.mark.parametrize(("raw", "policy"), [
    ("", "session"), ("false", "session"), ("0", "session"), ("true", "internet"), ("on", "internet"),
    ("none", "none"), ("Internet", "internet"),
])
def test_the_installation_s_policy_takes_the_old_booleans_too(monkeypatch, raw, policy):
    from playground import settings as settings_module

    monkeypatch.setenv("PLAYGROUND_EGRESS", raw)
    assert settings_module.env_egress("PLAYGROUND_EGRESS", "session") == policy


def test_image_policies_are_read_strictly(monkeypatch):
    from playground import settings as settings_module

    images = {"shell": {}, "docker": {}}
    monkeypatch.setenv("PLAYGROUND_IMAGE_EGRESS", "docker=internet, shell=none")
    settings_module.env_image_egress("PLAYGROUND_IMAGE_EGRESS", images)
    assert images == {"shell": {"egress": "none"}, "docker": {"egress": "internet"}}
    for bad in ("docker=everywhere", "nosuch=none", "docker"):
        monkeypatch.setenv("PLAYGROUND_IMAGE_EGRESS", bad)
        with pytest.raises(ValueError, match="PLAYGROUND_IMAGE_EGRESS"):
            settings_module.env_image_egress("PLAYGROUND_IMAGE_EGRESS", {"shell": {}, "docker": {}})
