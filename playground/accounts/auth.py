from __future__ import annotations

from rest_framework import authentication


class TokenAuthentication(authentication.TokenAuthentication):
    """``Authorization: Token <key>`` as docs/api.md says; listed first, so the
    token decides when a cookie comes too."""

    keyword = "Token"
