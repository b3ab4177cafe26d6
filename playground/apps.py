"""The project's own app: its system checks (playground/checks.py), run by
every process at start-up."""
from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from pathlib import Path

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger("playground.checks")


def _a_management_command() -> bool:
    """manage.py and django-admin run the checks themselves (and print them)."""
    return Path(sys.argv[0] if sys.argv else "").name in {"manage.py", "django-admin"}


class PlaygroundConfig(AppConfig):
    name = "playground"
    label = "playground"
    verbose_name = "Playground"

    def ready(self) -> None:
        from django.conf import settings
        from django.core import checks

        from . import checks as playground_checks

        # Nothing makes STATIC_ROOT at import (collectstatic does); until it
        # exists, whitenoise would warn about it while the finders serve.
        warnings.filterwarnings("ignore", message="No directory at: " + re.escape(os.path.abspath(settings.STATIC_ROOT)))
        if _a_management_command():
            return
        messages = checks.run_checks(tags=[playground_checks.TAG])
        errors = [m for m in messages if m.is_serious() and not m.is_silenced()]
        for message in messages:
            if not message.is_serious() and not message.is_silenced():
                log.warning("%s", message)
        if errors:
            raise ImproperlyConfigured("settings contradict each other:\n" + "\n".join(f"  {m}" for m in errors))
