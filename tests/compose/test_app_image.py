"""The production image (playground-app, built by scripts/build-app-images.sh
from requirements.txt alone) runs the playground and holds no test tools: in
one container of it, Daphne's, Celery's and the engine watcher's code imports
(with the versions the terminal's fast path was written for), and pytest,
Playwright, schemathesis and hypothesis do not."""
from __future__ import annotations

import json

import docker
import pytest

from tests.stack import ENGINE

pytestmark = [pytest.mark.engine]

IMAGE = "playground-app:latest"
RUNTIME = ["daphne", "celery", "docker", "channels_redis", "requests", "websockets", "psycopg", "yaml"]
TEST_TOOLS = ["pytest", "pytest_django", "pytest_timeout", "playwright", "schemathesis", "hypothesis"]
# Run inside the image: what imports, what is missing, then the entry points'
# own modules (ASGI for Daphne, the Celery app, the watcher's command).
PROBE = f"""
import importlib, json
found = {{}}
for name in {RUNTIME + TEST_TOOLS!r}:
    try:
        importlib.import_module(name)
        found[name] = "ok"
    except ModuleNotFoundError as exc:
        found[name] = "missing: " + str(exc)
import django
django.setup()
import playground.asgi, playground.celery
import playground.sessions.management.commands.watch_engines
found["entry points"] = "ok"
from playground import rawsocket
found["fast path"] = "ok" if rawsocket.fast_path_supported() else repr(rawsocket.version_mismatches())
print(json.dumps(found))
"""


def test_the_app_image_runs_the_playground_and_holds_no_test_tools(engine):
    client = docker.DockerClient(base_url=ENGINE, version="1.41", timeout=60)
    assert client.images.list(name=IMAGE), f"{IMAGE} is missing: run scripts/build-app-images.sh"
    output = client.containers.run(
        IMAGE, ["python", "-c", PROBE], remove=True, network_mode="none",
        environment={"DJANGO_SECRET_KEY": "probe-only", "PLAYGROUND_WEB_NICE": "0"},
    )
    found = json.loads(output.decode().strip().splitlines()[-1])
    assert found["entry points"] == "ok"
    assert found["fast path"] == "ok", f"the terminal's fast path would be off in production: {found['fast path']}"
    assert {name: found[name] for name in RUNTIME} == dict.fromkeys(RUNTIME, "ok")
    present = [name for name in TEST_TOOLS if found[name] == "ok"]
    assert not present, f"the production image holds test tools: {present} (requirements.txt must not pull them in)"
