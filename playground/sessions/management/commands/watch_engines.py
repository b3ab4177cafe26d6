"""Hold every lab host's engine event stream, so an instance that dies (its
container exited, was OOM-killed, or went with an engine that restarted
without live restore) is marked failed within seconds, with a reason the
learner can read. One per deployment: started by ``make up`` (scripts/run.sh)
and by the ``watcher`` service of docker-compose.yml. Runs until SIGTERM or
Ctrl-C; reconnects by itself when an engine goes and comes back.
"""
from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from playground.sessions import actions


class Command(BaseCommand):
    help = "Watch the lab hosts' engines and mark instances that die, as they die."

    def handle(self, *args, **options) -> None:
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write("watching the lab hosts' engines (Ctrl-C stops)")
        self.stdout.flush()
        actions.watch_engines(stop=stop)
