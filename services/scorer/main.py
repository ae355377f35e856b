"""Start the scorer worker: check topics and Redis, serve /metrics, run faust with a watchdog."""

from __future__ import annotations

import asyncio

from prometheus_client import start_http_server
from redis.asyncio import Redis

from services.common.kafka import verify_topics
from services.common.lifecycle import configure_logging
from services.common.redis_keys import LAYOUT_VERSION
from services.common.settings import Settings
from services.common.streams import run_worker
from services.common.territories import load_registry
from services.scorer.store import ScorerStore, geo_fingerprint

SERVICE = "scorer"


class LayoutMismatch(RuntimeError):
    """Redis holds a derived view in another layout version than this code's."""


async def _prepare_redis(settings: Settings) -> None:
    redis = Redis.from_url(settings.redis_url)
    try:
        await redis.ping()
        store = ScorerStore(redis)
        found = await store.claim_layout()
        if found is not None:
            raise LayoutMismatch(
                f"Redis at {settings.redis_host_port} holds a view in layout {found}; this "
                f"scorer writes layout {LAYOUT_VERSION}. Stop the scorer and the publisher, then "
                "run `observatoire rebuild` (the view is derived from the topics)."
            )
        registry = load_registry()
        await store.ensure_geo(registry, geo_fingerprint(registry))
    finally:
        await redis.aclose()


def run_scorer(settings: Settings) -> None:
    """Run the scorer in the foreground until SIGTERM/SIGINT."""
    log = configure_logging(SERVICE, settings.log_level)
    from services.scorer import agents  # noqa: F401  (registers the agents on the app)
    from services.scorer.app import app
    from services.scorer.topics import REQUIRED

    verify_topics(settings, [settings.topic(name) for name in REQUIRED])
    asyncio.run(_prepare_redis(settings))
    if settings.scorer_metrics_port:
        start_http_server(settings.scorer_metrics_port, addr=settings.metrics_host)
    log.info(
        "scorer starting: broker %s, redis %s, metrics :%s",
        settings.kafka_bootstrap,
        settings.redis_host_port,
        settings.scorer_metrics_port,
    )

    run_worker(app, SERVICE, settings, log)
