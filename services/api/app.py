"""The FastAPI application: JSON API under /api/v1, operations endpoints, OpenAPI at /docs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.api.errors import error_response, install_error_handlers
from services.api.metrics import LATENCY, REQUESTS
from services.api.repository import StandingsRepository
from services.api.responses import JSON
from services.api.routes import health, standings
from services.common.settings import Settings, get_settings
from services.common.territories import load_registry


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for these settings (the process-wide ones by default)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = Redis.from_url(settings.redis_url, socket_timeout=5, health_check_interval=30)
        app.state.settings = settings
        app.state.redis = redis
        app.state.registry = load_registry()
        app.state.repository = StandingsRepository(redis)
        try:
            yield
        finally:
            await redis.aclose()

    app = FastAPI(
        title="Observatoire des territoires — API",
        version="1",
        description=(
            "Live rankings of French local governments on Instagram (methodology v1), "
            "monthly editions and rank-change events."
        ),
        default_response_class=JSON,
        lifespan=lifespan,
    )
    install_error_handlers(app)

    @app.middleware("http")
    async def measure_and_guard(request, call_next):
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except (RedisError, OSError) as exc:
            response = error_response(
                503, "redis_unavailable", f"the derived view is unavailable: {exc}"
            )
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        LATENCY.labels(template).observe(time.perf_counter() - started)
        REQUESTS.labels(request.method, template, str(response.status_code)).inc()
        return response

    app.include_router(standings.router)
    app.include_router(health.router)
    return app
