"""Reading a whole topic in the tests: every record up to the end offsets seen at the start."""

from __future__ import annotations

import time

from kafka.consumer.fetcher import ConsumerRecord

from services.common.kafka.admin import broker_topic, partitions_of
from services.common.kafka.clients import plain_consumer
from services.common.settings import Settings


def read_all(settings: Settings, topic: str, *, timeout: float = 30.0) -> list[ConsumerRecord]:
    """Every record of a topic, from the beginning to the end offsets read when it starts.

    Records come in partition order, then offset order. Raises `TimeoutError` if the end
    offsets are not reached within `timeout` seconds.
    """
    name = broker_topic(settings, topic)
    deadline = time.monotonic() + timeout
    records: dict[int, list[ConsumerRecord]] = {}
    with plain_consumer(settings) as consumer:
        tps = partitions_of(consumer, name)
        ends = consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        pending = {tp for tp in pending if consumer.position(tp) < ends[tp]}
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                positions = {tp.partition: consumer.position(tp) for tp in pending}
                ends_left = {tp.partition: ends[tp] for tp in pending}
                raise TimeoutError(
                    f"read_all({name}): positions {positions} did not reach the end offsets "
                    f"{ends_left} within {timeout} s"
                )
            batch = consumer.poll(timeout_ms=int(min(remaining, 0.5) * 1000))
            for tp, polled in batch.items():
                keep = [r for r in polled if r.offset < ends[tp]]
                records.setdefault(tp.partition, []).extend(keep)
            pending = {tp for tp in pending if consumer.position(tp) < ends[tp]}
    return [r for partition in sorted(records) for r in records[partition]]
