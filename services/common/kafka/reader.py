"""Read a topic (or some of its partitions) from given offsets up to the end offsets seen when
reading starts: the bulk reader of rebuilds and of the publisher's recovery.

Whole fetches are yielded, records past those end offsets included: on Apache Kafka they were
produced during the read (one more write to apply is harmless to these idempotent readers); on
the local Tansu broker the end offset of a partition written in multi-record batches is its
last batch's first offset + 1, and the rest of that batch comes in the same fetch
(docs/operations.md). `reader.ends` records the position actually read up to. An offset beyond
a partition's end means the log was recreated (a fresh in-memory broker): that partition is
read from its beginning.

`until` stops exactly at given offsets instead (records from there on are left out; a partition
it does not name is read to its end): the publisher's part of a rebuild beside a live publisher
reads up to where it stopped.

`since_ms` reads only the records stamped at or after a time (ListOffsets by timestamp),
where the broker profile answers that correctly (`Profile.offsets_by_time`); elsewhere (the
local Tansu broker) the partitions are read from their beginning: more records, never fewer.

No short fetch wait here: a bulk reader reads what exists (with 100 ms, a full-France topic on
Tansu stalled, docs/operations.md).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Container, Iterable, Mapping
from types import TracebackType

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from services.common.contracts import TOPIC_ACCOUNTS
from services.common.events import AccountRecord
from services.common.kafka.clients import bulk_consumer, profile
from services.common.settings import Settings
from services.common.validation import Rejection, validate_account

log = logging.getLogger("topic_reader")
FETCH_RECORDS = 5_000


class TopicReader:
    """`async with TopicReader(settings, topic, start) as reader: async for chunk in reader`;
    `reader.ends` holds the offsets read up to (per partition)."""

    def __init__(
        self,
        settings: Settings,
        topic: str,
        start: Mapping[int, int] | None = None,
        *,
        partitions: Iterable[int] | None = None,
        fetch_records: int = FETCH_RECORDS,
        since_ms: int | None = None,
        until: Mapping[int, int] | None = None,
    ) -> None:
        if start and since_ms is not None:
            raise ValueError("give either start offsets or since_ms, not both")
        self.name = settings.topic(topic)
        self.start = dict(start or {})
        self._since_ms = since_ms if profile(settings).offsets_by_time else None
        self.ends: dict[int, int] = {}
        self.restarted: list[int] = []  # partitions read from the beginning (log recreated)
        self._only = None if partitions is None else set(partitions)
        self._until = None if until is None else dict(until)
        self._fetch_records = fetch_records
        self._consumer = bulk_consumer(settings)

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._consumer.stop()

    def __aiter__(self) -> AsyncIterator[list[ConsumerRecord]]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[list[ConsumerRecord]]:
        consumer = self._consumer
        numbers = sorted(consumer.partitions_for_topic(self.name) or [])
        if not numbers:
            raise RuntimeError(f"topic {self.name} is missing: run `observatoire topics create`")
        partitions = [
            TopicPartition(self.name, p) for p in numbers if self._only is None or p in self._only
        ]
        if not partitions:
            return
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        if self._until is not None:  # an exact stop: records from there on are not read
            ends = {tp: min(end, self._until.get(tp.partition, end)) for tp, end in ends.items()}
        self.ends = {tp.partition: ends[tp] for tp in partitions}
        if self._since_ms is not None:
            found = await consumer.offsets_for_times({tp: self._since_ms for tp in partitions})
            # None: no record stamped that late; nothing to read there
            self.start = {
                tp.partition: ends[tp] if found[tp] is None else found[tp].offset
                for tp in partitions
            }
        from_beginning = []
        for tp in partitions:
            start = self.start.get(tp.partition, 0)
            if start > ends[tp]:
                log.warning(
                    "%s[%d]: recorded offset %d is beyond the end %d (a recreated log): "
                    "reading it from the beginning",
                    self.name,
                    tp.partition,
                    start,
                    ends[tp],
                )
                self.restarted.append(tp.partition)
                start = 0
            if start == 0:
                from_beginning.append(tp)
            else:
                consumer.seek(tp, start)
        if from_beginning:
            # All in one reset: one partition at a time, each reset waited for the fetch in
            # flight, which on Tansu ends only at its max wait when the partition is empty
            # (measured: 0.5 s per partition, 5.5 s for an empty obs.metrics.v1).
            await consumer.seek_to_beginning(*from_beginning)
        pending = set()
        for tp in partitions:
            if await consumer.position(tp) < ends[tp]:
                pending.add(tp)
        while pending:
            fetched = await consumer.getmany(
                *pending, timeout_ms=1000, max_records=self._fetch_records
            )
            chunk = [r for records in fetched.values() for r in records]
            if self._until is not None:
                chunk = [r for r in chunk if r.offset < ends[TopicPartition(r.topic, r.partition)]]
            if chunk:
                yield chunk
            for tp in list(pending):
                position = await consumer.position(tp)
                if position >= ends[tp]:
                    pending.discard(tp)
                    # what was read, exactly
                    self.ends[tp.partition] = position if self._until is None else ends[tp]


async def read_topic(
    settings: Settings,
    topic: str,
    *,
    fetch: int = 10_000,
    partitions: Iterable[int] | None = None,
    until: Mapping[int, int] | None = None,
) -> AsyncIterator[list[ConsumerRecord]]:
    """Every record of a topic (or of some of its partitions) from the beginning up to (at
    least) the end offsets seen at the start, or exactly up to `until`, in bulk chunks."""
    async with TopicReader(
        settings, topic, partitions=partitions, fetch_records=fetch, until=until
    ) as reader:
        async for chunk in reader:
            yield chunk


async def read_account_records(
    settings: Settings,
    territories: Container[str],
    reject: Callable[[Rejection], None],
    progress: Callable[[str, int], None] | None = None,
    *,
    until: Mapping[int, int] | None = None,
) -> AsyncIterator[list[AccountRecord]]:
    """`obs.accounts.v1` from the beginning, chunk by chunk: the valid records of known
    territories, in log order; every other record goes to `reject` with its reason (what both
    rebuilds do with the mapping)."""
    async for chunk in read_topic(settings, TOPIC_ACCOUNTS, until=until):
        records = []
        for record in chunk:
            result = validate_account(record.value, record.timestamp)
            if isinstance(result, Rejection):
                reject(result)
            elif result.id not in territories:
                reject(Rejection("unknown_territory", result.id))
            else:
                records.append(result)
        yield records
        if progress:
            progress(TOPIC_ACCOUNTS, len(chunk))
