"""Bring the publisher's Redis facts up to its own topics (at start, and for `rebuild`).

The topics are the truth; Redis records, per partition, the offset up to which each of the
publisher's topics is reflected (`obs:{meta}:publisher:offsets`). At start the publisher reads
each topic from there to its end offsets and applies what it finds:

- `obs.rank-changes.v1`: an event produced but not recorded (a crash, even SIGKILL, between
  producing and recording) becomes the category's state, so `seq` continues from the topic's
  tail; events also fill the recent-events list.
- `obs.editions.v1`: months with parts are frozen; complete months are published editions.
- `obs.command-results.v1`: results are recorded, so no command is executed twice.

With no recorded offsets (an empty Redis, or `rebuild` after wiping), everything is read.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError
from redis.asyncio import Redis

from services.common.contracts import (
    CATEGORY_IDS,
    TOPIC_COMMAND_RESULTS,
    TOPIC_EDITIONS,
    TOPIC_RANK_CHANGES,
)
from services.common.editions import logged_editions, split_parts
from services.common.events import CommandResult, EditionPart, Event, RankChange
from services.common.kafka.reader import TopicReader
from services.common.settings import Settings
from services.common.view.keys import ViewKeys
from services.common.view.values import EditionRecord, RankState
from services.publisher.store import UNFENCED, PublisherStore

log = logging.getLogger("publisher.recovery")


@dataclass(slots=True)
class RecoveryReport:
    """What was read from each topic and applied."""

    read: dict[str, int] = field(default_factory=dict)
    invalid: dict[str, int] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)  # category -> seq after recovery
    recovered_events: int = 0  # rank-change events found beyond what Redis had recorded
    editions: list[str] = field(default_factory=list)  # months restored as published
    command_results: int = 0

    def count(self, topic: str, n: int = 1) -> None:
        self.read[topic] = self.read.get(topic, 0) + n


def _parse(model: type[Event], value: bytes | None) -> Any:
    """A record of one of our own topics, or None if it does not fit the contract."""
    if value is None:
        return None
    try:
        return model.model_validate(orjson.loads(value))
    except (orjson.JSONDecodeError, ValidationError):
        return None


async def restore_from_topics(
    settings: Settings,
    redis: Redis,
    rk: ViewKeys,
    *,
    from_start: bool = False,
    token: int = UNFENCED,
) -> RecoveryReport:
    """Apply what the publisher's topics hold beyond the offsets Redis reflects, writing with
    the lease `token` (a publisher taking over claims every slot first: services/publisher/
    lease.py; what it reads then is the topics' tail, and no former holder writes after it)."""
    store = PublisherStore(redis, rk, token)
    report = RecoveryReport()
    await _restore_rank_changes(settings, store, report, from_start)
    await _restore_editions(settings, store, report, from_start)
    await _restore_command_results(settings, store, report, from_start)
    return report


async def _restore_rank_changes(
    settings: Settings, store: PublisherStore, report: RecoveryReport, from_start: bool
) -> None:
    states = {category: await store.rank_changes.state(category) for category in CATEGORY_IDS}
    pending = {category: await store.rank_changes.pending(category) for category in CATEGORY_IDS}
    # Last score the log told of each territory, per category (for lists restored from it).
    told: dict[str, dict[str, float | None]] = defaultdict(dict)
    start = {} if from_start else await store.offsets.of(TOPIC_RANK_CHANGES)
    async with TopicReader(settings, TOPIC_RANK_CHANGES, start) as reader:
        async for chunk in reader:
            report.count(TOPIC_RANK_CHANGES, len(chunk))
            for record in chunk:
                event = _parse(RankChange, record.value)
                if event is None:
                    report.invalid[TOPIC_RANK_CHANGES] = (
                        report.invalid.get(TOPIC_RANK_CHANGES, 0) + 1
                    )
                    log.warning("%s@%d: not a rank change, ignored", record.topic, record.offset)
                    continue
                category, state = event.category, states[event.category]
                changed = {change.id: change.new_score for change in event.changes}
                if event.seq <= state.seq:
                    # Already recorded: only make sure it is among the recent events.
                    scores = state.scores if event.event_id == state.event_id else {}
                else:
                    ahead = pending[category]
                    if ahead is not None and ahead.event_id == event.event_id:
                        scores = ahead.scores
                    else:
                        scores = {
                            tid: changed[tid]
                            if tid in changed
                            else state.scores[tid]
                            if tid in state.scores
                            else told[category].get(tid)
                            for tid in event.top
                        }
                told[category].update(changed)
                await store.rank_changes.commit(
                    category,
                    seq=event.seq,
                    event_id=event.event_id,
                    at=event.at,
                    top=event.top,
                    scores=scores,
                    record=record.value,
                )
                if event.seq > state.seq:
                    if state.seq and event.seq > state.seq + 1:
                        log.warning(
                            "%s: Redis had seq %d, the topic continues at %d",
                            category,
                            state.seq,
                            event.seq,
                        )
                    report.recovered_events += 1
                    states[category] = RankState(
                        event.seq, event.event_id, event.at, list(event.top), scores
                    )
        await store.offsets.set(TOPIC_RANK_CHANGES, reader.ends)
    for category in CATEGORY_IDS:
        ahead = pending[category]
        if ahead is not None and ahead.seq > states[category].seq:
            # Written ahead, never produced: the next event reuses its seq.
            await store.rank_changes.drop_pending(category)
        report.seq[category] = states[category].seq


async def _restore_editions(
    settings: Settings, store: PublisherStore, report: RecoveryReport, from_start: bool
) -> None:
    parts: list[dict[str, Any]] = []
    start = {} if from_start else await store.offsets.of(TOPIC_EDITIONS)
    async with TopicReader(settings, TOPIC_EDITIONS, start) as reader:
        async for chunk in reader:
            report.count(TOPIC_EDITIONS, len(chunk))
            for record in chunk:
                if _parse(EditionPart, record.value) is None or record.value is None:
                    report.invalid[TOPIC_EDITIONS] = report.invalid.get(TOPIC_EDITIONS, 0) + 1
                    continue
                # The record as produced (key order, 50 vs 50.0): what Redis held before.
                parts.append(orjson.loads(record.value))
        logged = logged_editions(parts)
        published = await store.editions.published()
        stamps: dict[str, str] = {}
        for part in parts:
            stamps[part["edition"]] = max(stamps.get(part["edition"], ""), part["published_at"])
        for month in sorted(logged.frozen):
            await store.editions.freeze(month, stamps[month])
        for month in sorted(logged.published):
            if month in published:
                continue
            categories = logged.published[month]
            for category, (published_at, standings) in categories.items():
                await store.editions.write_published(
                    category,
                    month,
                    published_at=published_at,
                    parts=len(split_parts(standings)),
                    standings=standings,
                )
            published_at = next(iter(categories.values()))[0]
            await store.editions.record_published(
                month,
                EditionRecord(
                    published_at=published_at,
                    command_id=None,
                    categories={c: len(s) for c, (_, s) in sorted(categories.items())},
                ),
            )
            report.editions.append(month)
        await store.offsets.set(TOPIC_EDITIONS, reader.ends)


async def _restore_command_results(
    settings: Settings, store: PublisherStore, report: RecoveryReport, from_start: bool
) -> None:
    start = {} if from_start else await store.offsets.of(TOPIC_COMMAND_RESULTS)
    async with TopicReader(settings, TOPIC_COMMAND_RESULTS, start) as reader:
        async for chunk in reader:
            report.count(TOPIC_COMMAND_RESULTS, len(chunk))
            for record in chunk:
                result = _parse(CommandResult, record.value)
                if result is None or record.value is None:
                    continue
                await store.results.save(result.command_id, record.value)
                report.command_results += 1
        await store.offsets.set(TOPIC_COMMAND_RESULTS, reader.ends)
