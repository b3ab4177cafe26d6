"""The API's errors: domain exceptions raised by actions, and the one place
that turns every error into docs/api.md's JSON shape."""
from __future__ import annotations

import logging
import sys

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpResponse, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from playground import metrics
from sandboxes.base import DriverError, NotRunning, OutOfCapacity

log = logging.getLogger(__name__)


class PlaygroundError(Exception):
    """A use case refused; ``status`` and ``code`` are docs/api.md's."""

    status = 400
    code = "invalid"
    retry_after: int | None = None

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retry_after is not None:
            self.retry_after = retry_after


class Invalid(PlaygroundError):
    status, code = 400, "invalid"


class Forbidden(PlaygroundError):
    status, code = 403, "forbidden"


class NotFoundError(PlaygroundError):
    status, code = 404, "not_found"


class LimitReached(PlaygroundError):
    status, code = 409, "limit_reached"


class ClassClosed(PlaygroundError):
    """Joining a class that has not started or is over."""

    status, code = 409, "class_closed"


class NotReady(PlaygroundError):
    status, code = 409, "not_ready"


class SessionOver(PlaygroundError):
    status, code = 410, "session_over"


class NoCapacity(PlaygroundError):
    status, code, retry_after = 503, "no_capacity", 10


class Unavailable(PlaygroundError):
    """A part the playground needs (the database, Redis, a lab host's engine)
    did not answer a call that needed it now."""

    status, code, retry_after = 503, "unavailable", 5


def dependency_down(exc: BaseException) -> str | None:
    """The part that ``exc`` says does not answer ("the database", "Redis"),
    or None when ``exc`` is something else."""
    import kombu.exceptions
    import redis.exceptions
    from django.db import utils as db

    if isinstance(exc, (db.OperationalError, db.InterfaceError)):
        return "the database"
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                        kombu.exceptions.OperationalError)):
        return "Redis"
    return None


def unavailable_message(part: str) -> str:
    return f"The playground cannot reach {part} right now; try again in a few seconds."


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, *, retry_after: int | None = None) -> Response:
    metrics.api_error(code)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return Response(error_body(code, message), status=status, headers=headers)


def _validation_message(detail) -> str:
    """Flatten DRF's nested validation detail into one readable sentence."""
    if isinstance(detail, dict):
        parts = []
        for field, value in detail.items():
            text = _validation_message(value)
            parts.append(text if field == "non_field_errors" else f"{field}: {text}")
        return "; ".join(parts)
    if isinstance(detail, list):
        return " ".join(_validation_message(item) for item in detail)
    return str(detail)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every error in docs/api.md's shape."""
    if isinstance(exc, PlaygroundError):
        return error_response(exc.status, exc.code, exc.message, retry_after=exc.retry_after)
    if isinstance(exc, OutOfCapacity):
        return error_response(503, "no_capacity", exc.message, retry_after=NoCapacity.retry_after)
    if isinstance(exc, NotRunning):
        return error_response(409, "not_ready", f"The instance is not running: {exc.message}")
    if isinstance(exc, DriverError):
        if exc.permanent:
            return error_response(400, "invalid", exc.message)
        return error_response(503, "unavailable", f"The lab host does not answer: {exc.message}",
                              retry_after=Unavailable.retry_after)
    part = dependency_down(exc)
    if part is not None:
        log.warning("%s does not answer (%s: %s)", part, type(exc).__name__, exc)
        return error_response(503, "unavailable", unavailable_message(part), retry_after=Unavailable.retry_after)
    if isinstance(exc, RequestDataTooBig):
        return error_response(400, "invalid", "The request body is too large.")
    if isinstance(exc, (Http404, drf.NotFound)):
        return error_response(404, "not_found", "Not found.")
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        response = error_response(401, "unauthenticated", str(exc.detail))
        response["WWW-Authenticate"] = 'Token realm="api"'
        return response
    if isinstance(exc, (drf.PermissionDenied, DjangoPermissionDenied)):
        message = str(getattr(exc, "detail", "")) or "You may not do this."
        return error_response(403, "forbidden", message)
    if isinstance(exc, drf.Throttled):
        wait = int(exc.wait or 1) + (0 if exc.wait is None or float(exc.wait).is_integer() else 1)
        return error_response(429, "rate_limited", f"Too many requests; retry in {wait} s.", retry_after=max(wait, 1))
    if isinstance(exc, drf.ValidationError):
        return error_response(400, "invalid", _validation_message(exc.detail))
    if isinstance(exc, drf.ParseError):
        return error_response(400, "invalid", f"Malformed request: {exc.detail}")
    if isinstance(exc, drf.UnsupportedMediaType):
        return error_response(400, "invalid", str(exc.detail))
    if isinstance(exc, drf.MethodNotAllowed):
        return error_response(405, "method_not_allowed", str(exc.detail))
    if isinstance(exc, drf.NotAcceptable):
        return error_response(406, "not_acceptable", str(exc.detail))
    if isinstance(exc, drf.APIException):
        return error_response(exc.status_code, "invalid", str(exc.detail))
    log.exception("unhandled error in %s", context.get("view"))
    return error_response(500, "internal", "Internal error; it has been logged.")


# -- Django-level handlers (outside DRF views) --------------------------------

def json_not_found(request, exception=None):
    if not request.path.startswith("/api/"):
        from django.views.defaults import page_not_found

        return page_not_found(request, exception)
    metrics.api_error("not_found")
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def json_server_error(request) -> HttpResponse:
    """Django's handler500 (errors outside DRF views: middleware, pages). It
    runs while the exception is handled, so a dependency that does not answer
    (the session middleware's database, say) is told apart from a bug."""
    part = dependency_down(sys.exc_info()[1]) if sys.exc_info()[1] is not None else None
    metrics.api_error("internal" if part is None else "unavailable")
    if part is None:
        return JsonResponse(error_body("internal", "Internal error; it has been logged."), status=500)
    message = unavailable_message(part)
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(error_body("unavailable", message), status=503)
    else:
        response = HttpResponse(f"<!doctype html><title>Unavailable</title><h1>Back in a moment</h1><p>{message}</p>",
                                status=503)
    response["Retry-After"] = str(Unavailable.retry_after)
    return response


def json_bad_request(request, exception=None) -> JsonResponse:
    metrics.api_error("invalid")
    return JsonResponse(error_body("invalid", "Bad request."), status=400)


def json_permission_denied(request, exception=None) -> JsonResponse:
    metrics.api_error("forbidden")
    return JsonResponse(error_body("forbidden", "You may not do this."), status=403)


def csrf_failure(request, reason: str = "") -> JsonResponse:
    metrics.api_error("forbidden")
    return JsonResponse(error_body("forbidden", f"CSRF check failed: {reason}"), status=403)
