"""ASGI entry point: HTTP through Django, WebSockets through Channels."""
from __future__ import annotations

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")

# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402

from playground import priority  # noqa: E402

# Before any thread starts (threads inherit it): the terminal's echo waits for
# this process to be scheduled, on CPUs the sandboxes share.
priority.apply_nice(settings.PLAYGROUND_WEB_NICE)

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from playground import daphne_stop, rawsocket, wsauth  # noqa: E402
from playground.classrooms import routing as classrooms_routing  # noqa: E402
from playground.ports import proxy as port_proxy  # noqa: E402
from playground.sessions import routing as sessions_routing  # noqa: E402

websocket_routes: list = [*sessions_routing.websocket_urlpatterns, *classrooms_routing.websocket_urlpatterns]

# Frames over Daphne's limit (1 MiB) close with 1009 rather than a dropped connection.
wsauth.close_oversized_frames_cleanly()
# Terminals may take their socket from Daphne after the handshake (playground.rawsocket).
rawsocket.offer()
# A request body past the limit is refused as it arrives, before Daphne holds it all.
rawsocket.limit_request_bodies(settings.PLAYGROUND_MAX_REQUEST_BYTES)
# A stop (SIGTERM) lets every terminal clean up and close with 1012 (playground.daphne_stop).
daphne_stop.stop_cleanly()

# Requests to an instance port's origin (docs/api.md, "Ports") go to its proxy,
# before Django or Channels see them.
application = port_proxy.host_router(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": wsauth.websocket_application(URLRouter(websocket_routes)),
        }
    )
)

# Everything loaded so far (Django, DRF, Channels, Twisted: some hundreds of
# thousands of objects) lives as long as the process. Out of the collector's
# sight, a full collection no longer walks them all, which held the event loop
# (every terminal's echo) for tens of milliseconds now and then.
gc.collect()
gc.freeze()
