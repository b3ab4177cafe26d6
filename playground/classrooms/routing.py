"""WebSocket routes of classes (under ``ws/``)."""
from __future__ import annotations

from django.urls import path

from .consumers import ClassroomConsumer

websocket_urlpatterns = [
    path("ws/classrooms/<str:cid>/", ClassroomConsumer.as_asgi()),
]
