"""Training centres (organisations), their classes, and the learners in them."""
from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models

from playground.sessions.models import Session, new_id

# Join codes avoid letters and digits that read alike (0/O, 1/I/L).
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


def new_join_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))


class Organisation(models.Model):
    """A training centre: its classes share a quota of concurrent sandboxes."""

    name = models.CharField(max_length=120, unique=True)
    quota = models.PositiveIntegerField(
        default=100, help_text="Instances its classes' learners may have running at once, all classes together."
    )
    instructors = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="organisations")

    def __str__(self) -> str:
        return self.name


class Classroom(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_id, editable=False)
    title = models.CharField(max_length=120)
    lab = models.ForeignKey("labs.Lab", on_delete=models.PROTECT, related_name="classrooms")
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, null=True, blank=True, related_name="classrooms"
    )
    instructors = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="classes_taught")
    seats = models.PositiveIntegerField()
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True, help_text="Set when an instructor ends the class.")
    # Joining: a code to type and a link to open, each with an expiry and a
    # maximum number of uses (blank: until the class ends / no maximum).
    join_code = models.CharField(max_length=16, unique=True, default=new_join_code)
    join_code_expires_at = models.DateTimeField(null=True, blank=True)
    join_code_max_uses = models.PositiveIntegerField(null=True, blank=True)
    join_code_uses = models.PositiveIntegerField(default=0)
    invite_token = models.CharField(max_length=32, unique=True, default=new_id)
    invite_expires_at = models.DateTimeField(null=True, blank=True)
    invite_max_uses = models.PositiveIntegerField(null=True, blank=True)
    invite_uses = models.PositiveIntegerField(default=0)
    # Limits that override the playground's defaults for this class's sessions.
    max_instances = models.PositiveSmallIntegerField(null=True, blank=True)
    session_lifetime = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_at"]

    def __str__(self) -> str:
        return self.title


class Learner(models.Model):
    """A seat taken in a class: who, under which name, and their session."""

    classroom = models.ForeignKey(Classroom, on_delete=models.CASCADE, related_name="learners")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="seats")
    display_name = models.CharField(max_length=80)
    session = models.OneToOneField(
        Session, on_delete=models.SET_NULL, null=True, blank=True, related_name="seat"
    )
    hand_raised = models.BooleanField(default=False)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["joined_at"]
        constraints = [models.UniqueConstraint(fields=["classroom", "user"], name="one_seat_per_learner")]

    def __str__(self) -> str:
        return f"{self.display_name} in {self.classroom}"


class WarmSession(models.Model):
    """A session of the class's lab made ahead of its start (hot start),
    owned by the pool's system user until a joining learner claims it."""

    classroom = models.ForeignKey(Classroom, on_delete=models.CASCADE, related_name="warm_sessions")
    session = models.OneToOneField(Session, on_delete=models.CASCADE, related_name="warm")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
