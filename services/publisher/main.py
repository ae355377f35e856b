"""Start the publisher: check topics and Redis, bring Redis up to the publisher's own topics,
serve /metrics, run the faust worker with the shutdown watchdog."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import start_http_server

from services.common.commands.keys import CommandKeys
from services.common.kafka import verify_topics
from services.common.lifecycle import configure_logging
from services.common.settings import Settings
from services.common.streams import run_worker
from services.common.view.client import redis_client
from services.common.view.layout import check_view
from services.publisher.recovery import RecoveryReport, restore_from_topics

SERVICE = "publisher"


async def _recover(settings: Settings) -> RecoveryReport:
    redis = redis_client(settings)
    try:
        await redis.ping()
        await check_view(redis, where=settings.redis_where)
        return await restore_from_topics(settings, redis)
    finally:
        await redis.aclose()


def _log_recovery(log: logging.Logger, report: RecoveryReport) -> None:
    seqs = ", ".join(f"{c} {s}" for c, s in report.seq.items() if s) or "none yet"
    log.info(
        "recovered from its topics: %s record(s) read beyond Redis, %d rank-change "
        "event(s) recovered; last seq per category: %s",
        sum(report.read.values()),
        report.recovered_events,
        seqs,
    )
    if report.editions:
        log.info("restored published editions: %s", ", ".join(report.editions))


def _warn_without_command_key(log: logging.Logger, settings: Settings) -> None:
    """Say at start when operator commands cannot be verified (every one will be refused)."""
    if not CommandKeys.from_settings(settings).accepted:
        log.warning(
            "no command key (OBS_COMMAND_KEY): operator commands cannot be verified, so every "
            "command is refused as unauthenticated; set OBS_COMMAND_KEY to the key the API "
            "and the CLI sign with"
        )


def run_publisher(settings: Settings) -> None:
    """Run the publisher in the foreground until SIGTERM/SIGINT."""
    log = configure_logging(SERVICE, settings.log_level)
    from services.publisher import agents  # registers the agents on the app
    from services.publisher.app import app
    from services.publisher.topics import REQUIRED

    verify_topics(settings, [settings.topic(name) for name in REQUIRED])
    _log_recovery(log, asyncio.run(_recover(settings)))
    if settings.publisher_metrics_port:
        start_http_server(settings.publisher_metrics_port, addr=settings.metrics_host)
    log.info(
        "publisher starting: broker %s, redis %s, metrics :%s, grace %g h, auto-publish %s, "
        "commands verified with %d key(s)",
        settings.kafka_bootstrap,
        settings.redis_where,
        settings.publisher_metrics_port,
        settings.edition_grace_hours,
        "off" if agents.auto_publish_hours() is None else f"{agents.auto_publish_hours():g} h",
        len(CommandKeys.from_settings(settings).accepted),
    )
    _warn_without_command_key(log, settings)

    run_worker(app, SERVICE, settings, log)
