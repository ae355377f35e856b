"""Produce events with confirmed delivery, refusing any event from the future."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

import orjson

from services.common.clock import parse_timestamp, utcnow
from services.common.contracts import FUTURE_TOLERANCE_SECONDS
from services.common.kafka import make_producer
from services.common.settings import Settings

log = logging.getLogger("producer")
FUTURE = timedelta(seconds=FUTURE_TOLERANCE_SECONDS)


class FutureEventError(ValueError):
    """An event whose time is more than 5 minutes ahead of the producer's clock."""


class EventProducer:
    """A kafka-python producer (acks=all, idempotent) that waits for every delivery."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.clock = clock
        self._producer = make_producer(settings)

    def send(
        self,
        topic: str,
        events: Iterable[dict],
        *,
        key: Callable[[dict], str],
        time_field: str,
    ) -> int:
        """Send events to a contract topic, in order; returns how many were confirmed."""
        limit = self.clock() + FUTURE
        futures = []
        for event in events:
            if parse_timestamp(event[time_field]) > limit:
                raise FutureEventError(
                    f"refusing event {event['event_id']}: {time_field} {event[time_field]} is "
                    "more than 5 minutes ahead of this clock"
                )
            futures.append(
                self._producer.send(
                    self.settings.topic(topic), key=key(event).encode(), value=orjson.dumps(event)
                )
            )
        self._producer.flush()
        for future in futures:
            future.get(timeout=60)  # raises on a failed delivery: nothing counts as sent
        return len(futures)

    def close(self) -> None:
        """Flush and close the underlying producer."""
        self._producer.close(timeout=5)


def metrics_key(event: dict) -> str:
    """`platform:handle`, the key of `obs.metrics.v1`."""
    return f"{event['platform']}:{event['handle']}"


def territory_key(event: dict) -> str:
    """The territory id, the key of `obs.accounts.v1`."""
    return str(event["id"])
