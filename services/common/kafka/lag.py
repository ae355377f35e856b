"""Consumer lag of a faust worker's group: `obs_consumer_lag_records{group, topic, partition}`.

For each partition the worker is assigned (of the topics it reports), the records not yet
committed: the end offset (high watermark) minus the committed offset, where the committed
offset is never taken below the partition's first offset (a group that never committed reads
from there, and records retention removed are not owed). Each worker of a group reports its
own partitions; a partition it loses stops being reported by it.

Exact on Apache Kafka. Tansu 0.6.0 reports the base offset of a partition's last record batch
+ 1 as its end offset (docs/operations.md, "Why one record per batch"): exact there for topics
written one record per batch, and short (never below 0 here) for `obs.scores.v1`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from services.common.kafka.compat import committed_offsets
from services.common.metrics import CONSUMER_LAG

log = logging.getLogger("consumer-lag")
REFRESH_SECONDS = 2.0  # how often a worker measures its lag (two offset requests each time)

Partition = tuple[str, int]  # (broker-side topic name, partition)


def partition_lag(
    ends: Mapping[Partition, int],
    committed: Mapping[Partition, int],
    earliest: Mapping[Partition, int],
) -> dict[Partition, int]:
    """Records left to commit per partition of `ends`: end - max(committed, first offset),
    at least 0 (a committed offset of 0, or none: nothing committed)."""
    return {
        tp: max(0, end - max(committed.get(tp, 0), earliest.get(tp, 0))) for tp, end in ends.items()
    }


class ConsumerLag:
    """Keeps one faust worker's lag series: `refresh()` measures them again (a faust timer)."""

    def __init__(self, app: Any, topics: Iterable[str]) -> None:
        self.app = app
        self.group = str(app.conf.id)  # faust's group id is the app's id
        self.topics = frozenset(topics)
        self.reported: set[Partition] = set()

    async def refresh(self) -> None:
        """Measure the assigned partitions' lag; stop reporting partitions no longer assigned.
        Offsets that cannot be read now (a rebalance, the broker away) leave the series as
        they were until the next refresh."""
        consumer = self.app.consumer
        try:
            assigned = [tp for tp in consumer.assignment() if tp.topic in self.topics]
            committed = committed_offsets(consumer)
            ends = await consumer.highwaters(*assigned) if assigned else {}
            earliest = await consumer.earliest_offsets(*assigned) if assigned else {}
        except Exception as exc:  # a measurement must never stop the worker
            log.debug("consumer lag not measured now: %r", exc)
            return
        lag = partition_lag(
            {(tp.topic, tp.partition): end for tp, end in ends.items()},
            committed,
            {(tp.topic, tp.partition): first for tp, first in earliest.items()},
        )
        for topic, partition in self.reported - lag.keys():
            CONSUMER_LAG.remove(self.group, topic, str(partition))
        for (topic, partition), records in lag.items():
            CONSUMER_LAG.labels(self.group, topic, str(partition)).set(records)
        self.reported = set(lag)
