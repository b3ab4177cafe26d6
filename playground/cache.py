"""The cache's serializer: JSON, never pickle.

Django's ``RedisCache`` pickles every value but integers, and unpickling runs
code of the data's choosing: whoever can write one key into Redis (a sandbox
that reached it, a neighbour on its network) would run code in every web and
Celery process that reads it. JSON only builds dicts, lists, strings and
numbers, so a value planted in Redis is at worst a wrong value.

Integers stay raw Redis integers, as Django's own serializer keeps them, so
``incr``/``decr`` stay atomic. Values must be JSON types (a dataclass goes in
as ``asdict``); a tuple comes back a list. Setting anything else raises
``TypeError`` at once. A stored value that is not JSON (pickled bytes, say)
reads as a miss (``None``), with a warning.
"""
from __future__ import annotations

import json
import logging

log = logging.getLogger(__name__)


class JSONSerializer:
    def dumps(self, obj) -> int | bytes:
        # type(), not isinstance(): a bool is stored as JSON, as Django does.
        if type(obj) is int:
            return obj
        return json.dumps(obj, separators=(",", ":")).encode()

    def loads(self, data: bytes):
        try:
            return int(data)
        except ValueError:
            pass
        try:
            return json.loads(data)
        except ValueError:  # UnicodeDecodeError is one too
            log.warning("the cache holds a value that is not JSON (%d bytes); read as a miss", len(data))
            return None
