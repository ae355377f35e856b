"""Read a topic from given offsets up to the end offsets seen when reading starts.

Correct on Apache Kafka; on the local Tansu broker only because every producer of the local
profile sends one record per batch (Tansu reports the end offset as the last batch's base
offset + 1: docs/operations.md). An offset beyond a partition's end means the log was
recreated (a fresh in-memory broker): that partition is read from its beginning.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from types import TracebackType

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from services.common.settings import Settings

log = logging.getLogger("publisher.tail")
FETCH_RECORDS = 5_000


class TopicReader:
    """`async with TopicReader(settings, topic, start) as reader: async for chunk in reader`;
    `reader.ends` holds the end offsets read up to (per partition)."""

    def __init__(
        self, settings: Settings, topic: str, start: Mapping[int, int] | None = None
    ) -> None:
        self.name = settings.topic(topic)
        self.start = dict(start or {})
        self.ends: dict[int, int] = {}
        self.restarted: list[int] = []  # partitions read from the beginning (log recreated)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )

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
        partitions = [
            TopicPartition(self.name, p)
            for p in sorted(consumer.partitions_for_topic(self.name) or [])
        ]
        if not partitions:
            raise RuntimeError(f"topic {self.name} is missing: run `observatoire topics create`")
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        self.ends = {tp.partition: ends[tp] for tp in partitions}
        pending = set()
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
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, start)
            if await consumer.position(tp) < ends[tp]:
                pending.add(tp)
        while pending:
            fetched = await consumer.getmany(*pending, timeout_ms=1000, max_records=FETCH_RECORDS)
            # Whole fetches, as services.common.streams.read_topic (records past the end
            # offsets included: the local broker under-reports them for batched partitions).
            chunk = [r for records in fetched.values() for r in records]
            if chunk:
                yield chunk
            for tp in list(pending):
                position = await consumer.position(tp)
                if position >= ends[tp]:
                    pending.discard(tp)
                    self.ends[tp.partition] = position  # what was read, exactly
