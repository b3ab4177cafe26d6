from __future__ import annotations

from django.apps import AppConfig


class ClassroomsConfig(AppConfig):
    name = "playground.classrooms"
    label = "classrooms"
    verbose_name = "Classes"

    def ready(self) -> None:
        from . import signals  # noqa: F401 - connects the receivers
