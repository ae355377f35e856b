"""The FastAPI application: JSON API under /api/v1, public pages in French, operations
endpoints, OpenAPI at /openapi.json with Swagger UI at /docs (its assets served from
/static/swagger/, no CDN). Reads Redis only; writes operator commands to the broker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.api.coalesce import ReadCoalescer, RenderedBodies
from services.api.command_sender import CommandSender
from services.api.errors import install_error_handlers
from services.api.items import ScoredEntries
from services.api.middleware import (
    BodySizeLimit,
    PublicReadCors,
    RateLimit,
    RequestMetrics,
    SecurityHeaders,
    UnknownMethods,
)
from services.api.operator import token_digest
from services.api.options import ApiOptions
from services.api.ratelimit import TokenBuckets
from services.api.read.view import LiveView
from services.api.responses import JSON
from services.api.routes import (
    badges,
    commands,
    compare,
    data,
    dead_links,
    docs,
    editions,
    feeds,
    health,
    history,
    method,
    operator,
    pages,
    rank_changes,
    search,
    standings,
    territories,
)
from services.api.streams import StreamHub
from services.common.settings import Settings, get_settings
from services.common.territories import load_registry
from services.common.view.client import redis_client

log = logging.getLogger("api")

# Never rate limited: probes, scrapes and the pages' own assets.
RATE_LIMIT_EXEMPT: Final = ("/healthz", "/readyz", "/metrics", "/static/")

DESCRIPTION = """
Live rankings of French local governments on Instagram (methodology v1), monthly editions
(the palmarès) and rank-change events. Errors answer `{"error": {"code", "message"}}`.
Operator actions need `Authorization: Bearer <OBS_OPERATOR_TOKEN>` and answer 202 with the
URL of the command's status. See docs/api.md.
"""


def create_app(settings: Settings | None = None, options: ApiOptions | None = None) -> FastAPI:
    """Build the API for these settings (the process-wide ones by default)."""
    settings = settings or get_settings()
    options = options or ApiOptions()
    registry = load_registry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("event loop: %s", type(asyncio.get_running_loop()).__module__.split(".")[0])
        redis = redis_client(settings, socket_timeout=5, health_check_interval=30)
        view = LiveView(redis, registry, grace_hours=settings.edition_grace_hours)
        hub = StreamHub(
            redis,
            view,
            poll_seconds=options.sse_poll_seconds,
            max_streams=options.sse_max_streams,
            max_streams_per_client=options.sse_max_streams_per_client,
        )
        hub.start()
        command_sender = CommandSender(settings)
        state = app.state
        state.redis = redis
        state.view = view
        state.hub = hub
        state.commands = command_sender
        try:
            yield
        finally:
            await hub.close()
            await command_sender.close()
            await redis.aclose()

    app = FastAPI(
        title="Observatoire des territoires — API",
        version="1",
        description=DESCRIPTION,
        default_response_class=JSON,
        lifespan=lifespan,
        # FastAPI's own /docs and /redoc pages load their assets from a CDN: routes.docs
        # serves Swagger UI from /static/swagger/ instead; there is no ReDoc.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.options = options
    app.state.registry = registry
    app.state.scored = ScoredEntries(registry)
    app.state.coalescer = ReadCoalescer()
    app.state.bodies = RenderedBodies()
    app.state.operator_digest = token_digest(settings)
    install_error_handlers(app)

    # Outermost first: measure everything, secure every answer, refuse unknown methods, then
    # floods, then oversized bodies.
    app.add_middleware(BodySizeLimit, max_bytes=options.max_body_bytes)
    if settings.rate_limit_enabled:
        app.add_middleware(
            RateLimit,
            buckets=TokenBuckets(settings.rate_limit_per_minute),
            exempt=RATE_LIMIT_EXEMPT,
        )
    app.add_middleware(UnknownMethods)
    # Outside UnknownMethods: a CORS preflight (OPTIONS) of a public read is answered here.
    app.add_middleware(PublicReadCors)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestMetrics)

    for router in (
        standings.router,
        editions.router,
        territories.router,
        history.router,
        search.router,
        compare.router,
        rank_changes.router,
        dead_links.router,
        commands.router,
        operator.router,
        health.router,
        pages.router,
        feeds.router,
        badges.router,
        method.router,
        data.router,
        docs.router,
    ):
        app.include_router(router)
    app.mount("/static", StaticFiles(packages=[("services.api", "static")]), name="static")
    return app
