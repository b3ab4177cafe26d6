"""`manage.py check --deploy` is clean under production settings (docs/security.md)."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _check_deploy(tmp_path, **env) -> subprocess.CompletedProcess:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PLAYGROUND_"))},
        "DJANGO_SETTINGS_MODULE": "playground.settings",
        "PLAYGROUND_STATE_DIR": str(tmp_path),
        **env,
    }
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120, check=False)


def test_production_settings_pass_the_deploy_check(tmp_path):
    done = _check_deploy(tmp_path, DJANGO_HTTPS="1", DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
                         DJANGO_ALLOWED_HOSTS="play.example.org")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_the_plain_http_quick_start_is_what_the_deploy_check_flags(tmp_path):
    done = _check_deploy(tmp_path)
    assert done.returncode != 0
    assert "SESSION_COOKIE_SECURE" in done.stdout + done.stderr
