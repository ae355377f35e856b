"""The scorer's agents: metrics batches and account changes → Redis views and score events.

Records are read in batches (faust keeps managing the group, offsets and rebalances; a
batch's offsets are acknowledged only after it is applied). Invalid records go to the
dead-letter topic with their reason; they never stop the agent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import faust
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.common.clock import format_timestamp, utcnow
from services.common.contracts import (
    TOPIC_ACCOUNTS,
    TOPIC_DAY_SUMMARIES,
    TOPIC_METRICS,
    TOPIC_SCORES,
)
from services.common.events import MetricsSnapshot
from services.common.kafka.lag import REFRESH_SECONDS, ConsumerLag
from services.common.metrics import observe_processing
from services.common.streams import dead_letter, record_ms, with_redis_retry
from services.common.territories import Registry, load_registry
from services.common.validation import Rejection, validate_account, validate_metrics
from services.common.view.client import redis_client
from services.common.view.durability import Replication
from services.common.view.generations import read_generations
from services.scorer import metrics as m
from services.scorer.app import app, settings
from services.scorer.day_summaries import DaySummaryEmitter, Position, day_summary_records
from services.scorer.plan import BatchPlan, plan_batch
from services.scorer.scores import ScoreEmitter
from services.scorer.standings import AccountChange, BatchOutcome, StandingsUpdater
from services.scorer.store import ScorerStore
from services.scorer.topics import (
    accounts_dlq,
    accounts_topic,
    metrics_dlq,
    metrics_topic,
)

log = logging.getLogger("scorer")
T = TypeVar("T")
_emitter = ScoreEmitter(settings)
_day_summaries = DaySummaryEmitter(settings)
# Before a batch is committed, its writes are on OBS_REDIS_WAIT_REPLICAS replicas (a failover
# loses nothing): services/common/view/durability.py.
_replication = Replication(settings, m.REPLICA_WAIT_TIMEOUTS, log)
_lag = ConsumerLag(app, [settings.topic(TOPIC_METRICS), settings.topic(TOPIC_ACCOUNTS)])
_scores_topic = settings.topic(TOPIC_SCORES)
_day_summaries_topic = settings.topic(TOPIC_DAY_SUMMARIES)
_registry: Registry | None = None
_redis: Redis | None = None
_updaters: dict[int, StandingsUpdater] = {}  # generation -> its updater (own caches)


def registry() -> Registry:
    global _registry
    if _registry is None:
        _registry = load_registry()
    return _registry


def redis() -> Redis:
    """The worker's client, created on first use inside the worker's event loop."""
    global _redis
    if _redis is None:
        _redis = redis_client(settings)
    return _redis


async def updaters() -> list[StandingsUpdater]:
    """The updaters of the generations to write, the current one first: while a rebuild
    builds the next generation, every batch is applied to both (services/common/view/
    generations.py; the writes are idempotent, so the rebuild's and ours agree)."""
    written = (await read_generations(redis())).written()
    for gone in set(_updaters) - {rk.generation for rk in written}:
        del _updaters[gone]
    for rk in written:
        if rk.generation not in _updaters:
            _updaters[rk.generation] = StandingsUpdater(ScorerStore(redis(), rk), registry())
    return [_updaters[rk.generation] for rk in written]


async def _dead_letter(topic: faust.TopicT, event: faust.EventT, rejection: Rejection) -> None:
    await dead_letter(topic, event, rejection, m.DEAD_LETTERS, log)


async def _with_redis_retry(what: str, work: Callable[[], Awaitable[T]]) -> T:
    return await with_redis_retry(what, work, m.REDIS_ERRORS, log)


async def _publish_scores(events: Sequence[dict]) -> None:
    await _emitter.publish(events)
    for event in events:
        m.SCORE_EVENTS.labels(event["status"]).inc()
    m.RECORDS_PRODUCED.labels(_scores_topic).inc(len(events))


@app.on_before_shutdown.connect
async def _stop_emitter(sender: Any, /, *_: Any, signal: Any, **__: Any) -> None:
    """Flush the score events and day summaries still in flight when the worker stops."""
    await _emitter.stop()
    await _day_summaries.stop()


async def _apply(batch: list[MetricsSnapshot], plan: BatchPlan) -> BatchOutcome:
    current, *building = await updaters()
    outcome = await current.apply_plan(plan)
    # Not `len - applied`: an account shared by several territories writes several entries.
    outcome.ignored = len(batch) - outcome.snapshots_applied
    for updater in building:
        await updater.apply_plan(plan, announce=False)
    await _replication.ensure(redis())
    return outcome


@app.agent(metrics_topic)
async def apply_metrics(stream: Any) -> None:
    """Validate, then apply each batch of snapshots to the standings."""
    async for events in stream.take_events(
        settings.scorer_batch_size, within=settings.scorer_batch_seconds
    ):
        m.EVENTS_CONSUMED.labels("metrics").inc(len(events))
        valid: list[MetricsSnapshot] = []
        read: list[Position] = [(e.message.partition, e.message.offset) for e in events]
        positions: dict[str, Position] = {}
        for event, position in zip(events, read, strict=True):
            result = validate_metrics(event.message.value or b"", record_ms(event))
            if isinstance(result, Rejection):
                await _dead_letter(metrics_dlq, event, result)
            else:
                valid.append(result)
                positions[result.event_id] = position
        plan = plan_batch(valid)
        if valid:
            started = time.perf_counter()
            outcome = await _with_redis_retry("applying snapshots", partial(_apply, valid, plan))
            m.APPLY_SECONDS.observe(time.perf_counter() - started)
            m.BATCH_SIZE.observe(len(valid))
            m.SNAPSHOTS_APPLIED.labels("current").inc(outcome.applied)
            m.SNAPSHOTS_APPLIED.labels("edition").inc(outcome.edition_applied)
            m.SNAPSHOTS_IGNORED.inc(outcome.ignored)
            m.WATERMARK.set(outcome.watermark)
            scores = outcome.score_events
        else:
            scores = []
        # Then what the batch read, for rebuilds (before its offsets are committed; a batch
        # with no valid record is recorded too: its records need no second look either). The
        # two topics' acknowledgements are awaited together: one round trip to the broker;
        # both end before a failure of either is raised.
        summaries = day_summary_records(positions, read, plan, format_timestamp(utcnow()))
        for sent in await asyncio.gather(
            _publish_scores(scores), _day_summaries.publish(summaries), return_exceptions=True
        ):
            if isinstance(sent, BaseException):
                raise sent
        m.RECORDS_PRODUCED.labels(_day_summaries_topic).inc(len(summaries))
        observe_processing("scorer", events)


@app.timer(interval=5.0)
async def report_freshness() -> None:
    """Follow the watermark other workers advance (the freshness gauge is computed at each
    scrape, so it grows while nothing new is applied)."""
    try:
        watermark = await (await updaters())[0].store.summaries.watermark()
    except (RedisError, OSError):
        m.REDIS_ERRORS.inc()
        return
    m.WATERMARK.set(watermark)


@app.timer(interval=REFRESH_SECONDS)
async def report_consumer_lag() -> None:
    """obs_consumer_lag_records for the partitions this worker is assigned."""
    await _lag.refresh()


@app.agent(accounts_topic)
async def apply_accounts(stream: Any) -> None:
    """Record each territory's account and re-derive its entries when it changes."""
    async for events in stream.take_events(500, within=settings.scorer_batch_seconds):
        m.EVENTS_CONSUMED.labels("accounts").inc(len(events))
        changes = []
        for event in events:
            result = validate_account(event.message.value or b"", record_ms(event))
            if not isinstance(result, Rejection) and result.id not in registry():
                result = Rejection("unknown_territory", f"no territory {result.id!r}")
            if isinstance(result, Rejection):
                await _dead_letter(accounts_dlq, event, result)
            else:
                # The record's offset is its version: one partition, so offsets order the
                # records, and a rebuild reads the same ones.
                changes.append((result.id, result.handle, result.simulated, event.message.offset))
        if changes:
            score_events = await _with_redis_retry(
                "applying account changes", partial(_apply_accounts, changes)
            )
            await _publish_scores(score_events)
        observe_processing("scorer", events)


async def _apply_accounts(changes: list[AccountChange]) -> list[dict]:
    current, *building = await updaters()
    score_events = await current.apply_accounts(changes)
    for updater in building:
        await updater.apply_accounts(changes)
    await _replication.ensure(redis())
    return score_events
