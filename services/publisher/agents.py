"""The publisher's agents and timers: score events → rank changes, snapshots → link status,
account records → territories' link status, commands → results, editions and accounts.

Records are read in batches (faust keeps managing the group, offsets and rebalances; a batch's
offsets are acknowledged after it is handled). Invalid `obs.scores.v1` and `obs.commands.v1`
records go to their dead-letter topics; invalid `obs.metrics.v1` and `obs.accounts.v1` records
are skipped and counted (the scorer, their first consumer, dead-letters them: one dead-letter
record per invalid record, not one per consumer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import faust
import orjson
from redis.exceptions import RedisError

from services.common.commands.keys import CommandKeys
from services.common.commands.sender import Delivered
from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_COMMANDS, TOPIC_METRICS, TOPIC_SCORES
from services.common.events import MetricsSnapshot
from services.common.kafka.compat import committed_offsets
from services.common.kafka.lag import REFRESH_SECONDS, ConsumerLag
from services.common.metrics import observe_processing
from services.common.streams import dead_letter, record_ms, with_redis_retry
from services.common.territories import load_registry
from services.common.validation import (
    Rejection,
    validate_account,
    validate_command,
    validate_metrics,
    validate_score,
)
from services.common.view.client import redis_client
from services.common.view.durability import Replication
from services.common.view.generations import answer_hold, read_generations
from services.common.view.keys import ViewKeys
from services.publisher import metrics as m
from services.publisher.app import app, settings
from services.publisher.core import Publisher
from services.publisher.hold import HoldGate, applied, wait_closed
from services.publisher.lease import stand_down
from services.publisher.rank_changes import Trigger
from services.publisher.store import UNFENCED, Fenced
from services.publisher.topics import (
    WRITTEN,
    accounts_topic,
    commands_dlq,
    commands_topic,
    metrics_topic,
    scores_dlq,
    scores_topic,
)

log = logging.getLogger("publisher")
T = TypeVar("T")
SCORE_BATCH = 2000
METRICS_BATCH = 2000
BATCH_SECONDS = 0.2
RECONCILE_SECONDS = 5.0  # re-read every category's list (repairs a lost score event)
AUTO_PUBLISH_CHECK_SECONDS = 10.0

HOLD_POLL_SECONDS = 0.5  # how often the generation pointer is read (a rebuild's hold)
HOLD_CLOSE_SECONDS = 60.0  # longest wait for the writes under way when a hold is asked
_publisher: Publisher | None = None
_publisher_lock = asyncio.Lock()
_token = UNFENCED  # the lease token every write checks (services/publisher/lease.py)
_generation = 0  # the generation of the view written (services/common/view/generations.py)
_held_for: int | None = None  # the generation a rebuild builds while this publisher holds
_gate = HoldGate()
# Writes on OBS_REDIS_WAIT_REPLICAS replicas before a produce or an acknowledged batch
# (services/common/view/durability.py).
_replication = Replication(settings, log=log)
_lag = ConsumerLag(
    app, [settings.topic(t) for t in (TOPIC_SCORES, TOPIC_METRICS, TOPIC_ACCOUNTS, TOPIC_COMMANDS)]
)


def hold_lease(token: int, generation: int, *, hold_pending: bool = False) -> None:
    """Write with this lease token, in this generation, from now on (set by main before the
    worker starts). `hold_pending`: a rebuild asked the live publisher to hold before this one
    took the lease; it may have read the topics already (no publisher answered), so nothing is
    written, not even what was missed while stopped, until `follow_generations` has answered
    the hold and resumed on the rebuilt generation (a rank change produced meanwhile would be
    missing from it, and its seq produced twice)."""
    global _token, _generation
    _token, _generation = token, generation
    if hold_pending:
        _gate.shut()


async def _send(topic: str, key: bytes, value: bytes) -> Delivered:
    """Produce through the worker's producer and wait for the delivery."""
    pending = await WRITTEN[topic].send(key=key, value=value)
    metadata = await pending
    m.RECORDS_PRODUCED.labels(settings.topic(topic)).inc()
    return Delivered(metadata.partition, metadata.offset)


async def _replicated() -> None:
    """Every Redis write made so far is on the replicas (a failover cannot lose it)."""
    if _publisher is not None:
        await _replication.ensure(_publisher.store.redis)


async def _replicated_send(topic: str, key: bytes, value: bytes) -> Delivered:
    """The publisher's produces: a record follows the writes it reflects onto the replicas."""
    await _replicated()
    return await _send(topic, key, value)


def _new_publisher(generation: int) -> Publisher:
    """A publisher writing `generation` of the view with this process's lease token (not
    loaded yet)."""
    return Publisher(
        redis_client(settings),
        ViewKeys(generation),
        load_registry(),
        _replicated_send,
        grace_hours=settings.edition_grace_hours,
        command_keys=CommandKeys.from_settings(settings),
        token=_token,
    )


async def publisher() -> Publisher:
    """The worker's publisher, created and loaded on first use inside the worker's loop."""
    global _publisher
    async with _publisher_lock:
        if _publisher is None:
            candidate = _new_publisher(_generation)
            await _with_redis_retry("loading the publisher's state", candidate.load)
            _publisher = candidate
    return _publisher


async def _with_redis_retry(what: str, work: Callable[[], Awaitable[T]]) -> T:
    """Retry while Redis is away; stand down when a write is refused (another publisher
    took over: this one was paused past its lease)."""

    async def replicated_work() -> T:  # each attempt: the batch, then its writes replicated
        _replication.begin()
        result = await work()
        await _replicated()
        return result

    try:
        return await with_redis_retry(what, replicated_work, m.REDIS_ERRORS, log)
    except Fenced as exc:
        stand_down(f"while {what}: {exc}")


async def _dead_letter(topic: faust.TopicT, event: faust.EventT, rejection: Rejection) -> None:
    await dead_letter(topic, event, rejection, m.DEAD_LETTERS, log)


@app.agent(scores_topic)
async def track_rank_changes(stream: Any) -> None:
    """After each batch of score events, re-read the categories it touched."""
    async for events in stream.take_events(SCORE_BATCH, within=BATCH_SECONDS):
        m.EVENTS_CONSUMED.labels("scores").inc(len(events))
        triggers: dict[str, Trigger] = {}
        for event in events:
            result = validate_score(event.message.value or b"", record_ms(event))
            if isinstance(result, Rejection):
                await _dead_letter(scores_dlq, event, result)
                continue
            triggers.setdefault(result.category, Trigger()).add(
                result.observed_at, event.message.timestamp
            )
        async with _gate.writing(applied(events)):
            core = await publisher()
            for category, trigger in sorted(triggers.items()):
                await _with_redis_retry(
                    f"publishing {category}'s list",
                    partial(core.ranks.refresh, category, trigger),
                )
        observe_processing("publisher", events)


@app.agent(metrics_topic)
async def track_links(stream: Any) -> None:
    """Follow each account's link status through its snapshots."""
    async for events in stream.take_events(METRICS_BATCH, within=BATCH_SECONDS):
        m.EVENTS_CONSUMED.labels("metrics").inc(len(events))
        valid: list[MetricsSnapshot] = []
        for event in events:
            result = validate_metrics(event.message.value or b"", record_ms(event))
            if isinstance(result, Rejection):
                m.INVALID_RECORDS.labels(TOPIC_METRICS, result.reason).inc()
            else:
                valid.append(result)
        async with _gate.writing(applied(events)):
            if valid:
                core = await publisher()
                await _with_redis_retry("judging links", partial(core.links.apply_snapshots, valid))
        observe_processing("publisher", events)


@app.agent(accounts_topic)
async def track_accounts(stream: Any) -> None:
    """A territory's account changed: its link status follows the new account."""
    async for events in stream.take_events(500, within=BATCH_SECONDS):
        m.EVENTS_CONSUMED.labels("accounts").inc(len(events))
        async with _gate.writing(applied(events)):
            core = await publisher()
            for event in events:
                result = validate_account(event.message.value or b"", record_ms(event))
                if isinstance(result, Rejection):
                    m.INVALID_RECORDS.labels(TOPIC_ACCOUNTS, result.reason).inc()
                    continue
                await _with_redis_retry(
                    "applying an account change", partial(core.links.apply_account, result)
                )
        observe_processing("publisher", events)


@app.agent(commands_topic)
async def execute_commands(stream: Any) -> None:
    """Execute each operator command once and record its result."""
    async for event in stream.events():
        m.EVENTS_CONSUMED.labels("commands").inc()
        result = validate_command(event.message.value or b"", record_ms(event))
        if isinstance(result, Rejection):
            await _dead_letter(commands_dlq, event, result)
            observe_processing("publisher", [event])
            continue
        async with _gate.writing(applied([event])):
            core = await publisher()
            await _with_redis_retry(
                f"executing command {result.event_id[:12]}",
                partial(core.commands.execute, result),
            )
        observe_processing("publisher", [event])


@app.task
async def publish_changes_missed_while_stopped() -> None:
    """At start: whatever the standings became while the publisher was down is published."""
    async with _gate.writing():
        core = await publisher()
        await _with_redis_retry("re-reading every list", core.ranks.refresh_all)


@app.timer(interval=REFRESH_SECONDS)
async def report_consumer_lag() -> None:
    """obs_consumer_lag_records for the partitions this worker is assigned."""
    await _lag.refresh()


@app.timer(interval=RECONCILE_SECONDS)
async def reconcile_published_lists() -> None:
    """Re-read every list: a change whose score event was lost is still published."""
    try:
        async with _gate.writing():
            core = await publisher()
            await core.ranks.refresh_all()
    except Fenced as exc:
        stand_down(f"while re-reading the lists: {exc}")
    except (RedisError, OSError) as exc:  # the next tick tries again
        m.REDIS_ERRORS.inc()
        log.error("redis error while re-reading the lists: %r", exc)


def auto_publish_hours() -> float | None:
    """Hours after a month's end (event time) to publish it automatically; None: never.

    `OBS_EDITION_AUTO_PUBLISH_HOURS` (Settings.edition_auto_publish_hours).
    """
    return settings.edition_auto_publish_hours


@app.timer(interval=AUTO_PUBLISH_CHECK_SECONDS)
async def request_due_editions() -> None:
    """Automatic publication: request the oldest due month as an `auto` command."""
    delay = auto_publish_hours()
    if delay is None:
        return
    try:
        async with _gate.writing():
            core = await publisher()
            command = await core.commands.due_auto_command(delay)
    except Fenced as exc:
        stand_down(f"while checking for a due edition: {exc}")
    except (RedisError, OSError) as exc:
        m.REDIS_ERRORS.inc()
        log.error("redis error while checking for a due edition: %r", exc)
        return
    if command is not None:
        await _send(TOPIC_COMMANDS, command["event_id"].encode(), orjson.dumps(command))
        log.info("requested the automatic publication of %s", command["args"]["edition"])


@app.timer(interval=HOLD_POLL_SECONDS)
async def follow_generations() -> None:
    """Hold while a rebuild builds the publisher's part of a new generation; then resume on
    the generation the rebuild made current (or on ours, if it gave up)."""
    global _held_for
    core = await publisher()
    redis = core.store.redis
    try:
        pointer = await read_generations(redis)
        if _held_for is None and pointer.hold is not None and pointer.hold != _generation:
            applied_up_to = await wait_closed(_gate, HOLD_CLOSE_SECONDS)
            if applied_up_to is None:
                log.warning("a rebuild asked to hold, but a write did not end in time")
                return
            # where the rebuild's reading ends: past what was applied, else where the group
            # resumes (partitions nothing was applied from since this publisher started)
            positions = {
                f"{topic}:{partition}": offset
                for (topic, partition), offset in committed_offsets(app.consumer).items()
            } | applied_up_to
            answer = {"token": _token, "generation": _generation, "positions": positions}
            if await answer_hold(redis, pointer.hold, answer):
                _held_for = pointer.hold
                log.info(
                    "holding while a rebuild builds generation %d (%d input partitions "
                    "applied up to where the rebuild reads)",
                    pointer.hold,
                    len(positions),
                )
            else:
                _gate.open()
        elif _held_for is not None and pointer.hold != _held_for:
            await _resume(pointer.current)
        elif _held_for is None and pointer.current > _generation:
            await wait_closed(_gate, HOLD_CLOSE_SECONDS)
            await _resume(pointer.current)
        elif _held_for is None and _gate.closed and pointer.hold is None:
            _gate.open()  # shut at start for a hold that was withdrawn before it was answered
    except Fenced as exc:
        stand_down(f"while changing generations: {exc}")
    except (RedisError, OSError) as exc:  # the next tick tries again
        m.REDIS_ERRORS.inc()
        log.error("redis error while following the generations: %r", exc)


async def _resume(current: int) -> None:
    """Write to `current` from now on (claiming its slots first), and open the gate."""
    global _publisher, _generation, _held_for
    if current != _generation:
        candidate = _new_publisher(current)
        await candidate.store.fence.claim()
        await candidate.load()
        previous, _publisher, _generation = _publisher, candidate, current
        if previous is not None:
            await previous.store.redis.aclose()
        log.info("writing generation %d of the view from now on", current)
    _held_for = None
    _gate.open()
