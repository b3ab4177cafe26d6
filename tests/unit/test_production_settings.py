"""Settings fit for production: the secret key every process must share,
``NAME_FILE`` for every variable, no files made at import, the system checks
of playground/checks.py, the operator's catalogue, and JSON logs."""
from __future__ import annotations

import io
import json
import logging
import os
import stat
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from playground import audit, checks, config
from playground.catalogue import CatalogueError, apply
from playground.logs import JSONFormatter
from tests.stack import ROOT

SETTINGS = ROOT / "playground" / "settings.py"
OURS = ("DJANGO_", "PLAYGROUND_", "CELERY_", "REDIS_URL", "DATABASE_URL")


@pytest.fixture
def load(monkeypatch, tmp_path):
    """Run settings.py afresh under an environment of only ``env`` (with a
    state directory of the test's own); its module namespace."""
    for name in list(os.environ):
        if name.startswith(OURS):
            monkeypatch.delenv(name)
    state = tmp_path / "state"
    state.mkdir()

    def run(**env: str) -> dict:
        monkeypatch.setenv("PLAYGROUND_STATE_DIR", str(state))
        monkeypatch.setenv("DJANGO_STATIC_ROOT", str(tmp_path / "static-root"))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        namespace = {"__name__": "settings_probe", "__file__": str(SETTINGS)}
        exec(compile(SETTINGS.read_text(), str(SETTINGS), "exec"), namespace)  # noqa: S102
        return namespace

    run.state = state
    run.tmp = tmp_path
    return run


# -- the secret key ---------------------------------------------------------------


def test_production_without_a_secret_key_refuses_to_start(load):
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY.*DJANGO_HTTPS"):
        load(DJANGO_HTTPS="true")
    assert not (load.state / "secret_key").exists()


def test_production_takes_its_key_from_a_file(load):
    key = load.tmp / "key"
    key.write_text("k" * 50 + "\n")
    assert load(DJANGO_HTTPS="true", DJANGO_SECRET_KEY_FILE=str(key))["SECRET_KEY"] == "k" * 50


def test_the_quick_start_makes_one_key_and_nothing_else(load):
    first = load()["SECRET_KEY"]
    assert len(first) > 40 and load()["SECRET_KEY"] == first
    made = load.state / "secret_key"
    assert stat.S_IMODE(made.stat().st_mode) == 0o600
    # Nothing else at import: no static root, no scratch files.
    assert sorted(p.name for p in load.tmp.rglob("*")) == ["secret_key", "state"]


# -- NAME_FILE for every kind of value ---------------------------------------------


@pytest.mark.parametrize("name, content, setting, expected", [
    ("PLAYGROUND_DEPLOYMENT", "blue\n", "PLAYGROUND_DEPLOYMENT", "blue"),          # text
    ("PLAYGROUND_MAX_INSTANCES", "7", "PLAYGROUND_MAX_INSTANCES", 7),                # int
    ("PLAYGROUND_INSTANCE_CPUS", "0.5", "PLAYGROUND_INSTANCE_CPUS", 0.5),            # float
    ("PLAYGROUND_ALLOW_GUESTS", "false", "PLAYGROUND_ALLOW_GUESTS", False),          # bool
    ("PLAYGROUND_PORTS_HIDDEN", "22, 2375", "PLAYGROUND_PORTS_HIDDEN", [22, 2375]),  # list
    ("PLAYGROUND_EGRESS", "internet", "PLAYGROUND_EGRESS", "internet"),              # choice
    ("PLAYGROUND_REDIS_PASSWORD", "pw", "REDIS_PASSWORD", "pw"),                     # a secret
])
def test_every_kind_of_setting_takes_the_file_form_which_wins(load, name, content, setting, expected):
    path = load.tmp / name.lower()
    path.write_text(content)
    assert load(**{f"{name}_FILE": str(path), name: "not-read"})[setting] == expected


def test_networks_from_a_file_and_a_bad_value_in_one_names_the_variable(monkeypatch, tmp_path):
    path = tmp_path / "proxies"
    path.write_text("10.0.0.0/8")
    monkeypatch.setenv("X_PROXIES_FILE", str(path))
    assert [str(n) for n in config.env_networks("X_PROXIES")] == ["10.0.0.0/8"]
    path.write_text("twelve")
    monkeypatch.setenv("X_COUNT_FILE", str(path))
    with pytest.raises(ValueError, match="X_COUNT=.*not an integer"):
        config.env_int("X_COUNT", 1)


def test_an_unreadable_file_names_its_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("X_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="X_SECRET_FILE=.*missing.*cannot read it"):
        config.env("X_SECRET")


def test_an_empty_file_counts_as_unset_for_numbers(monkeypatch, tmp_path):
    path = tmp_path / "empty"
    path.write_text("\n")
    monkeypatch.setenv("X_NUM_FILE", str(path))
    assert config.env_int("X_NUM", 4) == 4


# -- system checks ----------------------------------------------------------------


def _ids(*functions) -> set[str]:
    return {message.id for function in functions for message in function()}


ALL = (checks.check_ports_domain, checks.check_catalogue, checks.check_capacity, checks.check_periods,
       checks.check_request_size, checks.check_networks, checks.check_production)


def test_the_default_settings_pass_every_check(settings):
    settings.PLAYGROUND_ACTIVITY_FLUSH_SECONDS = 5.0  # the unit tests' 0 aside: the default
    assert _ids(*ALL) == set()


@pytest.mark.parametrize("changes, expected", [
    ({"PLAYGROUND_DEFAULT_IMAGE": "python"}, "playground.E001"),
    ({"PLAYGROUND_TEMPLATES": {"t": {"description": "x", "image": "gone", "instances": ["a"]}}}, "playground.E002"),
    ({"PLAYGROUND_HOST_MIN_FREE_MEMORY": 1.0}, "playground.E003"),
    ({"PLAYGROUND_ACTIVITY_FLUSH_SECONDS": 60.0, "PLAYGROUND_IDLE_TIMEOUT": 60}, "playground.E004"),
    ({"HTTPS": True, "ALLOWED_HOSTS": ["play.example.org", ".ports.play.example.org"],
      "PLAYGROUND_PORTS_DOMAIN": "ports.play.example.org"}, "playground.E005"),
    ({"HTTPS": True, "ALLOWED_HOSTS": ["example.org"], "PLAYGROUND_PORTS_DOMAIN": "example.org"}, "playground.E005"),
    ({"PLAYGROUND_TRUSTED_PROXIES": config.env_networks_default("10.0.0.1,0.0.0.0/0")}, "playground.E006"),
    ({"PLAYGROUND_HOST_CPU_OVERCOMMIT": 0.5}, "playground.W001"),
    ({"PLAYGROUND_WATCH_SECONDS": 5.0}, "playground.W002"),
    ({"PLAYGROUND_HOST_DOWN_GRACE": 1.0, "PLAYGROUND_HEALTH_SECONDS": 3.0}, "playground.W003"),
    ({"PLAYGROUND_MAX_REQUEST_BYTES": 1024 * 1024, "PLAYGROUND_MAX_FILE_BYTES": 8 * 1024 * 1024}, "playground.W004"),
    ({"HTTPS": True, "CELERY_TASK_ALWAYS_EAGER": True, "ALLOWED_HOSTS": ["play.example.org"]}, "playground.W005"),
])
def test_each_check_fires_on_its_contradiction_only(settings, changes, expected):
    settings.PLAYGROUND_ACTIVITY_FLUSH_SECONDS = 5.0
    for name, value in changes.items():
        setattr(settings, name, value)
    assert _ids(*ALL) == {expected}


def test_the_watch_check_knows_the_lab_pages_poll():
    import re

    polls = re.findall(r"setInterval\(\(\) => void refreshSession\(\), ([\d_]+)\)",
                       (ROOT / "frontend" / "src" / "lab.ts").read_text())
    assert [int(p.replace("_", "")) / 1000 for p in polls] == [checks.LAB_PAGE_POLL_SECONDS]


def test_the_ports_check_passes_the_production_shape(settings):
    """The compose file allows the port origins (.<ports domain>) beside the
    site; a ports domain of its own is right, and the quick start's
    localhost beside *.localhost is not production."""
    settings.HTTPS = True
    settings.ALLOWED_HOSTS = ["play.example.org", ".play-ports.example.net"]
    settings.PLAYGROUND_PORTS_DOMAIN = "play-ports.example.net"
    assert checks.check_ports_domain() == []
    settings.HTTPS = False
    settings.ALLOWED_HOSTS = ["localhost"]
    settings.PLAYGROUND_PORTS_DOMAIN = "localhost"
    assert checks.check_ports_domain() == []


def test_an_error_stops_a_process_at_start_up_and_manage_py_lists_it(tmp_path):
    environment = {**{k: v for k, v in os.environ.items() if not k.startswith(OURS)},
                   "DJANGO_SETTINGS_MODULE": "playground.settings", "PLAYGROUND_STATE_DIR": str(tmp_path),
                   "PLAYGROUND_HOST_MIN_FREE_MEMORY": "1.5"}
    started = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=environment,
                             capture_output=True, text=True, timeout=120, check=False)
    assert started.returncode != 0
    assert "ImproperlyConfigured" in started.stderr and "playground.E003" in started.stderr
    listed = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=environment,
                            capture_output=True, text=True, timeout=120, check=False)
    assert listed.returncode != 0 and "playground.E003" in listed.stderr
    assert "Traceback" not in listed.stderr


# -- the catalogue --------------------------------------------------------------------


def _built_in() -> tuple[dict, dict]:
    images = {"shell": {"ref": "playground-shell:latest", "description": "Debian."},
              "docker": {"ref": "playground-docker:latest", "description": "Docker.", "nested_docker": True}}
    templates = {"swarm": {"description": "A swarm.", "image": "docker",
                           "swarm": {"managers": ["manager1"], "workers": ["worker1"]}}}
    return images, templates


def test_a_catalogue_adds_changes_and_removes_entries():
    images, templates = _built_in()
    apply(images, templates, """
images:
  python: {ref: "reg.example.org/python:3.12", description: "Python.", reserve_memory_mb: 96, egress: internet}
  docker: {ref: "reg.example.org/docker:2"}
templates:
  pair: {description: "Two.", image: python, instances: [alice, bob]}
""", "catalogue.yaml")
    assert images["python"] == {"ref": "reg.example.org/python:3.12", "description": "Python.",
                                "reserve_memory_mb": 96, "egress": "internet"}
    assert images["docker"] == {"ref": "reg.example.org/docker:2", "description": "Docker.", "nested_docker": True}
    assert set(templates) == {"swarm", "pair"}
    apply(images, templates, '{"images": {"docker": null}}', "inline JSON")
    assert set(images) == {"shell", "python"} and set(templates) == {"pair"}  # the swarm went with its image


@pytest.mark.parametrize("text, message", [
    ("images: [shell]", "images must be a mapping"),
    ("images:\n  python: {ref: x}", "images.python: a new image needs description"),
    ("images:\n  shell: {ref: x, memory: 3}", "images.shell: unknown key 'memory'"),
    ("images:\n  shell: {pool: -1}", r"images.shell.pool: -1 is not a whole number"),
    ("images:\n  shell: {nested_docker: 'yes'}", "images.shell.nested_docker"),
    ("images:\n  Bad Name: {ref: x, description: y}", "images.Bad Name: a name is"),
    ("templates:\n  t: {description: x, image: nope, instances: [a]}", "templates.t.image: 'nope' is no image"),
    ("templates:\n  t: {description: x, image: shell}", "templates.t: needs instances"),
    ("templates:\n  t: {description: x, image: shell, swarm: {managers: [], workers: [w]}}", "at least one manager"),
    ("templates:\n  t: {description: x, image: shell, instances: [a, a]}", "appears twice"),
    ("images:\n  shell: null\n  docker: null", "leaves no image"),
    ("images: {shell: [", "not YAML or JSON"),
    ("labs: {}", "unknown key"),
])
def test_a_bad_catalogue_is_refused_naming_where(text, message):
    images, templates = _built_in()
    before = (json.dumps(images), json.dumps(templates))
    with pytest.raises(CatalogueError, match=message) as refused:
        apply(images, templates, text, "PLAYGROUND_CATALOGUE_FILE=/etc/c.yaml")
    assert str(refused.value).startswith("PLAYGROUND_CATALOGUE_FILE=/etc/c.yaml: ")
    assert (json.dumps(images), json.dumps(templates)) == before  # all or nothing


def test_settings_read_the_catalogue_file_and_the_per_image_variables_apply_on_top(load):
    path = load.tmp / "catalogue.yaml"
    path.write_text("images:\n  python: {ref: 'python:3.12', description: Python.}\n")
    loaded = load(PLAYGROUND_CATALOGUE_FILE=str(path), PLAYGROUND_IMAGE_DISK_MB="python=512")
    assert loaded["PLAYGROUND_IMAGES"]["python"] == {"ref": "python:3.12", "description": "Python.", "disk_mb": 512}
    assert {"shell", "docker"} <= set(loaded["PLAYGROUND_IMAGES"])
    path.write_text("images:\n  python: {ref: 'python:3.12'}\n")
    with pytest.raises(ValueError, match=f"PLAYGROUND_CATALOGUE_FILE={path}: images.python: a new image needs"):
        load(PLAYGROUND_CATALOGUE_FILE=str(path))


# -- logs -------------------------------------------------------------------------------


def test_json_log_lines_carry_the_audit_records_fields():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter())
    logger = logging.getLogger("playground.audit")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        audit.record("session.ended", user=None, session="s-1", reason="idle\nfor long", count=3)
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["logger"] == "playground.audit" and first["level"] == "INFO"
    assert first["timestamp"].endswith("Z") and first["message"].startswith("session.ended by=system")
    assert first["audit"] == {"event": "session.ended", "by": "system", "session": "s-1",
                              "reason": "idle\nfor long", "count": 3}
    assert second["level"] == "ERROR" and "RuntimeError: boom" in second["exception"]


def test_the_audit_log_goes_to_its_own_file_as_json(tmp_path):
    """The LOGGING settings builds, as every process applies it."""
    audit_file = tmp_path / "audit.log"
    environment = {**{k: v for k, v in os.environ.items() if not k.startswith(OURS)},
                   "DJANGO_SETTINGS_MODULE": "playground.settings", "PLAYGROUND_STATE_DIR": str(tmp_path),
                   "PLAYGROUND_LOG_FORMAT": "json", "PLAYGROUND_AUDIT_LOG": str(audit_file)}
    script = ("import django, logging; django.setup(); from playground import audit; "
              "audit.record('instance.added', session='s-2'); logging.getLogger('playground.x').warning('other')")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    (line,) = audit_file.read_text().splitlines()
    assert json.loads(line)["audit"] == {"event": "instance.added", "by": "system", "session": "s-2"}
    stderr = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [(e["logger"], e["message"]) for e in stderr] == [("playground.x", "other")]


def test_an_unknown_log_format_is_refused(load):
    with pytest.raises(ValueError, match="PLAYGROUND_LOG_FORMAT='xml'"):
        load(PLAYGROUND_LOG_FORMAT="xml")
