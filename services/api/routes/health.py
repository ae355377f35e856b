"""`/healthz` (the process answers), `/readyz` (Redis answers) and `/metrics`."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from services.api import schemas
from services.api.deps import RedisDep
from services.api.errors import REDIS_UNAVAILABLE_MESSAGE
from services.api.responses import JSON

log = logging.getLogger("api.health")
router = APIRouter(tags=["operations"])


@router.get("/healthz", responses={200: {"model": schemas.Health, "description": "OK"}})
async def healthz() -> JSON:
    """Liveness: the process serves requests."""
    return JSON({"status": "ok"})


@router.get(
    "/readyz",
    responses={
        200: {"model": schemas.Health, "description": "Redis answers."},
        503: {"description": "Redis does not answer."},
    },
)
async def readyz(redis: RedisDep) -> JSON:
    """Readiness: ready only when Redis answers."""
    try:
        await redis.ping()
    except (RedisError, OSError) as exc:
        log.warning("readiness: redis does not answer: %s", exc)
        return JSON(
            {
                "status": "unavailable",
                "error": {"code": "redis_unavailable", "message": REDIS_UNAVAILABLE_MESSAGE},
            },
            status_code=503,
        )
    return JSON({"status": "ready"})


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus exposition of the API's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
