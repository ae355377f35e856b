"""The scorer's day summaries (`obs.day-summaries.v1`): what a rebuild reads instead of
re-validating every snapshot for the daily history (docs/decisions.md §55).

A day's point is a pure function of the day's last-second `ok` snapshots (services/common/
history.py). The live scorer validates and summarises every snapshot anyway; after applying a
batch it records, per `obs.metrics.v1` partition and run of at most `RUN_RECORDS` records, the
offsets it read and the summaries of the batch's day winners among them. A rebuild then
treats a snapshot inside a recorded run as *covered*: its day's point is among the recorded
summaries (those of its own run, or of a later record of its batch: a winner of the batch
supersedes it), so it is validated only when it may be its month's or its account's newest
(services/scorer/reduce.py), one record in thirty in a log of daily snapshots. A run whose
record is missing, invalid or of another methodology version is simply not covered: its
snapshots are treated in full, as before. So the result is the same with or without the
topic; only the time differs.

`day_summary_records` and `Coverage` are pure; `DaySummaryEmitter` is the shell that produces.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from aiokafka import AIOKafkaProducer

from services.common.contracts import METHODOLOGY_VERSION, SCHEMA_VERSION, TOPIC_DAY_SUMMARIES
from services.common.events import DaySummaries, with_event_id
from services.common.kafka.clients import event_producer
from services.common.methodology import SnapshotSummary, engagement_of, interactions_of
from services.common.settings import Settings
from services.scorer.plan import BatchPlan

# At most this many metrics records per day-summaries record (so at most as many summaries:
# each record gives one at most), within the contract's list bound.
RUN_RECORDS: Final = 1000

Position = tuple[int, int]  # (partition, offset) of a metrics record


def day_summary_records(
    positions: dict[str, Position],
    read: Iterable[Position],
    plan: BatchPlan,
    at: str,
    *,
    run_records: int = RUN_RECORDS,
) -> list[dict[str, Any]]:
    """The `obs.day-summaries.v1` events of one applied batch.

    `read`: the position of every record of the batch (valid or not); `positions`: the
    position of each valid snapshot by event id; `plan`: the batch's plan (its `daily`
    winners). One event per partition and run of at most `run_records` consecutive records read,
    holding the winners read in that run."""
    by_partition: dict[int, list[int]] = {}
    for partition, offset in read:
        by_partition.setdefault(partition, []).append(offset)
    winners: dict[Position, list[tuple[str, str, SnapshotSummary]]] = {}
    for (platform, handle, _), same in plan.daily.items():
        for summary in same:
            winners.setdefault(positions[summary.event_id], []).append((platform, handle, summary))
    events: list[dict[str, Any]] = []
    for partition in sorted(by_partition):
        offsets = sorted(set(by_partition[partition]))
        for start in range(0, len(offsets), run_records):
            run = offsets[start : start + run_records]
            summaries = [
                _summary_obj(platform, handle, summary)
                for offset in run
                for platform, handle, summary in winners.get((partition, offset), ())
            ]
            if None in summaries:
                continue  # a summary the record cannot hold exactly: its run stays uncovered
            events.append(
                with_event_id(
                    {
                        "schema_version": SCHEMA_VERSION,
                        "at": at,
                        "methodology_version": METHODOLOGY_VERSION,
                        "partition": partition,
                        "first_offset": run[0],
                        "last_offset": run[-1],
                        "summaries": summaries,
                    }
                )
            )
    return events


def _summary_obj(platform: str, handle: str, summary: SnapshotSummary) -> dict[str, Any] | None:
    """A summary as the record holds it, or None when its interactions would not give back
    its engagement exactly (not expected below 10¹⁵ interactions)."""
    interactions = interactions_of(summary)
    if engagement_of(interactions, summary.posts, summary.followers) != summary.engagement:
        return None
    return {
        "platform": platform,
        "handle": handle,
        "observed_at": summary.observed_at,
        "event_id": summary.event_id,
        "followers": summary.followers,
        "follows": summary.follows,
        "posts": summary.posts,
        "interactions": interactions,
        "likes_hidden": summary.likes_hidden,
    }


def summaries_of(event: DaySummaries) -> list[tuple[str, str, SnapshotSummary]]:
    """(platform, handle, summary) of each summary of a valid event (ValueError when one is
    not a summary the methodology would make)."""
    return [
        (
            s.platform,
            s.handle,
            SnapshotSummary(
                observed_at=s.observed_at,
                event_id=s.event_id,
                followers=s.followers,
                follows=s.follows,
                posts=s.posts,
                engagement=engagement_of(s.interactions, s.posts, s.followers),
                likes_hidden=s.likes_hidden,
            ),
        )
        for s in event.summaries
    ]


@dataclass(slots=True)
class Coverage:
    """The metrics records whose day summaries are recorded: runs of offsets per partition."""

    _runs: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    _starts: dict[int, list[int]] = field(default_factory=dict)
    _ends: dict[int, list[int]] = field(default_factory=dict)

    def add(self, partition: int, first: int, last: int) -> None:
        """Records `first` to `last` (inclusive) of `partition` are covered."""
        self._runs.setdefault(partition, []).append((first, last))
        self._starts.pop(partition, None)

    def covers(self, partition: int, offset: int) -> bool:
        starts = self._starts.get(partition)
        if starts is None:
            if partition not in self._runs:
                return False
            self._merge(partition)
            starts = self._starts[partition]
        index = bisect.bisect_right(starts, offset) - 1
        return index >= 0 and offset <= self._ends[partition][index]

    def records(self) -> int:
        """How many offsets are covered."""
        for partition in self._runs:
            if partition not in self._starts:
                self._merge(partition)
        return sum(
            end - start + 1
            for partition in self._starts
            for start, end in zip(self._starts[partition], self._ends[partition], strict=True)
        )

    def _merge(self, partition: int) -> None:
        merged: list[list[int]] = []
        for first, last in sorted(self._runs[partition]):
            if merged and first <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], last)
            else:
                merged.append([first, last])
        self._runs[partition] = [(a, b) for a, b in merged]
        self._starts[partition] = [a for a, _ in merged]
        self._ends[partition] = [b for _, b in merged]


class DaySummaryEmitter:
    """Produces a batch's day summaries, each to its metrics partition's number, delivery
    awaited (before the batch's offsets are committed); started on first use."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic(TOPIC_DAY_SUMMARIES)
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        async with self._starting:
            if self._producer is None:
                producer = event_producer(self._settings)
                await producer.start()
                self._producer = producer
        return self._producer

    async def publish(self, events: Sequence[dict[str, Any]]) -> None:
        if not events:
            return
        producer = await self._started()
        pending = [
            await producer.send(
                self.topic,
                orjson.dumps(event),
                key=str(event["partition"]).encode(),
                partition=event["partition"],
            )
            for event in events
        ]
        await asyncio.gather(*pending)

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()
