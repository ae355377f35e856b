"""Errors the API answers: `{"error": {"code", "message"}}` with a meaningful status.

The JSON API always answers JSON. A browser asking a public page (`Accept: text/html`, outside
`/api/`) gets the same status with a short page in French instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Scope

from services.api.responses import JSON

log = logging.getLogger("api.errors")

# Paths that are never pages: they answer JSON (or their own format) whatever Accept says.
_NOT_PAGES: Final = ("/api/", "/healthz", "/readyz", "/metrics", "/docs", "/openapi", "/static/")


class ApiError(Exception):
    """An error with its HTTP status and a stable machine-readable code."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSON:
    """The JSON error body every endpoint uses."""
    return JSON({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


_PAGE_TITLES: Final = {
    400: "Requête incorrecte",
    401: "Accès réservé",
    404: "Page introuvable",
    405: "Méthode non permise",
    413: "Requête trop volumineuse",
    422: "Paramètre invalide",
    429: "Trop de requêtes",
    500: "Erreur interne",
    503: "Service momentanément indisponible",
}


# What a reader of the pages is told (the technical message stays available below it).
_PAGE_MESSAGES: Final = {
    "unknown_category": "Cette catégorie de classement n’existe pas.",
    "unknown_territory": "Ce territoire n’existe pas (les identifiants ressemblent à dep-32, "
    "reg-76, com-75056).",
    "unknown_edition": "Aucun palmarès n’existe pour ce mois.",
    "not_found": "Cette page n’existe pas.",
    "invalid_parameter": "Un paramètre de l’adresse est invalide.",
    "bad_request": "L’adresse demandée est mal formée.",
    "rate_limited": "Trop de requêtes en peu de temps : patientez un instant, puis réessayez.",
    "redis_unavailable": "Les classements sont momentanément indisponibles. Réessayez dans "
    "quelques instants.",
    "internal_error": "Une erreur inattendue s’est produite ; elle a été enregistrée.",
}


def is_negotiated(scope: Scope) -> bool:
    """A public page's path: its errors are a page or JSON, by `Accept`."""
    path: str = scope.get("path", "")
    return not path.startswith(_NOT_PAGES)


def wants_page(scope: Scope) -> bool:
    """A browser asking for a public page (not the JSON API)."""
    if not is_negotiated(scope):
        return False
    for name, value in scope.get("headers", ()):
        if name == b"accept":
            return b"text/html" in value
    return False


def negotiated_error(
    scope: Scope,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The error as JSON, or as a page in French for a browser on a public page."""
    if wants_page(scope):
        from services.api.templating import render

        return render(
            "error.html",
            {
                "status": status,
                "title": _PAGE_TITLES.get(status, "Erreur"),
                "message": _PAGE_MESSAGES.get(code, message),
                "detail": message,
                "code": code,
            },
            status_code=status,
            headers=headers,
        )
    return error_response(status, code, message, headers)


# Path parameters of a fixed shape (a month, a command id): a wrong shape is a malformed
# request (400), not an invalid value (422).
SHAPED_PATH_PARAMETERS: Final = frozenset({"month", "command_id"})

_HTTP_CODES: Final = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    422: "invalid_parameter",
    429: "rate_limited",
    503: "unavailable",
}


def _shape_error(exc: RequestValidationError) -> str | None:
    """The message for a path parameter of the wrong shape (a month, a command id)."""
    for err in exc.errors():
        loc = err.get("loc", ())
        if len(loc) == 2 and loc[0] == "path" and loc[1] in SHAPED_PATH_PARAMETERS:
            value = err.get("input")
            if loc[1] == "month":
                return f"not an edition month YYYY-MM (01 to 12): {value!r}"
            return f"not a command id (64 lowercase hex digits): {value!r}"
    return None


def install_error_handlers(app: FastAPI) -> None:
    """Map our errors, FastAPI's validation errors and Starlette's HTTP errors to the shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return negotiated_error(request.scope, exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        shape = _shape_error(exc)
        if shape is not None:
            return negotiated_error(request.scope, 400, "bad_request", shape)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}"
            for err in exc.errors()
        )
        return negotiated_error(
            request.scope, 422, "invalid_parameter", problems or "invalid request"
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such resource: {request.url.path} (the API is under /api/v1, see /docs)"
        return negotiated_error(request.scope, exc.status_code, code, message, exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Starlette's ServerErrorMiddleware calls this (and still re-raises for the log).
        return negotiated_error(
            request.scope, 500, "internal_error", "an unexpected error occurred; it is logged"
        )

    @app.exception_handler(RedisError)
    @app.exception_handler(OSError)
    async def _redis(request: Request, exc: Exception) -> Response:
        # The client learns that the view is unavailable; what Redis said stays in the log.
        log.warning("redis unavailable while serving %s: %s", request.url.path, exc)
        return redis_unavailable(request.scope)


REDIS_UNAVAILABLE_MESSAGE: Final = "the derived view (Redis) is unavailable; retry in a few seconds"


def redis_unavailable(scope: Scope) -> Response:
    """503 `redis_unavailable`, saying nothing of the underlying error."""
    return negotiated_error(
        scope, 503, "redis_unavailable", REDIS_UNAVAILABLE_MESSAGE, {"Retry-After": "5"}
    )
