"""Remove every hot-start (pooled) instance, e.g. before taking a lab host away.

The filler makes them again on its next round unless PLAYGROUND_POOL_SIZE is 0.
"""
from __future__ import annotations

from django.core.management.base import BaseCommand

from playground.sessions import actions


class Command(BaseCommand):
    help = "Remove every pooled (hot-start) instance from the lab hosts."

    def handle(self, *args, **options) -> None:
        drained = actions.drain_pools()
        self.stdout.write(f"removed {drained} pooled instance(s)")
