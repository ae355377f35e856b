"""Ask the publisher something: produce a command to `obs.commands.v1`, wait for its result
in `obs.command-results.v1` (what the CLI does; the API only produces and serves Redis)."""

from __future__ import annotations

import time
from typing import Any, cast

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from services.common.contracts import TOPIC_COMMAND_RESULTS, TOPIC_COMMANDS
from services.common.events import CommandResult
from services.common.kafka import BrokerUnreachable, consumer_config, make_producer
from services.common.settings import Settings


def submit_command(settings: Settings, command: dict[str, Any]) -> None:
    """Produce a built command (key: its event_id) and wait for the broker's acknowledgement."""
    try:
        producer = make_producer(settings)
    except KafkaError as exc:
        raise BrokerUnreachable(settings, exc) from exc
    try:
        future = producer.send(
            settings.topic(TOPIC_COMMANDS),
            key=command["event_id"].encode(),
            value=orjson.dumps(command),
        )
        producer.flush()
        future.get(timeout=30)
    finally:
        producer.close()


def wait_for_result(settings: Settings, command_id: str, timeout: float) -> dict[str, Any] | None:
    """The command's result from `obs.command-results.v1`, or None after `timeout` seconds.

    Reads the (compacted, small) topic from its beginning: a command sent twice has one result,
    which may already be there.
    """
    deadline = time.monotonic() + timeout
    try:
        consumer = KafkaConsumer(**consumer_config(settings))
    except KafkaError as exc:
        raise BrokerUnreachable(settings, exc) from exc
    try:
        partition = TopicPartition(settings.topic(TOPIC_COMMAND_RESULTS), 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        wanted = command_id.encode()
        while (remaining := deadline - time.monotonic()) > 0:
            batch = consumer.poll(timeout_ms=int(min(remaining, 0.5) * 1000))
            for records in batch.values():
                for record in records:
                    if record.key != wanted or record.value is None:
                        continue
                    result = orjson.loads(record.value)
                    CommandResult.model_validate(result)
                    return cast(dict[str, Any], result)
        return None
    finally:
        consumer.close()
