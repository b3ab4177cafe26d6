"""ASGI entry point: HTTP through Django, WebSockets through Channels."""
from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")

# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from playground import wsauth  # noqa: E402
from playground.sessions import routing as sessions_routing  # noqa: E402

websocket_routes: list = [*sessions_routing.websocket_urlpatterns]

# Frames over Daphne's limit (1 MiB) close with 1009 rather than a dropped connection.
wsauth.close_oversized_frames_cleanly()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": wsauth.websocket_application(URLRouter(websocket_routes)),
    }
)
