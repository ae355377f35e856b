"""The API's request guards and measurements, as plain ASGI middleware (cheap per request).

- `RequestMetrics`: counts and times every request by method and route template (Prometheus);
  both labels are bounded, whatever clients send.
- `SecurityHeaders`: the security headers of every response (pages, errors, JSON, files).
- `UnknownMethods`: 405 for a method the API serves nowhere, before routing.
- `BodySizeLimit`: refuses bodies over a limit with 413, before any handler reads them.
- `RateLimit`: per-client token buckets on public endpoints; 429 with `Retry-After`.
- `PublicReadCors`: any origin may read the public data (GET/HEAD of the JSON API and the
  /donnees files), never write nor read the pages.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any, Final

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.errors import is_negotiated, negotiated_error
from services.api.metrics import LATENCY, RATE_LIMITED, REQUESTS
from services.api.ratelimit import TokenBuckets
from services.api.responses import DATA_POLICY, PAGE_POLICY

# Streams last as long as the client listens: their duration is not a latency.
_UNTIMED_SUFFIX: Final = "/stream"

# The methods some route serves; any other is answered 405 and counted as `other`.
SERVED_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT"})
_ALLOW: Final = ", ".join(sorted(SERVED_METHODS))
OTHER_METHOD: Final = "other"


class RequestMetrics:
    """`obs_api_requests_total{method, route, status}` and `obs_api_request_seconds{route}`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Labelled children by (method, route, status): `labels()` takes a lock and builds a
        # key on each call, a measurable share of a fast response. Bounded by the routes.
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def _metrics(self, method: str, template: str, status: str) -> tuple[Any, Any]:
        key = (method, template, status)
        found = self._children.get(key)
        if found is None:
            found = (REQUESTS.labels(method, template, status), LATENCY.labels(template))
            if len(self._children) < 10_000:
                self._children[key] = found
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_see)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            if method not in SERVED_METHODS:
                method = OTHER_METHOD
            requests, latency = self._metrics(method, template, str(status))
            if not template.endswith(_UNTIMED_SUFFIX):
                latency.observe(time.perf_counter() - started)
            requests.inc()


class UnknownMethods:
    """405 `method_not_allowed` for a method no route serves (`Allow` lists those that are)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SERVED_METHODS:
            await self.app(scope, receive, send)
            return
        response = negotiated_error(
            scope,
            405,
            "method_not_allowed",
            f"method not allowed; this API answers {_ALLOW}",
            {"Allow": _ALLOW},
        )
        await response(scope, receive, send)


_NOSNIFF: Final = (b"x-content-type-options", b"nosniff")
_REFERRER: Final = (b"referrer-policy", b"strict-origin-when-cross-origin")
_PAGE_CSP: Final = (b"content-security-policy", PAGE_POLICY.encode())
_DATA_CSP: Final = (b"content-security-policy", DATA_POLICY.encode())


class SecurityHeaders:
    """`Content-Security-Policy` (with `frame-ancestors 'none'`), `X-Content-Type-Options:
    nosniff` and `Referrer-Policy` on every response, and `Vary: Accept` on the paths whose
    errors are negotiated (a page or JSON, by `Accept`). A header the response sets itself
    wins (the API docs page sends its own policy, with its inline script's hash)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        negotiated = is_negotiated(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _secured(list(message.get("headers", ())), negotiated)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _secured(headers: list[tuple[bytes, bytes]], negotiated: bool) -> list[tuple[bytes, bytes]]:
    html = has_policy = has_nosniff = has_referrer = False
    vary_at = -1
    for index, (name, value) in enumerate(headers):
        if name == b"content-type":
            html = value.startswith(b"text/html")
        elif name == b"content-security-policy":
            has_policy = True
        elif name == b"x-content-type-options":
            has_nosniff = True
        elif name == b"referrer-policy":
            has_referrer = True
        elif name == b"vary":
            vary_at = index
    if not has_policy:
        headers.append(_PAGE_CSP if html else _DATA_CSP)
    if not has_nosniff:
        headers.append(_NOSNIFF)
    if not has_referrer:
        headers.append(_REFERRER)
    if negotiated:
        if vary_at < 0:
            headers.append((b"vary", b"Accept"))
        elif b"accept" not in headers[vary_at][1].lower():
            headers[vary_at] = (b"vary", headers[vary_at][1] + b", Accept")
    return headers


# What any web page may read cross-origin: the JSON API's reads and the open-data files. The
# operator actions (PUT/POST with a bearer token) and the pages get no CORS header.
PUBLIC_READ_PREFIXES: Final = ("/api/v1/", "/donnees/", "/flux/")
PUBLIC_READ_METHODS: Final = frozenset({"GET", "HEAD"})
_CORS_ORIGIN: Final = (b"access-control-allow-origin", b"*")
_CORS_EXPOSE: Final = (b"access-control-expose-headers", b"ETag, Content-Disposition, Retry-After")
_PREFLIGHT_HEADERS: Final = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD",
    "Access-Control-Allow-Headers": "Accept, If-None-Match, Last-Event-ID",
    "Access-Control-Max-Age": "86400",
}


class PublicReadCors:
    """`Access-Control-Allow-Origin: *` on GET/HEAD answers of the public paths (errors
    included, so that a page can read why), and their preflights (OPTIONS asking for GET or
    HEAD) answered 204. Without credentials: nothing there needs a cookie or a token. Any
    other OPTIONS goes on (the API serves no OPTIONS: 405), and so does every other method,
    untouched: a preflight for PUT or POST fails in the browser for want of these headers.
    (Starlette's CORSMiddleware applies to every path and every method of the app: it cannot
    leave the operator actions and the pages out.)"""

    def __init__(self, app: ASGIApp, prefixes: Iterable[str] = PUBLIC_READ_PREFIXES) -> None:
        self.app = app
        self.prefixes = tuple(prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method in PUBLIC_READ_METHODS:

            async def send_with_cors(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), _CORS_ORIGIN, _CORS_EXPOSE]
                await send(message)

            await self.app(scope, receive, send_with_cors)
            return
        if method == "OPTIONS" and _header(scope, b"origin") is not None:
            requested = _header(scope, b"access-control-request-method")
            if requested in PUBLIC_READ_METHODS:
                await Response(status_code=204, headers=_PREFLIGHT_HEADERS)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodySizeLimit:
    """413 for a request body over `max_bytes` (declared by Content-Length or streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                await negotiated_error(scope, 400, "bad_request", "invalid Content-Length header")(
                    scope, receive, send
                )
                return
            if too_big:
                await self._refuse(scope, receive, send)
                return
        # Read the body (at most max_bytes + 1), then hand it to the app as one message.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = negotiated_error(
            scope,
            413,
            "payload_too_large",
            f"request body over {self.max_bytes} bytes: operator actions take a small JSON body",
            {"Connection": "close"},
        )
        await response(scope, receive, send)


class RateLimit:
    """Per-client token buckets on every path but the exempt ones (health, metrics, assets)."""

    def __init__(self, app: ASGIApp, buckets: TokenBuckets, exempt: Iterable[str]) -> None:
        self.app = app
        self.buckets = buckets
        self.exempt = tuple(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(client_of(scope))
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        RATE_LIMITED.inc()
        retry = max(1, math.ceil(wait))
        response = negotiated_error(
            scope,
            429,
            "rate_limited",
            f"too many requests from this client: at most {round(self.buckets.rate * 60)} per "
            f"minute; retry in {retry} s",
            {"Retry-After": str(retry)},
        )
        await response(scope, receive, send)


def client_of(scope: Scope) -> str:
    """The client's address: the TCP peer, or the client that a trusted proxy reports
    (`forwarded_allow_ips`; uvicorn rewrites the scope, see services/api/main.py)."""
    client = scope.get("client")
    return client[0] if client else "unknown"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None
