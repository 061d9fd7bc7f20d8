"""The gateway's client-facing errors, each rendered as one OperationOutcome.

    GatewayError            base: status, FHIR issue code, a safe message
    ├── BadRequest          400 invalid        malformed request or parameter
    ├── Unauthorized        401 login          missing or unverifiable token
    ├── Forbidden           403 forbidden      valid token, not allowed
    ├── NotFound            404 not-found      unknown (or hidden) resource
    ├── NotSupported        405 not-supported  an interaction refused on principle (history)
    ├── NotAcceptable       406 not-supported  unsupported format
    ├── Unprocessable       422 processing     well-formed, but not a value we take
    ├── TooManyRequests     429 throttled      over the client's request rate (Retry-After)
    ├── ServiceUnavailable  503 transient      a store or dependency is down
    └── InternalError       500 exception      a bug; details only in the server log

The database's :class:`store.db.StoreUnavailable` (and consent's
:class:`consent.errors.AccessLogUnavailable`, one of them) is answered as a
ServiceUnavailable: the store and consent know nothing of HTTP.

Messages are shown to clients, so they never contain exception text, personal identity
numbers or internal URLs.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from gateway.fhir_json import FhirJSONResponse
from store.db import StoreUnavailable

log = logging.getLogger(__name__)


class GatewayError(Exception):
    status = 500
    code = "exception"
    severity = "error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(GatewayError):
    status, code = 400, "invalid"


class Unauthorized(GatewayError):
    status, code = 401, "login"

    def __init__(self, message: str = "a valid bearer token is required") -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="samlad"'})


class Forbidden(GatewayError):
    status, code = 403, "forbidden"


class NotFound(GatewayError):
    status, code = 404, "not-found"


class NotSupported(GatewayError):
    """An interaction the gateway refuses on principle, whatever the resource: 405, with an
    empty ``Allow`` (no method is served at that path)."""

    status, code = 405, "not-supported"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Allow": ""})


class NotAcceptable(GatewayError):
    status, code = 406, "not-supported"


class Unprocessable(GatewayError):
    status, code = 422, "processing"


class TooManyRequests(GatewayError):
    status, code = 429, "throttled"

    def __init__(self, retry_after: float) -> None:
        # Says when to come back, never whose budget ran out or how large it is.
        super().__init__(
            "too many requests: try again later",
            headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
        )


class ServiceUnavailable(GatewayError):
    status, code = 503, "transient"


class InternalError(GatewayError):
    status, code = 500, "exception"


def operation_outcome(severity: str, code: str, message: str, **extra: Any) -> dict[str, Any]:
    """One OperationOutcome with a single issue."""
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": message}
    issue.update(extra)
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def error_response(error: GatewayError) -> FhirJSONResponse:
    return FhirJSONResponse(
        operation_outcome(error.severity, error.code, error.message),
        status_code=error.status,
        headers=error.headers,
    )


_STATUS_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    413: "too-costly",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
}


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (for ``Allow`` on a 405).

    The router answers a 405 from the first route whose path matches, so its ``Allow``
    names only that route's methods, while GET and POST of one path are separate routes.
    Each method is tried against every route instead (the routes' public ``matches``).
    """
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    )


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves the app as an OperationOutcome, from this one place."""

    async def on_gateway_error(_: Request, exc: Exception) -> FhirJSONResponse:
        assert isinstance(exc, GatewayError)
        return error_response(exc)

    async def on_store_unavailable(_: Request, exc: Exception) -> FhirJSONResponse:
        assert isinstance(exc, StoreUnavailable)
        return error_response(ServiceUnavailable(exc.message))

    async def on_http_error(request: Request, exc: Exception) -> FhirJSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        code = _STATUS_CODES.get(status, "exception" if status >= 500 else "invalid")
        message = "unknown path" if status == 404 else f"request not accepted ({status})"
        headers = dict(getattr(exc, "headers", None) or {})
        if status == 405:
            headers["Allow"] = allowed_methods(request)
        return FhirJSONResponse(
            operation_outcome("error", code, message), status_code=status, headers=headers
        )

    async def on_validation_error(_: Request, exc: Exception) -> FhirJSONResponse:
        assert isinstance(exc, RequestValidationError)
        # Name the offending parameters, never echo their values (they may be identifiers).
        names = sorted({".".join(str(p) for p in e.get("loc", ())[1:]) for e in exc.errors()})
        message = "invalid request parameter(s): " + ", ".join(n for n in names if n)
        return FhirJSONResponse(operation_outcome("error", "invalid", message), status_code=400)

    async def on_unexpected(_: Request, exc: Exception) -> FhirJSONResponse:
        log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
        return FhirJSONResponse(
            operation_outcome("error", "exception", "internal error"), status_code=500
        )

    app.add_exception_handler(GatewayError, on_gateway_error)
    app.add_exception_handler(StoreUnavailable, on_store_unavailable)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)
