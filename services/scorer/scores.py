"""Score events to `obs.scores.v1`: one batched produce per applied batch, delivery awaited.

The scorer sends these with a producer of its own rather than faust's. On the local broker
faust's producer keeps one record per batch (Tansu under-reports end offsets after multi-record
batches, which would cut a changelog recovery or a read "up to the end" short), and aiokafka then
holds every further record for a partition until the previous one is acknowledged: one round
trip per score event, which capped the live path near 1,000 snapshots/s. `obs.scores.v1` is
only ever consumed live by consumer groups (the publisher, downstream systems), never read up to
an end offset, and a group consumer on Tansu receives every record of a multi-record batch
(tests/integration/test_broker_profile.py), so its records are batched on every broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson
from aiokafka import AIOKafkaProducer

from services.common.contracts import TOPIC_SCORES
from services.common.kafka.clients import scores_producer
from services.common.settings import Settings

# A batch's score events for one partition go in one request (events are ~300 bytes).
MAX_BATCH_BYTES = 1024 * 1024
LINGER_MS = 1


class ScoreEmitter:
    """Publishes the score events of each applied batch; started on first use."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic(TOPIC_SCORES)
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        async with self._starting:
            if self._producer is None:
                producer = scores_producer(self._settings)
                await producer.start()
                self._producer = producer
        return self._producer

    async def publish(self, events: Sequence[dict]) -> None:
        """Send every event (keyed by territory id) and wait until the broker has them all."""
        if not events:
            return
        producer = await self._started()
        pending = [
            await producer.send(self.topic, orjson.dumps(event), key=event["id"].encode())
            for event in events
        ]
        await asyncio.gather(*pending)

    async def stop(self) -> None:
        """Flush and close the producer (nothing is left unsent)."""
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()
