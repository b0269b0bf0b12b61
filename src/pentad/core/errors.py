"""Application errors rendered as RFC 9457 problem+json, for every failure the platform returns."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_CONTENT_TYPE = "application/problem+json"

logger = structlog.get_logger("pentad.errors")


class AppError(Exception):
    """An error a client can act on. Subclasses fix status and code; the message says what to do."""

    status: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.headers = headers or {}
        self.extra = extra


class BadRequest(AppError):
    status, code = 400, "bad_request"


class NotAuthenticated(AppError):
    status, code = 401, "not_authenticated"

    def __init__(self, message: str = "Authentication required.", **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="pentad"'})
        super().__init__(message, **kwargs)


class PermissionDenied(AppError):
    status, code = 403, "permission_denied"

    def __init__(self, message: str = "You do not have permission to do this.", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)


class NotFound(AppError):
    status, code = 404, "not_found"


class Conflict(AppError):
    status, code = 409, "conflict"


class PayloadTooLarge(AppError):
    status, code = 413, "payload_too_large"


class TooManyRequests(AppError):
    status, code = 429, "rate_limited"


class ServiceUnavailable(AppError):
    status, code = 503, "unavailable"


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description='Where the problem is, e.g. ["body", "email"].')
    msg: str = Field(description="What is wrong.")
    type: str = Field(description="Machine-readable kind of problem.")


class Problem(BaseModel):
    """RFC 9457 problem details, with Pentad's `code` and `request_id` extensions."""

    type: str = Field("about:blank", description="URI identifying the problem type.")
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(description="HTTP status code.")
    detail: str = Field(description="What went wrong and what to do about it.")
    code: str = Field(description="Stable machine-readable error code.")
    request_id: str | None = Field(None, description="Quote this when reporting a problem.")
    errors: list[ValidationIssue] | None = Field(None, description="Field-level problems (400 and 422).")


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
    }
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_CONTENT_TYPE)


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


_STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _clean_errors(raw: list[Any]) -> list[dict[str, Any]]:
    cleaned = []
    for item in raw:
        loc = [part if isinstance(part, int) else str(part) for part in item.get("loc", ())]
        cleaned.append({"loc": loc, "msg": str(item.get("msg", "")), "type": str(item.get("type", ""))})
    return cleaned


def app_error_response(exc: AppError, request_id: str | None) -> Response:
    """The problem+json answer to an AppError (the app's handler, and direct routes: core/web/direct.py)."""
    return problem_response(
        exc.status, exc.code, exc.message, request_id=request_id, headers=exc.headers, **exc.extra
    )


def http_error_response(exc: StarletteHTTPException, request_id: str | None) -> Response:
    """The problem+json answer to Starlette's HTTPException (a 405, a body over its limit)."""
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return problem_response(
        exc.status_code,
        _STATUS_CODES.get(exc.status_code, "http_error"),
        detail,
        request_id=request_id,
        headers=dict(exc.headers or {}),
    )


def install_error_handlers(app: FastAPI) -> None:
    async def on_app_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AppError)
        return app_error_response(exc, _request_id(request))

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = _clean_errors(list(exc.errors()))
        if any(item["type"] == "json_invalid" for item in errors):
            return problem_response(
                400,
                "malformed_json",
                "The request body is not valid JSON.",
                request_id=_request_id(request),
                errors=errors,
            )
        first = errors[0] if errors else {"loc": [], "msg": "invalid input"}
        where = ".".join(str(part) for part in first["loc"]) or "request"
        return problem_response(
            422,
            "validation_failed",
            f"{where}: {first['msg']}",
            request_id=_request_id(request),
            errors=errors,
        )

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return http_error_response(exc, _request_id(request))

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)


def _database_busy(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


class ErrorBoundaryMiddleware:
    """Turns an unexpected exception into a 500 problem inside the middleware stack.

    Starlette's own last-resort handler sits outside every middleware, so its 500s would miss the security
    headers, the request id and the transaction's rollback; this layer answers before any of those unwind.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                logger.exception("unhandled_error", exc_type=type(exc).__name__)
                raise
            if _database_busy(exc):
                # Overload, not a fault: SQLite gave up waiting for its write lock (PENTAD_DATABASE__
                # SQLITE_BUSY_TIMEOUT_MS). Nothing was applied; the client may retry.
                logger.warning("database_busy", path=scope.get("path"))
                busy = problem_response(
                    503,
                    "database_busy",
                    "The database is busy; nothing was applied. Retry in a moment.",
                    request_id=scope.get("state", {}).get("request_id"),
                    headers={"Retry-After": "1"},
                )
                await busy(scope, receive, send)
                return
            logger.exception("unhandled_error", exc_type=type(exc).__name__)
            response = problem_response(
                500,
                "internal_error",
                "Something went wrong on our side; the request was not applied.",
                request_id=scope.get("state", {}).get("request_id"),
            )
            await response(scope, receive, send)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries documenting problem+json errors for the given statuses."""
    return {
        status: {
            "model": Problem,
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def also_answers(status: int, model: type[BaseModel], description: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entry for a second success status of a route (e.g. 200 for an idempotent retry
    of a create that answers 201), so the document lists every status the route returns."""
    return {status: {"model": model, "description": description}}
