"""Every variable docker-compose.yml (and the test's override) gives the app
services is one playground/settings.py reads: a misspelt or removed setting
would otherwise be ignored without a word, the default standing in."""
from __future__ import annotations

import yaml

from tests.stack import ROOT

APP_SERVICES = ("web", "worker", "beat", "migrate")
FILES = (ROOT / "docker-compose.yml", ROOT / "tests" / "compose" / "local-engine.yml")
# Read by Django itself or by Python, not by settings.py.
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}


def app_variables() -> set[str]:
    names: set[str] = set()
    for path in FILES:
        services = yaml.safe_load(path.read_text())["services"]
        for service in APP_SERVICES:
            names.update((services.get(service) or {}).get("environment") or {})
    return names


def test_every_variable_the_compose_file_sets_is_a_setting():
    settings_source = (ROOT / "playground" / "settings.py").read_text()
    names = app_variables()
    assert "DJANGO_HTTPS" in names and "REDIS_URL" in names  # the files were read
    unknown = sorted(
        name for name in names - NOT_SETTINGS
        # DJANGO_SECRET_KEY_FILE: env("DJANGO_SECRET_KEY") reads the _FILE form.
        if f'"{name.removesuffix("_FILE")}"' not in settings_source
    )
    assert not unknown, f"set by the compose files but read nowhere in settings.py: {unknown}"


def test_the_web_service_reads_the_client_address_through_its_trusted_proxies(monkeypatch):
    """Daphne's --proxy-headers would take the leftmost X-Forwarded-For, which
    the client writes; the app reads the header itself, trusting the proxy
    the compose file names (a list of networks, not a count)."""
    import re

    from playground.settings import env_networks

    web = yaml.safe_load(FILES[0].read_text())["services"]["web"]
    assert "--proxy-headers" not in web["command"]
    default = re.fullmatch(r"\$\{PLAYGROUND_TRUSTED_PROXIES:-(.+)\}", web["environment"]["PLAYGROUND_TRUSTED_PROXIES"])
    assert default, web["environment"]["PLAYGROUND_TRUSTED_PROXIES"]
    monkeypatch.setenv("PLAYGROUND_TRUSTED_PROXIES", default.group(1))
    assert env_networks("PLAYGROUND_TRUSTED_PROXIES")
