"""Signed operator commands against a real publisher (and scorer) process on the real broker
and Redis: whoever can write to obs.commands.v1 without the key cannot make the publisher do
anything. Forged commands, produced by a plain kafka-python client outside the project's
helpers, are answered `refused` / `unauthenticated` and change nothing; during a rotation a
command signed with an older key listed in OBS_COMMAND_KEYS is still executed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from kafka import KafkaProducer
from pydantic import SecretStr
from redis.asyncio import Redis

from services.common.clock import utcnow
from services.common.commands.keys import UNAUTHENTICATED, CommandKeys
from services.common.commands.protocol import submit_command, wait_for_result
from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_COMMANDS
from services.common.events import Command, build_command, command_signature, with_event_id
from services.common.localstack import RedisServer, TansuBroker, free_port
from services.common.settings import Settings
from services.common.territories import load_registry
from services.common.view.entries import decode_account_link
from services.common.view.keys import ViewKeys
from services.publisher.core import Publisher
from services.publisher.main import _warn_without_command_key
from tests.integration.test_api_story import RecordingSender
from tests.kafka_read import read_all
from tests.services import ServiceProcess, fresh_stack, isolated_settings, service_env, wait_for

rk = ViewKeys(0)  # the generation a fresh view starts in

CURRENT = SecretStr("the-current-command-key")
OLD = SecretStr("the-previous-command-key")  # in OBS_COMMAND_KEYS: still accepted
STRANGER = SecretStr("a-key-the-publisher-never-had")
TERRITORY = "dep-32"


@dataclass
class Stack:
    settings: Settings
    scorer: ServiceProcess
    publisher: ServiceProcess
    redis: redis.Redis

    def logs(self) -> str:
        scorer, publisher = self.scorer.log()[-1500:], self.publisher.log()[-2500:]
        return f"--- scorer\n{scorer}\n--- publisher\n{publisher}"

    def handle(self) -> str | None:
        raw = self.redis.hget(rk.ACCOUNTS_KEY, TERRITORY)
        return None if raw is None else decode_account_link(raw)[0]


@pytest.fixture(scope="module")
def stack(broker: TansuBroker, redis_server: RedisServer, tmp_path_factory) -> Iterator[Stack]:
    tmp: Path = tmp_path_factory.mktemp("command-signatures")
    settings = isolated_settings(
        broker,
        redis_server,
        tmp / "run",
        8,
        scorer_metrics_port=free_port(),
        publisher_metrics_port=free_port(),
        command_key=CURRENT,
        command_keys=OLD,
    )
    client = fresh_stack(settings)
    env = service_env(settings)
    scorer = ServiceProcess(["service", "scorer"], env, tmp / "scorer.log").start()
    publisher = ServiceProcess(["service", "publisher"], env, tmp / "publisher.log").start()
    try:
        yield Stack(settings, scorer, publisher, client)
    finally:
        scorer.kill()
        publisher.kill()
        client.flushdb()
        client.close()


def set_account(handle: str, key: SecretStr) -> dict[str, Any]:
    return build_command(
        command="set_account",
        args={"id": TERRITORY, "handle": handle},
        requested_by="api",
        requested_at=utcnow(),
        key=key,
    )


def result_of(stack: Stack, command: dict[str, Any]) -> dict[str, Any]:
    result = wait_for_result(stack.settings, command["event_id"], timeout=30)
    assert result is not None, f"no result for {command['event_id']}\n{stack.logs()}"
    return result


def produce_outside_the_project(settings: Settings, commands: list[dict[str, Any]]) -> None:
    """What anyone with write access to the topic can do: a bare kafka-python producer."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_servers)
    try:
        for command in commands:  # one record per request: Tansu's end offsets stay right
            producer.send(
                settings.topic(TOPIC_COMMANDS),
                key=command["event_id"].encode(),
                value=orjson.dumps(command),
            ).get(timeout=30)
    finally:
        producer.close()


def test_rotation_an_older_listed_key_still_works_an_unknown_key_does_not(stack: Stack):
    old = set_account("signed.with.old", OLD)
    stranger = set_account("signed.by.stranger", STRANGER)
    for command in (old, stranger):
        submit_command(stack.settings, command)
    done = result_of(stack, old)
    assert done["status"] == "done" and "uses @signed.with.old" in done["reason"], done
    wait_for(
        lambda: stack.handle() == "signed.with.old",
        timeout=60,
        what=f"the scorer to apply the old key's command\n{stack.logs()}",
    )
    refused = result_of(stack, stranger)
    assert refused["status"] == "refused" and refused["reason"].startswith(UNAUTHENTICATED)


def test_forged_commands_are_refused_unauthenticated_and_change_nothing(stack: Stack):
    baseline = set_account("the.real.one", CURRENT)
    submit_command(stack.settings, baseline)
    assert result_of(stack, baseline)["status"] == "done"
    wait_for(
        lambda: stack.handle() == "the.real.one",
        timeout=60,
        what=f"the scorer to apply the signed command\n{stack.logs()}",
    )
    accounts_before = len(read_all(stack.settings, stack.settings.topic(TOPIC_ACCOUNTS)))

    signed = set_account("forged.unsigned", CURRENT)
    unsigned = with_event_id(
        {k: v for k, v in signed.items() if k not in ("event_id", "signature")}
    )
    wrong_key = set_account("forged.wrong.key", STRANGER)
    valid = set_account("forged.tampered", CURRENT)
    tampered = with_event_id(  # a genuine signature, over other arguments
        {**valid, "args": {"id": TERRITORY, "handle": "forged.tampered.args"}}
    )
    assert "signature" not in unsigned
    assert tampered["signature"] == command_signature(valid, CURRENT)
    forged = [unsigned, wrong_key, tampered]
    produce_outside_the_project(stack.settings, forged)

    reasons = []
    for command in forged:
        result = result_of(stack, command)
        assert result["status"] == "refused", result
        assert result["reason"].startswith(UNAUTHENTICATED), result
        reasons.append(result["reason"])
        stored = orjson.loads(stack.redis.hget(rk.COMMAND_RESULTS_KEY, command["event_id"]))
        assert stored == result  # what the API's status URL serves
    assert "not signed" in reasons[0] and "matches none" in reasons[1]
    accounts = read_all(stack.settings, stack.settings.topic(TOPIC_ACCOUNTS))
    assert len(accounts) == accounts_before, [r.value for r in accounts[accounts_before:]]
    assert stack.handle() == "the.real.one"
    # Refusals are logged as warnings, without the signature or any key.
    log = stack.publisher.log()
    assert log.count(f"{UNAUTHENTICATED}:") >= 3
    for secret in (CURRENT, OLD, STRANGER):
        assert secret.get_secret_value() not in log
    for command in (wrong_key, tampered):
        assert command["signature"] not in log


async def test_a_publisher_without_any_key_refuses_every_command_and_says_so_at_start(
    settings: Settings, caplog
):
    keyless = settings.model_copy(update={"command_key": None, "command_keys": None})
    with caplog.at_level(logging.WARNING):
        _warn_without_command_key(logging.getLogger("publisher"), keyless)
    assert "operator commands cannot be verified" in caplog.text
    redis = Redis.from_url(f"{settings.redis_url.rsplit('/', 1)[0]}/9")
    sent = RecordingSender()
    try:
        await redis.flushdb()
        publisher = Publisher(
            redis,
            ViewKeys(0),
            load_registry(),
            sent,
            grace_hours=24,
            command_keys=CommandKeys.from_settings(keyless),
        )
        command = Command.model_validate(set_account("any.handle", CURRENT))
        result = await publisher.commands.execute(command)
        assert result is not None and result["status"] == "refused"
        assert result["reason"].startswith(f"{UNAUTHENTICATED}: the publisher has no command key")
        assert sent.records[TOPIC_ACCOUNTS] == []
        assert await publisher.commands.due_auto_command(delay_hours=0) is None  # cannot sign
    finally:
        await redis.flushdb()
        await redis.aclose()
