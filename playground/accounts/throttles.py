"""Rate limits keyed by the client's address (playground.accounts.addresses),
for API views and plain pages alike: DRF's SimpleRateThrottle and its cache,
as the API's other throttles."""
from __future__ import annotations

import math

from rest_framework.throttling import SimpleRateThrottle

from .addresses import client_address


class AddressThrottle(SimpleRateThrottle):
    """``scope``'s rate (REST_FRAMEWORK's DEFAULT_THROTTLE_RATES) per client address."""

    def __init__(self, scope: str | None = None) -> None:
        if scope is not None:
            self.scope = scope
        super().__init__()

    def get_ident(self, request) -> str:
        return client_address(request)

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def address_wait(scope: str, request) -> int | None:
    """None when a request of ``scope`` from this client's address is within
    its rate (and counts it), else the seconds to wait (at least 1)."""
    throttle = AddressThrottle(scope)
    if throttle.allow_request(request, None):
        return None
    return max(1, math.ceil(throttle.wait() or 1))


def failures_wait(scope: str, request) -> int | None:
    """Like address_wait, for a rate of failed attempts (a wrong join code, a
    wrong password): looks without counting; note_failure counts one. So a
    class behind one NAT joins at any pace, while guessing is slowed."""
    throttle = AddressThrottle(scope)
    if throttle.rate is None:
        return None
    throttle.key = throttle.get_cache_key(request, None)
    throttle.history = throttle.cache.get(throttle.key, [])
    throttle.now = throttle.timer()
    while throttle.history and throttle.history[-1] <= throttle.now - throttle.duration:
        throttle.history.pop()
    if len(throttle.history) < throttle.num_requests:
        return None
    return max(1, math.ceil(throttle.wait() or 1))


def note_failure(scope: str, request) -> None:
    throttle = AddressThrottle(scope)
    if throttle.rate is not None:
        throttle.allow_request(request, None)  # records the attempt when within the rate
