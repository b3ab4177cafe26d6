"""Docker inside an instance of the ``docker`` image, through the real stack:
the API, the Celery worker, the lab-host engine and the engine inside.

The first tests build their images inside the instance from ``FROM scratch``
and the instance's own static busybox; the last ones pull Docker Hub's names
(hello-world, nginx, python) from the lab host's read-only registry mirror.
"""
from __future__ import annotations

import os

import pytest
import requests

from tests.integration.conftest import wait_instance
from tests.stack import wait_for

pytestmark = [pytest.mark.engine, pytest.mark.stack]

DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /www && echo hello from a nested container > /www/index.html
CMD ["httpd", "-f", "-p", "80", "-h", "/www"]
"""

COMPOSE = """\
version: "3.8"
services:
  web:
    image: tiny
    ports:
      - "8081:80"
"""

# Poll inside the instance: a server just started may not listen yet.
CURL_UNTIL_IT_ANSWERS = (
    "for i in $(seq 100); do curl -sf http://127.0.0.1:{port}/ && exit 0; sleep 0.2; done; exit 1"
)


class Node:
    """The one instance of a docker session, driven through the exec API."""

    def __init__(self, stack, client, session: dict) -> None:
        self.stack = stack
        self.client = client
        self.session = session
        self.id = session["instances"][0]["id"]
        self.url = f"{stack.url}/api/sessions/{session['id']}/instances/{self.id}"

    def sh(self, command: str, *, timeout: int = 90) -> tuple[int, str]:
        answer = self.client.post(
            self.url + "/exec/", json={"command": command, "timeout": timeout}, timeout=timeout + 30
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        return body["exit_code"], body["output"]

    def ok(self, command: str, *, timeout: int = 90) -> str:
        exit_code, output = self.sh(command, timeout=timeout)
        assert exit_code == 0, f"{command!r} exited {exit_code}:\n{output}"
        return output

    def put(self, path: str, text: str) -> None:
        answer = self.client.put(self.url + f"/files/?path={path}", data=text.encode(), timeout=30)
        assert answer.status_code == 201, answer.text


def start_docker_session(stack, client) -> tuple[dict, Node]:
    response = client.post(stack.url + "/api/sessions/", json={"image": "docker"}, timeout=30)
    assert response.status_code == 201, response.text
    session = response.json()
    assert session["instances"][0]["image"] == "docker"
    node = session["instances"][0]
    wait_instance(stack, client, session["id"], node["id"], "running", timeout=90)
    return session, Node(stack, client, session)


@pytest.fixture(scope="module")
def node(stack):
    client = stack.client("alice")
    session, made = start_docker_session(stack, client)
    yield made
    client.delete(f"{stack.url}/api/sessions/{session['id']}/", timeout=60)


@pytest.fixture(scope="module")
def tiny(node):
    """The image ``tiny`` built inside the instance; the first build's output."""
    node.ok("mkdir -p /root/tiny && cp /bin/busybox /root/tiny/busybox")
    node.put("/root/tiny/Dockerfile", DOCKERFILE)
    return node.ok("cd /root/tiny && docker build -t tiny .", timeout=120)


def instance_volume(engine, instance_id: str) -> list[dict]:
    selector = {"label": [f"playground.instance={instance_id}", "playground.kind=volume"]}
    return (engine.volumes(filters=selector) or {}).get("Volumes") or []


def test_the_docker_image_is_listed(stack, alice):
    images = alice.get(stack.url + "/api/images/", timeout=10).json()
    assert "docker" in {image["name"] for image in images}


def test_the_inner_engine_answers_once_the_instance_runs(node):
    assert node.ok("docker info --format '{{.DefaultRuntime}} {{.Driver}}'").split() == [
        "crun",
        "overlay2",
    ]


def test_docker_build_makes_an_image_that_docker_run_runs(node, tiny):
    assert "Successfully tagged tiny:latest" in tiny
    assert node.ok("docker run --rm tiny echo hi from inside").strip() == "hi from inside"


def test_a_second_build_uses_the_layer_cache(node, tiny):
    again = node.ok("cd /root/tiny && docker build -t tiny .", timeout=120)
    assert again.count("Using cache") >= 3, again


def test_a_published_port_answers_inside_the_instance(node, tiny):
    node.ok("docker run -d --name web -p 8080:80 tiny")
    try:
        page = node.ok(CURL_UNTIL_IT_ANSWERS.format(port=8080), timeout=60)
        assert page.strip() == "hello from a nested container"
    finally:
        node.sh("docker rm -f web")


def test_docker_compose_up_starts_the_services_of_a_compose_file(node, tiny):
    node.put("/root/demo/compose.yaml", COMPOSE)
    node.ok("cd /root/demo && docker compose up -d", timeout=120)
    try:
        page = node.ok(CURL_UNTIL_IT_ANSWERS.format(port=8081), timeout=60)
        assert page.strip() == "hello from a nested container"
        assert "demo_web_1" in node.ok("cd /root/demo && docker compose ps")
    finally:
        node.sh("cd /root/demo && docker compose down", timeout=120)


def test_root_in_the_instance_and_in_its_containers_is_an_unprivileged_user_on_the_host(
    node, tiny, engine
):
    node.ok("echo written by root in the instance > /var/lib/docker/proof-instance")
    node.ok(
        "docker run --rm -v proof:/data tiny "
        "sh -c 'echo written by root in a nested container > /data/proof-nested'"
    )
    [container] = engine.containers(filters={"label": f"playground.instance={node.id}"})
    pid = engine.inspect_container(container["Id"])["State"]["Pid"]
    # The instance's /var/lib/docker seen from the host (a volume on an
    # overlay2 lab host, its own file system on a btrfs one).
    root = f"/proc/{pid}/root/var/lib/docker"
    made_inside = os.path.join(root, "proof-instance")
    made_nested = os.path.join(root, "volumes", "proof", "_data", "proof-nested")
    for path, text in [
        (made_inside, "written by root in the instance"),
        (made_nested, "written by root in a nested container"),
    ]:
        with open(path) as found:
            assert found.read().strip() == text
        assert os.stat(path).st_uid >= 100000, path
    with open(f"/proc/{pid}/status") as status:
        uids = next(line for line in status if line.startswith("Uid:")).split()[1:]
    assert min(int(uid) for uid in uids) >= 100000, uids


def test_the_instance_volume_is_removed_when_the_session_ends(stack, bob, engine):
    session, other = start_docker_session(stack, bob)
    # A btrfs lab host keeps that data in the instance's own file system,
    # inside its disk limit (tests/security/test_disk_limit.py): no volume.
    expected = 0 if engine.info().get("Driver") == "btrfs" else 1
    assert len(instance_volume(engine, other.id)) == expected
    answer = bob.delete(f"{stack.url}/api/sessions/{session['id']}/", timeout=60)
    assert answer.status_code == 204, answer.text
    wait_for(lambda: not instance_volume(engine, other.id), timeout=30,
             what="the instance's /var/lib/docker volume to be removed")


# -- the lab registry mirror (scripts/registry.sh) -------------------------------------
MIRROR_PORT = int(os.environ.get("PLAYGROUND_MIRROR_PORT", "5099"))


@pytest.fixture(scope="module")
def mirror() -> str:
    """The lab host's registry mirror, which scripts/setup.sh starts."""
    url = f"http://127.0.0.1:{MIRROR_PORT}"
    try:
        answer = requests.get(url + "/v2/_catalog", timeout=5)
    except requests.RequestException as exc:
        pytest.fail(f"no registry mirror on {url} ({exc}); start it: scripts/registry.sh start")
    assert answer.status_code == 200, answer.text
    return url


def test_docker_run_hello_world_pulls_it_from_the_lab_mirror(node, mirror):
    output = node.ok("docker run --rm hello-world", timeout=120)
    assert "Hello from Docker!" in output


def test_docker_run_nginx_serves_its_welcome_page(node, mirror):
    node.ok("docker run -d --name nginx -p 8082:80 nginx", timeout=120)
    try:
        assert "Welcome to nginx" in node.ok(CURL_UNTIL_IT_ANSWERS.format(port=8082), timeout=60)
    finally:
        node.sh("docker rm -f nginx")


def test_docker_run_python_runs_python(node, mirror):
    output = node.ok("docker run --rm python python -c 'print(6 * 7)'", timeout=120)
    assert output.splitlines()[-1] == "42", output  # after the pull's progress lines


def test_nothing_can_be_pushed_to_the_mirror(node, tiny, mirror):
    exit_code, output = node.sh(
        "mirror=$(docker info --format '{{index .RegistryConfig.Mirrors 0}}') && "
        'mirror=${mirror#http://} && mirror=${mirror%/} && '
        "docker tag tiny $mirror/library/pushed-by-a-learner && "
        "docker push $mirror/library/pushed-by-a-learner",
        timeout=120,
    )
    assert "The push refers to repository" in output, output  # it got as far as pushing
    assert exit_code != 0, output
    assert "pushed-by-a-learner" not in requests.get(mirror + "/v2/_catalog", timeout=5).text


# -- a service on a two-node swarm (the swarm-1m1w template) ---------------------------
# No IPVS on these machines, so no virtual IP nor routing mesh: the service
# resolves to its tasks' own addresses (dnsrr) and tasks talk task to task.
SERVICE = (
    "docker network create -d overlay --attachable svcnet >/dev/null && "
    "docker service create --detach --quiet --name web --network svcnet --endpoint-mode dnsrr "
    "--replicas 2 --replicas-max-per-node 1 --hostname '{{.Node.Hostname}}' --no-resolve-image busybox "
    "sh -c 'mkdir -p /www && echo \"hello from $(hostname)\" > /www/index.html && exec httpd -f -p 80 -h /www'"
)
# The local task of the service `web` on a node, and its address on svcnet.
LOCAL_TASK = "docker ps -q --filter label=com.docker.swarm.service.name=web --filter status=running"
TASK_IP = LOCAL_TASK + " | xargs docker inspect -f '{{(index .NetworkSettings.Networks \"svcnet\").IPAddress}}'"


class SwarmNode(Node):
    def __init__(self, stack, client, session: dict, index: int) -> None:
        super().__init__(stack, client, session)
        self.id = session["instances"][index]["id"]
        self.hostname = session["instances"][index]["hostname"]
        self.url = f"{stack.url}/api/sessions/{session['id']}/instances/{self.id}"


def test_a_service_on_a_two_node_swarm_runs_a_task_on_each_node_and_they_talk_over_the_overlay(
    stack, new_session
):
    # A learner of its own: alice holds this module's docker session and may
    # hold another module's, and users have a cap on live sessions.
    alice = stack.client("swarm-learner")
    session = new_session(alice, template="swarm-1m1w")
    sid = session["id"]

    def setup_over():
        body = alice.get(f"{stack.url}/api/sessions/{sid}/", timeout=10).json()
        return body["setup"] if body["setup"]["state"] in ("done", "failed") else None

    setup = wait_for(setup_over, timeout=240, what="the swarm to be formed")
    assert setup["state"] == "done", setup["message"]
    manager, worker = (SwarmNode(stack, alice, session, i) for i in (0, 1))
    assert (manager.hostname, worker.hostname) == ("manager1", "worker1")

    nodes = manager.ok("docker node ls --format '{{.Hostname}} {{.Status}} {{.Availability}}'")
    assert sorted(nodes.strip().splitlines()) == ["manager1 Ready Active", "worker1 Ready Active"], nodes

    manager.ok(SERVICE, timeout=60)
    # (Replicas reads "2/2 (max 1 per node)".)
    manager.ok("for i in $(seq 600); do case \"$(docker service ls --filter name=web --format '{{.Replicas}}')\" in "
               "'2/2 '*) exit 0;; esac; sleep 0.2; done; docker service ls; docker service ps --no-trunc web; exit 1",
               timeout=180)
    tasks = manager.ok("docker service ps web --filter desired-state=running --format '{{.Node}} {{.CurrentState}}'")
    placed = sorted(line.split()[:2] for line in tasks.strip().splitlines())
    assert placed == [["manager1", "Running"], ["worker1", "Running"]], tasks

    # Each node runs its task; the name `web` resolves to both tasks' addresses.
    ips = {node.hostname: node.ok(TASK_IP).strip() for node in (manager, worker)}
    assert all(ips.values()) and ips["manager1"] != ips["worker1"], ips
    for node, other in ((manager, worker), (worker, manager)):
        def resolves_both(node=node):
            output = node.sh(f"docker exec $({LOCAL_TASK}) nslookup web")[1]
            return output if all(ip in output for ip in ips.values()) else None

        wait_for(resolves_both, timeout=60, interval=0.5, what=f"`web` to resolve to both tasks on {node.hostname}")
        # Task to task, node to node, over the overlay (VXLAN between the instances).
        # (`timeout`, not wget's -T: Debian's busybox 1.35 wget crashes with -T.)
        page = node.ok(
            f"docker exec $({LOCAL_TASK}) sh -c 'for i in $(seq 40); do "
            f"timeout 5 wget -qO- http://{ips[other.hostname]}/ && exit 0; sleep 0.5; done; exit 1'",
            timeout=120,
        )
        assert page.strip() == f"hello from {other.hostname}"
