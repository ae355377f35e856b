"""Rank changes: each category's published list, re-read after every batch of score events.

The score events only say *that* a category may have moved; what moved is read from the
scorer's live standings in Redis (one consistent read per category) and diffed against the
last published list (services/common/rank_diff.py). One event per category per batch, `seq`
one more than the last event's.

Producing and recording are two steps, so a crash can fall between them. The order makes that
harmless: (1) a write-ahead copy of the scores (which the event record cannot carry) goes to
Redis, (2) the event is produced and its delivery awaited, (3) the state, the recent events
and the topic offset are recorded. At start (services/publisher/recovery.py) the topic is read
from the last recorded offset to its end: an event produced but not recorded is found there
and becomes the state, so the next event continues its `seq`: never a gap, never a repeat.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import orjson

from services.common.clock import format_timestamp, utcnow
from services.common.commands.sender import Sender
from services.common.contracts import CATEGORIES_BY_ID, CATEGORY_IDS, TOPIC_RANK_CHANGES
from services.common.events import MAX_LIST_ENTRIES
from services.common.rank_diff import rank_change_event
from services.common.view.values import PendingRankChange, RankState
from services.publisher import metrics as m
from services.publisher.store import PublisherStore

log = logging.getLogger("publisher.rank_changes")


@dataclass(slots=True)
class Trigger:
    """What a batch of score events says about one category."""

    newest_observed_at: str | None = None
    oldest_record_time: float | None = None  # wall seconds of the oldest score record

    def add(self, observed_at: str, record_time: float | None) -> None:
        if self.newest_observed_at is None or observed_at > self.newest_observed_at:
            self.newest_observed_at = observed_at
        if record_time is not None and (
            self.oldest_record_time is None or record_time < self.oldest_record_time
        ):
            self.oldest_record_time = record_time


def event_time(as_of: str | None, last_at: str | None, trigger: Trigger | None) -> str:
    """A rank-change event's `at`: the category's `as_of` (the watermark it reflects), or,
    only while there is no watermark, the batch's newest `observed_at`; never before the
    category's previous event (monotonic per category). A snapshot dated 2099 thus dates no
    event once a watermark exists: its `observed_at` is not the category's time."""
    newest = as_of if as_of is not None else (trigger.newest_observed_at if trigger else None)
    stamps = [s for s in (newest, last_at) if s]
    return max(stamps) if stamps else format_timestamp(utcnow())


def published_size(category: str) -> int:
    """How many territories a category's published list holds at most."""
    return CATEGORIES_BY_ID[category].published_size or MAX_LIST_ENTRIES


class RankChangeTracker:
    """Detects and announces changes of each category's published list."""

    def __init__(self, store: PublisherStore, send: Sender) -> None:
        self.store = store
        self.send = send
        self._states: dict[str, RankState] = {}
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        """Load every category's recorded list (after recovery brought Redis up to the topic)."""
        for category in CATEGORY_IDS:
            self._states[category] = await self.store.rank_changes.state(category)
            m.RANK_CHANGE_SEQ.labels(category).set(self._states[category].seq)

    def state(self, category: str) -> RankState:
        return self._states[category]

    async def refresh_all(self) -> list[dict]:
        """Re-read every category (a periodic check, and once at start)."""
        events = []
        for category in CATEGORY_IDS:
            event = await self.refresh(category)
            if event is not None:
                events.append(event)
        return events

    async def refresh(self, category: str, trigger: Trigger | None = None) -> dict | None:
        """Publish the category's list if it changed; returns the event produced, if any."""
        async with self._lock:
            state = self._states[category]
            read = await self.store.rank_changes.read_top(
                category, published_size(category), state.top
            )
            new_scores: dict[str, float | None] = {**read.previous_scores, **read.scores}
            at = event_time(read.as_of, state.at, trigger)
            event = rank_change_event(
                category=category,
                seq=state.seq + 1,
                at=at,
                previous_top=state.top,
                top=read.top,
                old_scores=state.scores,
                new_scores=new_scores,
            )
            if event is None:
                return None
            scores: dict[str, float | None] = {tid: read.scores[tid] for tid in read.top}
            record = orjson.dumps(event)
            await self.store.rank_changes.write_pending(
                category, PendingRankChange(event["seq"], event["event_id"], scores)
            )
            delivered = await self.send(TOPIC_RANK_CHANGES, category.encode(), record)
            await self.store.rank_changes.commit(
                category,
                seq=event["seq"],
                event_id=event["event_id"],
                at=at,
                top=read.top,
                scores=scores,
                record=record,
            )
            await self.store.offsets.advance(
                TOPIC_RANK_CHANGES, delivered.partition, delivered.offset + 1
            )
            self._states[category] = RankState(
                seq=event["seq"], event_id=event["event_id"], at=at, top=read.top, scores=scores
            )
        m.RANK_CHANGE_EVENTS.labels(category).inc()
        m.RANK_CHANGE_SEQ.labels(category).set(event["seq"])
        for change in event["changes"]:
            m.RANK_CHANGES.labels(change["kind"]).inc()
        if trigger is not None and trigger.oldest_record_time is not None:
            m.DETECTION_DELAY.observe(max(0.0, time.time() - trigger.oldest_record_time))
        log.debug(
            "%s: seq %d, %d changes, leader %s",
            category,
            event["seq"],
            len(event["changes"]),
            event["leader"],
        )
        return event
