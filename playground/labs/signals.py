"""Signals of labs, for apps that follow learners (classes) without labs knowing them."""
from __future__ import annotations

from django.dispatch import Signal

# A session's skip job changed state or message: kwargs user_id, lab_id, session_id.
skip_changed = Signal()
