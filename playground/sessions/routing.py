"""WebSocket routes of sandbox sessions (under ``ws/``)."""
from __future__ import annotations

from django.urls import path

from .consumers import TerminalConsumer

websocket_urlpatterns = [
    path("ws/instances/<str:iid>/terminal/", TerminalConsumer.as_asgi()),
]
