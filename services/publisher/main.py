"""Start the publisher: check topics and Redis, wait for the lease (a standby until then), claim
every slot it writes, bring Redis up to the publisher's own topics, run the faust worker with
the shutdown watchdog; the lease is renewed meanwhile and given up on a clean stop."""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import start_http_server

from services.common.commands.keys import CommandKeys
from services.common.kafka import verify_topics
from services.common.lifecycle import arm_shutdown_watchdog, configure_logging, log_stopped
from services.common.settings import Settings
from services.common.streams import run_worker
from services.common.view.client import redis_client
from services.common.view.generations import read_generations
from services.common.view.layout import check_view
from services.publisher.lease import LeaseKeeper, candidate_name, stand_down, wait_for_lease
from services.publisher.recovery import RecoveryReport, restore_from_topics
from services.publisher.store import Fenced, FencedWriter
from services.publisher.store.lease import Held

SERVICE = "publisher"


async def _check_redis(settings: Settings) -> None:
    redis = redis_client(settings)
    try:
        await redis.ping()
        await check_view(redis, (await read_generations(redis)).keys, where=settings.redis_where)
    finally:
        await redis.aclose()


async def _take_over(settings: Settings, held: Held) -> tuple[int, bool, RecoveryReport]:
    """Claim every slot of the current generation for the lease's token (a former holder's
    writes are refused from now on), then read the topics' tails: what they hold is final,
    nobody else writes. Returns the generation, whether a rebuild's hold is pending (read
    with the lease held: a rebuild asks before it looks for a lease holder), and what was
    recovered."""
    redis = redis_client(settings)
    try:
        pointer = await read_generations(redis)
        rk = pointer.keys
        await FencedWriter(redis, rk, held.token).claim()
        report = await restore_from_topics(settings, redis, rk, token=held.token)
        hold_pending = pointer.hold is not None and pointer.hold != rk.generation
        return rk.generation, hold_pending, report
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


async def _standby(settings: Settings, log: logging.Logger) -> Held | None:
    """Wait for the lease; None when SIGTERM or SIGINT arrives first (faust's worker, which
    handles them later, is not running yet)."""
    loop = asyncio.get_running_loop()
    waiting = asyncio.ensure_future(wait_for_lease(settings, candidate_name()))

    def stop() -> None:
        arm_shutdown_watchdog(SERVICE, settings.shutdown_watchdog_seconds, log)
        waiting.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    try:
        return await waiting
    except asyncio.CancelledError:
        return None
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def run_publisher(settings: Settings) -> None:
    """Run the publisher in the foreground until SIGTERM/SIGINT."""
    log = configure_logging(SERVICE, settings.log_level)
    from services.publisher import agents  # registers the agents on the app
    from services.publisher.app import app
    from services.publisher.topics import REQUIRED

    verify_topics(settings, [settings.topic(name) for name in REQUIRED])
    asyncio.run(_check_redis(settings))
    metrics_port = settings.metrics_port(settings.publisher_metrics_port)
    if metrics_port:  # a standby serves its metrics too (obs_publisher_active 0)
        start_http_server(metrics_port, addr=settings.metrics_host)
    held = asyncio.run(_standby(settings, log))
    if held is None:  # stopped while a standby
        log_stopped(SERVICE, log)
        return
    keeper = LeaseKeeper(settings, held)
    keeper.start()
    try:
        generation, hold_pending, report = asyncio.run(_take_over(settings, held))
    except Fenced as exc:
        stand_down(str(exc))
    _log_recovery(log, report)
    if hold_pending:
        log.info("a rebuild is under way: holding until it is done")
    agents.hold_lease(held.token, generation, hold_pending=hold_pending)
    log.info(
        "publisher starting: broker %s, redis %s, metrics :%s, grace %g h, auto-publish %s, "
        "commands verified with %d key(s)",
        settings.kafka_bootstrap,
        settings.redis_where,
        metrics_port,
        settings.edition_grace_hours,
        "off" if agents.auto_publish_hours() is None else f"{agents.auto_publish_hours():g} h",
        len(CommandKeys.from_settings(settings).accepted),
    )
    _warn_without_command_key(log, settings)

    try:
        run_worker(app, SERVICE, settings, log)
    finally:
        keeper.stop()
