from __future__ import annotations

from django.apps import AppConfig


class SessionsConfig(AppConfig):
    name = "playground.sessions"
    # The plain label "sessions" clashes with django.contrib.sessions.
    label = "play_sessions"
    verbose_name = "Sandbox sessions"
