"""The compose tier: docker-compose.yml run by Debian's docker-compose (1.29)
against the project's lab-host engine, with tests/compose/local-engine.yml
standing in for the privileged labhost service. Its images come from
scripts/build-app-images.sh (scripts/setup.sh builds them)."""
from __future__ import annotations

import pytest

from tests.integration.conftest import engine  # noqa: F401 - the raw engine client, shared


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "compose: runs docker-compose.yml for real (tests/compose)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/compose/" in str(item.fspath):
            item.add_marker(pytest.mark.compose)
