"""The audit log: who did what to which session, instance or admin object.

One line per event on the logger ``playground.audit`` (route it to a file or
a collector of its own in production), as ``event key=value ...``. Callers
pass ids, names and reasons only: never a token, password, cookie or command
text, so the log can be shared with whoever investigates abuse.
"""
from __future__ import annotations

import logging

audit_log = logging.getLogger("playground.audit")


def who(user) -> str:
    if user is None:
        return "system"
    if not getattr(user, "pk", None):
        return "anonymous"
    return f"{user.get_username()}#{user.pk}"


def record(event: str, *, user=None, **fields: object) -> None:
    parts = [event, f"by={who(user)}"]
    for key, value in fields.items():
        text = str(value).replace("\n", " ")
        parts.append(f"{key}={text!r}" if " " in text or "=" in text or not text else f"{key}={text}")
    # The same, as fields, for JSON logs (playground/logs.py).
    structured = {key: value if isinstance(value, (int, float, bool)) or value is None else str(value)
                  for key, value in fields.items()}
    audit_log.info(" ".join(parts), extra={"audit": {**structured, "event": event, "by": who(user)}})


def record_admin_action(sender, instance, created: bool, **kwargs) -> None:
    """Django admin's own LogEntry rows, as audit events (post_save receiver)."""
    if not created:
        return
    action = {1: "added", 2: "changed", 3: "deleted"}.get(instance.action_flag, str(instance.action_flag))
    record(
        f"admin.{action}",
        user=instance.user,
        object=f"{instance.content_type.app_label}.{instance.content_type.model}:{instance.object_id}",
        name=instance.object_repr,
        change=instance.get_change_message(),
    )


def connect_admin_log() -> None:
    from django.contrib.admin.models import LogEntry
    from django.db.models.signals import post_save

    post_save.connect(record_admin_action, sender=LogEntry, dispatch_uid="playground.audit.admin")
