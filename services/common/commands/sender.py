"""How the publisher's components produce a record and learn where it landed.

The components take a `Sender` (contract topic name, key, value → partition and offset once
delivered) so that the same code runs inside the faust worker (its producer) and outside it
(`rebuild`, tests) with a plain aiokafka producer.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from services.common.kafka.clients import event_producer
from services.common.settings import Settings


@dataclass(frozen=True, slots=True)
class Delivered:
    """Where a produced record is in the log."""

    partition: int
    offset: int


Sender = Callable[[str, bytes, bytes], Awaitable[Delivered]]


@contextlib.asynccontextmanager
async def kafka_sender(settings: Settings) -> AsyncIterator[Sender]:
    """A `Sender` over an aiokafka producer configured for the broker profile."""
    # One record per batch on the local profile: Tansu reports end offsets right only then
    # (docs/operations.md).
    producer = event_producer(settings)
    await producer.start()

    async def send(topic: str, key: bytes, value: bytes) -> Delivered:
        metadata = await producer.send_and_wait(settings.topic(topic), value=value, key=key)
        return Delivered(metadata.partition, metadata.offset)

    try:
        yield send
    finally:
        await producer.stop()
