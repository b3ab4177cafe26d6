"""The web tier's CPU priority.

On a lab host the web tier shares the CPUs with the sandboxes, where learners
run builds, floods and loops of their own. The terminal's echo waits for the
web process to be scheduled, so that process runs at a higher priority (a
lower nice value, ``PLAYGROUND_WEB_NICE``) than the sandboxes: keystrokes stay
quick while the instances are busy, and what the sandboxes get of the CPUs
hardly changes (the web tier's own work is small). Measured with 50 busy
terminals on a 2-core lab host: echo p99 11-24 ms at nice 0, about 4 ms at
-10 (docs/performance.md).

Raising a priority takes root (CAP_SYS_NICE); without it the process keeps
its priority and says so once.
"""
from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def apply_nice(value: int, *, setpriority=os.setpriority, getpriority=os.getpriority) -> int:
    """Set this process's nice value to ``value`` (0: leave it); the value it
    runs at afterwards. Call before threads start: on Linux the value is per
    thread and new threads inherit it."""
    current = getpriority(os.PRIO_PROCESS, 0)
    if value == 0 or value == current:
        return current
    try:
        setpriority(os.PRIO_PROCESS, 0, value)
    except PermissionError:
        log.warning(
            "the web tier keeps nice %d: setting PLAYGROUND_WEB_NICE=%d needs root or "
            "CAP_SYS_NICE (set it to 0 to silence this)", current, value,
        )
        return current
    return getpriority(os.PRIO_PROCESS, 0)
