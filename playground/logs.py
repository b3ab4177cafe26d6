"""Log lines as JSON (PLAYGROUND_LOG_FORMAT=json; docs/operations.md, "Logs").

One object per line: ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``,
``message``, ``process``; ``exception`` with a traceback; and for the audit
log (``playground.audit``, playground/audit.py) ``audit``: the event, who did
it and the event's fields, so a collector can filter on them without parsing
the message.
"""
from __future__ import annotations

import json
import logging
from datetime import UTC, datetime


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        audit = getattr(record, "audit", None)
        if isinstance(audit, dict):
            entry["audit"] = audit
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # One line whatever the message holds: json.dumps escapes newlines.
        return json.dumps(entry, ensure_ascii=False, default=str)
