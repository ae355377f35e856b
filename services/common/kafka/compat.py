"""Each patch of a Kafka library's private attributes, named, with why and for which version.

tests/unit/test_kafka_compat.py fails loudly when an installed version no longer has what a
patch relies on: bump the pin only with that test green.
"""

from __future__ import annotations

import contextlib
from typing import Any

# faust 0.11 (faust-streaming) builds its aiokafka consumer with a hard-coded
# fetch_max_wait_ms of 1,500 ms; aiokafka 0.12–0.14 reads `_fetch_max_wait_ms` when the
# consumer starts and builds its fetcher. Set before start, it is the wait the fetcher uses.
FETCH_MAX_WAIT_ATTRIBUTE = "_fetch_max_wait_ms"
# kafka-python 3.0: a KafkaProducer's I/O thread.
SENDER_ATTRIBUTE = "_sender"


def set_fetch_max_wait(consumer: Any, wait_ms: int) -> None:
    """Give an aiokafka consumer that is not started yet another fetch max wait."""
    setattr(consumer, FETCH_MAX_WAIT_ATTRIBUTE, wait_ms)


def force_close_producer(producer: Any) -> None:
    """Stop a kafka-python producer's I/O thread after `close()` failed: kafka-python 3.0
    flushes before closing and raises when the flush times out, leaving the thread running.
    Never raises (the records it held stay wherever the caller kept them)."""
    sender = getattr(producer, SENDER_ATTRIBUTE, None)
    with contextlib.suppress(Exception):
        if sender is not None:
            sender.force_close()


# faust 0.11 (faust-streaming 0.15): a Consumer keeps, per assigned partition, the offset
# committed for its group (read at assignment, updated at each commit: the next offset to read;
# None for none or 0) in `_committed_offset`. The publisher reports it for the partitions it
# has applied nothing from since it started (services/publisher/hold.py).
COMMITTED_OFFSET_ATTRIBUTE = "_committed_offset"


def committed_offsets(consumer: Any) -> dict[tuple[str, int], int]:
    """A faust Consumer's committed offset per assigned (topic, partition) (0 where none)."""
    committed = getattr(consumer, COMMITTED_OFFSET_ATTRIBUTE)
    return {(tp.topic, tp.partition): committed.get(tp) or 0 for tp in consumer.assignment()}
