"""Shared fixtures. Unit tests (tests/unit) run the web layer against the
in-memory fake driver; integration tests (tests/integration) run the real
processes against the real engine and Redis (tests/stack.py)."""
