"""Ask the publisher something: produce a command to `obs.commands.v1`, wait for its result
in `obs.command-results.v1` (what the CLI does; the API builds commands with the same rule,
produces them and serves Redis)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal, cast

import orjson
from kafka import TopicPartition
from kafka.errors import KafkaError
from pydantic import SecretStr
from redis.exceptions import RedisError

from services.common.clock import utcnow
from services.common.commands.keys import operator_signing_key
from services.common.contracts import TOPIC_COMMAND_RESULTS, TOPIC_COMMANDS
from services.common.events import CommandResult, build_command
from services.common.kafka import BrokerUnreachable, make_consumer, make_producer
from services.common.settings import Settings
from services.common.view.client import redis_client
from services.common.view.results import read_result

CommandName = Literal["publish_edition", "set_account"]
Requester = Literal["cli", "api", "auto"]


Answered = Callable[[str], bool]
AsyncAnswered = Callable[[str], Awaitable[bool]]


def next_second(moment: datetime) -> float:
    """Seconds until the next whole second after `moment` (commands are timed to the second)."""
    return 1.0 - moment.microsecond / 1_000_000


def _built(
    command: CommandName,
    args: dict[str, Any],
    requested_by: Requester,
    moment: datetime,
    key: SecretStr,
) -> dict[str, Any]:
    return build_command(
        command=command, args=args, requested_by=requested_by, requested_at=moment, key=key
    )


def command_now(
    command: CommandName,
    args: dict[str, Any],
    requested_by: Requester,
    answered: Answered,
    *,
    key: SecretStr,
) -> dict[str, Any]:
    """A command requested now. Its id is its content, timed to the second, so a retry in the
    same second as an identical request would be that request again; when that one was
    already answered (refused: an edition not yet publishable, say; or done), the retry is
    built in the next second and is evaluated anew. A request still pending keeps its id, and
    a redelivered record is still executed once (docs/decisions.md §15)."""
    moment = utcnow()
    built = _built(command, args, requested_by, moment, key)
    if not answered(built["event_id"]):
        return built
    time.sleep(next_second(moment))
    return _built(command, args, requested_by, utcnow(), key)


async def command_now_async(
    command: CommandName,
    args: dict[str, Any],
    requested_by: Requester,
    answered: AsyncAnswered,
    *,
    key: SecretStr,
) -> dict[str, Any]:
    """`command_now` for asyncio code (the API): the same rule, waiting without blocking."""
    moment = utcnow()
    built = _built(command, args, requested_by, moment, key)
    if not await answered(built["event_id"]):
        return built
    await asyncio.sleep(next_second(moment))
    return _built(command, args, requested_by, utcnow(), key)


def new_command(
    settings: Settings,
    *,
    command: CommandName,
    args: dict[str, Any],
    requested_by: Requester,
    key: SecretStr,
) -> dict[str, Any]:
    """`command_now` signed with `key`, the earlier results read from Redis (none readable:
    the request as it is)."""

    def answered(command_id: str) -> bool:
        try:
            client = redis_client(settings, sync=True, socket_timeout=2)
            try:
                return read_result(client, command_id) is not None
            finally:
                client.close()
        except (RedisError, OSError):
            return False

    return command_now(command, args, requested_by, answered, key=key)


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
        consumer = make_consumer(settings)
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


def ask(
    settings: Settings,
    *,
    command: CommandName,
    args: dict[str, Any],
    timeout: float,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """What the CLI does: request a command now, signed with the operator's key
    (`operator_signing_key`: NoCommandKey without one), then wait up to `timeout` s for its
    result (None: no result in time)."""
    key = operator_signing_key(settings)
    built = new_command(settings, command=command, args=args, requested_by="cli", key=key)
    submit_command(settings, built)
    return built, wait_for_result(settings, built["event_id"], timeout)


def no_result_message(command: dict[str, Any], timeout: float) -> str:
    """What to tell an operator whose command got no result in time."""
    return (
        f"no result for command {command['event_id']} within {timeout:g} s: is the "
        "publisher running? The request stays queued in obs.commands.v1."
    )
