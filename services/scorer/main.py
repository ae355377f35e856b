"""Start the scorer worker: check topics and Redis, serve /metrics, run faust with a watchdog."""

from __future__ import annotations

import asyncio

from prometheus_client import start_http_server

from services.common.kafka import verify_topics
from services.common.lifecycle import configure_logging
from services.common.settings import Settings
from services.common.streams import run_worker
from services.common.territories import load_registry
from services.common.view.client import redis_client
from services.common.view.generations import read_generations
from services.common.view.layout import claim_view
from services.scorer.store import ScorerStore, geo_fingerprint

SERVICE = "scorer"


async def _prepare_redis(settings: Settings) -> None:
    redis = redis_client(settings)
    try:
        await redis.ping()
        rk = (await read_generations(redis)).keys
        store = ScorerStore(redis, rk)
        await claim_view(redis, rk, where=settings.redis_where)
        registry = load_registry()
        await store.views.ensure_geo(registry, geo_fingerprint(registry))
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
    metrics_port = settings.metrics_port(settings.scorer_metrics_port)
    if metrics_port:
        start_http_server(metrics_port, addr=settings.metrics_host)
    log.info(
        "scorer starting: broker %s, redis %s, worker index %d, metrics %s",
        settings.kafka_bootstrap,
        settings.redis_where,
        settings.worker_index,
        f"http://{settings.metrics_host}:{metrics_port}/metrics" if metrics_port else "off",
    )

    run_worker(app, SERVICE, settings, log)
