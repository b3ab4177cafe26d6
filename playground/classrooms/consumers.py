"""The class dashboard WebSocket (docs/api.md): the roster on connect, then one
``learner`` event per learner whose entry changed.

Changes are pushed by ``actions.notify_class`` (a learner joined, raised a
hand, ran a check, the class ended) and, for what changes by itself (idle
time), the roster is looked at again every PLAYGROUND_CLASS_DASHBOARD_SECONDS.
"""
from __future__ import annotations

import asyncio
import json
import logging

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from playground.errors import NotFoundError
from playground.sessions.terminal import db

from . import actions

log = logging.getLogger(__name__)

NOT_FOUND = 4404


def _roster_of(user, classroom_id: str) -> tuple[list[dict], dict]:
    classroom = actions.classroom_of(user=user, classroom_id=classroom_id)
    return actions.roster_json(actions.roster(classroom=classroom)), actions.warm_counts(classroom)


class ClassroomConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.classroom_id = self.scope["url_route"]["kwargs"]["cid"]
        self.user = self.scope["user"]
        self.sent: dict[str, dict] = {}
        self.pool: dict = {}
        self.group: str | None = None
        self.refresher: asyncio.Task | None = None
        self.lock = asyncio.Lock()
        await self.accept()  # close codes reach a browser only after the handshake
        try:
            learners, pool = await db(_roster_of)(self.user, self.classroom_id)
        except NotFoundError:
            await self.close(code=NOT_FOUND)
            return
        self.group = actions.class_group(self.classroom_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.sent = {entry["key"]: entry for entry in learners}
        self.pool = pool
        await self.send(text_data=json.dumps({"type": "roster", "learners": [_public(e) for e in learners]}))
        # An extension of docs/api.md: the hot-start pool filling before the class.
        await self.send(text_data=json.dumps({"type": "pool", **pool}))
        self.refresher = asyncio.create_task(self._refresh_now_and_then())

    async def disconnect(self, code) -> None:
        if self.refresher is not None:
            self.refresher.cancel()
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        try:
            message = json.loads(text_data or "{}")
        except ValueError:
            return
        if isinstance(message, dict) and message.get("type") == "ping":
            await self.send(text_data=json.dumps({"type": "pong"}))

    async def class_changed(self, event: dict) -> None:
        await self._send_changes()

    async def _refresh_now_and_then(self) -> None:
        while True:
            await asyncio.sleep(settings.PLAYGROUND_CLASS_DASHBOARD_SECONDS)
            try:
                await self._send_changes()
            except NotFoundError:
                await self.close(code=NOT_FOUND)
                return
            except Exception:
                log.exception("class dashboard %s: refresh failed", self.classroom_id)

    async def _send_changes(self) -> None:
        async with self.lock:
            learners, pool = await db(_roster_of)(self.user, self.classroom_id)
            if pool != self.pool:
                self.pool = pool
                await self.send(text_data=json.dumps({"type": "pool", **pool}))
            for entry in learners:
                if self.sent.get(entry["key"]) != entry:
                    self.sent[entry["key"]] = entry
                    await self.send(text_data=json.dumps({"type": "learner", **_public(entry)}))


def _public(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k != "key"}
