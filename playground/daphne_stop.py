"""Daphne's stop, made to reach every connection.

On SIGTERM Daphne cancels each connection's application and waits for them
before it exits, so a terminal can give an instructor's keyboard back, leave
its session's group and close with 1012 (``TerminalConsumer``). Daphne 4.2's
loop over its connections fails with a ``KeyError`` at the first connection
whose application already finished while its socket is still open (an HTTP
connection kept alive, for one): Twisted logs that where Daphne sends it
(nowhere, at the default verbosity) and the process exits at once, no
application cancelled. This is that loop, skipping such connections.
"""
from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("daphne.server")


def stop_cleanly() -> None:
    """Patch Daphne's shutdown (idempotent; nothing when not running under Daphne)."""
    try:
        from daphne.server import Server
        from twisted.internet import defer
    except ImportError:
        return
    if getattr(Server, "_playground_stops_cleanly", False):
        return

    def kill_all_applications(self):
        waiting = []
        for details in list(self.connections.values()):
            application = details.get("application_instance")
            if application is not None and not application.done():
                application.cancel()
                waiting.append(application)
        log.info("Killed %i pending application instances", len(waiting))
        # Twisted waits for them before it stops the reactor.
        stopped = defer.Deferred.fromFuture(asyncio.gather(*waiting))
        stopped.addErrback(lambda _: None)
        return stopped

    Server.kill_all_applications = kill_all_applications
    Server._playground_stops_cleanly = True
