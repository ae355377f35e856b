"""What every faust service of the observatory shares: contract topics, dead letters,
Redis retries, and a worker that stops within 10 s of SIGTERM."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import faust
from prometheus_client import Counter
from redis.exceptions import RedisError

from services.common.clock import utcnow
from services.common.contracts import ALL_TOPICS_BY_NAME
from services.common.deadletter import dead_letter_record
from services.common.lifecycle import arm_shutdown_watchdog, log_stopped
from services.common.settings import Settings
from services.common.validation import Rejection

T = TypeVar("T")
REDIS_RETRY_MAX_SECONDS = 5.0
# faust's log levels are crit/error/warn/info/debug (not "warning").
_FAUST_LEVELS = {"DEBUG": "debug", "INFO": "info", "WARNING": "warn", "ERROR": "error"}


def contract_topic(app: faust.App, settings: Settings, name: str) -> faust.TopicT:
    """A contract topic (prefixed by settings) with its contract partition count."""
    return app.topic(
        settings.topic(name),
        key_serializer="raw",
        value_serializer="raw",
        partitions=ALL_TOPICS_BY_NAME[name].partitions,
        internal=False,
    )


def record_ms(event: faust.EventT) -> int | None:
    """The Kafka record timestamp of an event, in milliseconds."""
    timestamp = event.message.timestamp
    return None if timestamp is None else int(timestamp * 1000)


async def dead_letter(
    topic: faust.TopicT,
    event: faust.EventT,
    rejection: Rejection,
    counter: Counter,
    log: logging.Logger,
) -> None:
    """Send an invalid record to its dead-letter topic (delivery awaited) and count it."""
    message = event.message
    record = dead_letter_record(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        record_timestamp_ms=record_ms(event),
        payload=message.value or b"",
        rejection=rejection,
        now=utcnow(),
    )
    # Wait for delivery: the source offset is acknowledged after its batch.
    await (await topic.send(key=message.key, value=record))
    counter.labels(message.topic, rejection.reason).inc()
    log.warning(
        "dead-lettered %s[%d]@%d: %s (%s)",
        message.topic,
        message.partition,
        message.offset,
        rejection.reason,
        rejection.detail,
    )


async def with_redis_retry(
    what: str, work: Callable[[], Awaitable[T]], errors: Counter, log: logging.Logger
) -> T:
    """Run `work()` until Redis answers: an outage pauses the stream, never drops it."""
    delay = 0.1
    while True:
        try:
            return await work()
        except (RedisError, OSError) as exc:
            errors.inc()
            log.error("redis error while %s (retrying in %.1f s): %r", what, delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, REDIS_RETRY_MAX_SECONDS)


def run_worker(app: faust.App, service: str, settings: Settings, log: logging.Logger) -> None:
    """Run a faust worker in the foreground; SIGTERM/SIGINT arm the shutdown watchdog.

    The app and its agents are built when their module is imported, from the process's
    settings (`get_settings()`: the environment); a worker asked to run with other settings
    refuses rather than run half-configured (docs/decisions.md §20)."""
    configured = getattr(app, "settings", None)
    if configured is not None and configured != settings:
        raise ValueError(
            f"{service}: its faust app was configured from the environment at import and "
            "differs from the settings given; start it with `observatoire service "
            f"{service}`, which uses the environment for both"
        )

    class Worker(faust.Worker):
        def _on_sigterm(self) -> None:
            arm_shutdown_watchdog(service, settings.shutdown_watchdog_seconds, log)
            super()._on_sigterm()

        def _on_sigint(self) -> None:
            arm_shutdown_watchdog(service, settings.shutdown_watchdog_seconds, log)
            super()._on_sigint()

        def on_worker_shutdown(self) -> None:
            log_stopped(service, log)

    Worker(app, loglevel=_FAUST_LEVELS[settings.log_level], quiet=True).execute_from_commandline()
