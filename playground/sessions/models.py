from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models


def new_id() -> str:
    """An opaque, unguessable id (128 bits), safe in URLs and engine names."""
    return secrets.token_hex(16)


class Session(models.Model):
    class State(models.TextChoices):
        STARTING = "starting"
        RUNNING = "running"
        EXPIRED = "expired"
        ENDED = "ended"
        FAILED = "failed"

    LIVE_STATES = (State.STARTING, State.RUNNING)

    id = models.CharField(primary_key=True, max_length=32, default=new_id, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="play_sessions")
    state = models.CharField(max_length=16, choices=State.choices, default=State.STARTING, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    last_activity_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    extensions = models.PositiveSmallIntegerField(default=0)
    reason = models.CharField(max_length=200, blank=True, help_text="Why the session ended or failed.")
    # The lab host every instance of this session runs on, and its network.
    host = models.CharField(max_length=200)
    network_state = models.JSONField(null=True, blank=True)
    egress = models.CharField(
        max_length=16, default="session",
        help_text="Where its instances may send traffic: none, session (each other) or internet.",
    )
    # A template's name, and the progress of its set-up (e.g. forming a swarm):
    # {"state": "pending"|"running"|"done"|"failed", "message": str, "roles": {hostname: role}}.
    template = models.CharField(max_length=64, blank=True)
    # Overrides PLAYGROUND_MAX_INSTANCES for this session (a class's limit).
    max_instances = models.PositiveSmallIntegerField(null=True, blank=True)
    setup = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "state"])]

    def __str__(self) -> str:
        return f"session {self.id} ({self.state})"

    @property
    def is_live(self) -> bool:
        return self.state in self.LIVE_STATES

    @property
    def network_key(self) -> str:
        return self.id


class Instance(models.Model):
    class State(models.TextChoices):
        PROVISIONING = "provisioning"
        RUNNING = "running"
        STOPPED = "stopped"
        FAILED = "failed"

    id = models.CharField(primary_key=True, max_length=32, default=new_id, editable=False)
    # Null while the instance waits in a hot-start pool.
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="instances", null=True, blank=True)
    number = models.PositiveSmallIntegerField(help_text="N in nodeN; unique among the session's instances.")
    hostname = models.CharField(max_length=63)
    image = models.CharField(max_length=64, help_text="The image's API name.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PROVISIONING, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    host = models.CharField(max_length=200)
    driver_state = models.JSONField(null=True, blank=True, help_text="Opaque; only the driver reads it.")
    pool_network = models.JSONField(
        null=True, blank=True,
        help_text="A pooled instance's own network (driver state), handed to the session that claims it.",
    )
    reason = models.CharField(max_length=300, blank=True, help_text="Why the instance failed or stopped.")
    created_at = models.DateTimeField(auto_now_add=True)
    running_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["number"]

    def __str__(self) -> str:
        return f"{self.hostname} ({self.state})"

    @property
    def terminal_path(self) -> str:
        return f"/ws/instances/{self.id}/terminal/"


class LabHost(models.Model):
    """A lab host new instances may be placed on. PLAYGROUND_LAB_HOSTS seeds
    the table; the admin and ``manage.py lab_hosts`` add, cordon and drain
    hosts while everything runs (playground.sessions.hosts reads it)."""

    class State(models.TextChoices):
        ACTIVE = "active"  # takes new instances
        CORDONED = "cordoned"  # takes none; what runs there goes on, pools included
        DRAINING = "draining"  # takes none; its pooled and warm instances move elsewhere

    url = models.CharField(max_length=200, unique=True, help_text="unix:///... or tcp://host:2376 (mutual TLS).")
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    note = models.CharField(max_length=200, blank=True, help_text="Why it is cordoned or drained.")
    added_at = models.DateTimeField(auto_now_add=True)
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["added_at", "url"]

    def __str__(self) -> str:
        return f"{self.url} ({self.state})"
