"""Operator actions against the real broker and Redis: each needs the operator token, produces
exactly one command to obs.commands.v1 and answers 202 with its status URL; without a valid
token nothing is produced. The publisher's executor then runs the command and the status URL
tells the outcome."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from redis.asyncio import Redis

from services.api.app import create_app
from services.common.contracts import TOPIC_COMMANDS
from services.common.events import Command, signature_matches
from services.common.kafka import create_topics
from services.common.settings import Settings
from services.common.territories import load_registry
from services.common.view.keys import ViewKeys
from services.publisher.core import Publisher
from tests.integration.test_api_story import RecordingSender
from tests.kafka_read import read_all
from tests.signing import COMMAND_KEY, COMMAND_KEYS

TOKEN = "s3cret-operator-token"
ACTIONS = [
    ("put", "/api/v1/territories/dep-32/account", {"handle": "@GersLeDepartement"}),
    ("post", "/api/v1/editions/2021-06/publish", None),
]


@pytest.fixture
def operator_settings(settings: Settings) -> Settings:
    assert all(report.ok for report in create_topics(settings))
    return settings.model_copy(
        update={
            "operator_token": SecretStr(TOKEN),
            "rate_limit_enabled": False,
            "redis_url": f"{settings.redis_url.rsplit('/', 1)[0]}/11",
        }
    )


@pytest.fixture
def client(operator_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(operator_settings)) as test_client:
        yield test_client


def commands(settings: Settings) -> list[dict]:
    return [
        orjson.loads(record.value)
        for record in read_all(settings, settings.topic(TOPIC_COMMANDS), timeout=10)
    ]


def act(client: TestClient, method: str, path: str, body: dict | None, **headers: str):
    return client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body"), ACTIONS)
def test_no_valid_token_is_401_and_produces_nothing(client, operator_settings, method, path, body):
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ):
        response = act(client, method, path, body, **headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
    # Even a malformed request gets 401 first: nothing tells a stranger more.
    assert act(client, method, path.replace("2021-06", "2021-13"), {"x": 1}).status_code == 401
    assert commands(operator_settings) == []


@pytest.mark.parametrize(("method", "path", "body"), ACTIONS)
def test_a_valid_token_produces_one_command_and_answers_202_with_its_status_url(
    client, operator_settings, method, path, body, caplog
):
    with caplog.at_level(logging.INFO, logger="api.operator"):
        response = act(client, method, path, body, Authorization=f"Bearer {TOKEN}")
    assert response.status_code == 202, response.text
    accepted = response.json()
    command = Command.model_validate(accepted["command"])
    assert command.requested_by == "api"
    assert accepted["status"] == "pending"
    assert accepted["status_url"] == f"/api/v1/commands/{command.event_id}"
    assert response.headers["location"] == accepted["status_url"]
    produced = commands(operator_settings)
    assert produced == [accepted["command"]]
    assert signature_matches(accepted["command"], [COMMAND_KEY])  # signed with OBS_COMMAND_KEY
    assert COMMAND_KEY.get_secret_value() not in caplog.text
    if command.command == "set_account":
        assert command.args.model_dump() == {"id": "dep-32", "handle": "gersledepartement"}
    else:
        assert command.args.model_dump() == {"edition": "2021-06"}
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "api.operator")
    assert command.command in logged and command.event_id in logged  # what
    assert command.requested_at in logged  # when
    assert "testclient" in logged  # from where
    assert TOKEN not in caplog.text
    status = client.get(accepted["status_url"]).json()
    assert status["status"] == "pending"


def test_the_status_url_tells_the_publishers_outcome(client, operator_settings):
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    set_account = client.put(
        "/api/v1/territories/dep-32/account", json={"handle": "gers32"}, headers=bearer
    ).json()
    publish = client.post("/api/v1/editions/2020-01/publish", headers=bearer).json()

    async def execute() -> None:
        redis = Redis.from_url(operator_settings.redis_url)
        try:
            await redis.flushdb()
            publisher = Publisher(
                redis,
                ViewKeys(0),
                load_registry(),
                RecordingSender(),
                grace_hours=24,
                command_keys=COMMAND_KEYS,
            )
            await publisher.load()
            for produced in commands(operator_settings):
                await publisher.commands.execute(Command.model_validate(produced))
        finally:
            await redis.aclose()

    asyncio.run(execute())
    done = client.get(set_account["status_url"]).json()
    assert done["status"] == "done" and "uses @gers32" in done["reason"] and done["at"]
    refused = client.get(publish["status_url"]).json()
    assert refused["status"] == "refused" and "2020-01" in refused["reason"]


@pytest.mark.parametrize(
    ("method", "path", "content", "status", "code"),
    [
        (
            "put",
            "/api/v1/territories/dep-32/account",
            b'{"handle": "not a handle"}',
            422,
            "invalid_handle",
        ),
        ("put", "/api/v1/territories/dep-32/account", b'{"handle": 5}', 422, "invalid_parameter"),
        ("put", "/api/v1/territories/dep-32/account", b'{"name": "x"}', 422, "invalid_parameter"),
        ("put", "/api/v1/territories/dep-32/account", b"[1]", 422, "invalid_parameter"),
        ("put", "/api/v1/territories/dep-32/account", b"{not json", 400, "bad_request"),
        ("put", "/api/v1/territories/dep-99/account", b'{"handle": "x"}', 404, "unknown_territory"),
        ("post", "/api/v1/editions/2021-13/publish", b"", 400, "bad_request"),
        ("post", "/api/v1/editions/juin/publish", b"", 400, "bad_request"),
    ],
)
def test_invalid_actions_are_refused_and_produce_nothing(
    client, operator_settings, method, path, content, status, code
):
    response = client.request(
        method,
        path,
        content=content,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert commands(operator_settings) == []


def test_a_null_handle_removes_the_account(client, operator_settings):
    response = client.put(
        "/api/v1/territories/dep-32/account",
        json={"handle": None},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 202
    assert response.json()["command"]["args"] == {"id": "dep-32", "handle": None}


def test_a_missing_commands_topic_answers_503_and_says_why(operator_settings):
    elsewhere = operator_settings.model_copy(update={"topic_prefix": "nowhere-"})
    with TestClient(create_app(elsewhere)) as client:
        response = client.post(
            "/api/v1/editions/2021-06/publish", headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "commands_unavailable" and "topics create" in error["message"]


@pytest.mark.parametrize(("method", "path", "body"), ACTIONS)
def test_an_api_without_a_command_key_answers_503_and_produces_nothing(
    operator_settings, method, path, body
):
    keyless = operator_settings.model_copy(update={"command_key": None})
    with TestClient(create_app(keyless)) as client:
        response = act(client, method, path, body, Authorization=f"Bearer {TOKEN}")
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "commands_unavailable" and "OBS_COMMAND_KEY" in error["message"]
    assert commands(operator_settings) == []
