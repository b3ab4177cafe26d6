"""Small events to the pages and terminals that watch a group (a session's,
a class's), through the channel layer, once the transaction commits.

Best effort: an unreachable channel layer is logged, never raised (whoever
watches also finds out by looking again), and a Redis that hangs holds the
caller no longer than PLAYGROUND_REDIS_TIMEOUT (the layer's own reads wait 30
s, as long as its receive blocks)."""
from __future__ import annotations

import asyncio
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)


def broadcast(group: str, event: dict) -> None:
    """Send ``event`` to ``group`` when the current transaction commits."""

    async def send_within_timeout(layer) -> None:
        await asyncio.wait_for(layer.group_send(group, event), settings.REDIS_TIMEOUT)

    def send() -> None:
        try:
            layer = get_channel_layer()
            if layer is not None:
                async_to_sync(send_within_timeout)(layer)
        except Exception as exc:  # noqa: BLE001 - any layer failure is the same to us
            log.warning("could not send %s to %s: %s", event.get("type"), group, exc)

    transaction.on_commit(send)
