"""No insecure start by accident: on the kafka profile a process refuses to start without what
authenticates what it uses, unless OBS_ALLOW_INSECURE=true, which it then says.

Pure: `insecure_reasons` and its messages; the start gate and the operator commands run
in-process and refuse before reaching any broker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import SecretStr
from typer.testing import CliRunner

from services.cli import accounts, collect, edition, rebuild, replay, topics
from services.cli.secure_start import check_start
from services.common.security import (
    ALL_NEEDS,
    COMMAND_NEEDS,
    SERVICE_NEEDS,
    insecure_reasons,
    insecure_warning,
    refusal,
)
from services.common.settings import Settings, get_settings

KAFKA = "Kafka credentials (OBS_KAFKA_SECURITY_PROTOCOL is PLAINTEXT"
REDIS = "a Redis password (OBS_REDIS_PASSWORD)"
COMMAND_KEY = "the command key that signs operator commands (OBS_COMMAND_KEY)"
SECURE: dict[str, Any] = {
    "kafka_security_protocol": "SASL_SSL",
    "kafka_username": "scorer",
    "kafka_password": "kafka-secret",
    "redis_password": "redis-secret",
    "command_key": "command-secret",
}


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **({"broker_profile": "kafka"} | values))


def test_the_local_profile_refuses_nothing() -> None:
    assert insecure_reasons(_settings(broker_profile="local")) == []


def test_the_kafka_profile_names_everything_missing_in_one_list() -> None:
    reasons = insecure_reasons(_settings())
    assert len(reasons) == 3
    assert reasons[0].startswith(KAFKA)
    assert reasons[1:] == [REDIS, COMMAND_KEY]


def test_nothing_is_missing_with_sasl_credentials_a_redis_password_and_a_command_key() -> None:
    assert insecure_reasons(_settings(**SECURE)) == []
    assert (
        insecure_reasons(_settings(**SECURE | {"kafka_security_protocol": "SASL_PLAINTEXT"})) == []
    )


def test_tls_without_sasl_is_no_kafka_credential() -> None:
    reasons = insecure_reasons(_settings(**SECURE | {"kafka_security_protocol": "SSL"}))
    assert reasons == [
        "Kafka credentials (OBS_KAFKA_SECURITY_PROTOCOL is SSL: set SASL_SSL, with "
        "OBS_KAFKA_USERNAME and OBS_KAFKA_PASSWORD)"
    ]


def test_sasl_without_a_password_names_the_missing_setting() -> None:
    settings = _settings(**SECURE).model_copy(update={"kafka_password": None})
    assert insecure_reasons(settings) == ["Kafka credentials (OBS_KAFKA_PASSWORD)"]


def test_an_empty_secret_is_missing() -> None:
    empty = SecretStr("")
    settings = _settings(**SECURE).model_copy(
        update={"redis_password": empty, "command_key": empty}
    )
    assert insecure_reasons(settings) == [REDIS, COMMAND_KEY]


def test_allow_insecure_does_not_hide_what_is_missing() -> None:
    assert insecure_reasons(_settings(allow_insecure=True)) == insecure_reasons(_settings())


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ("scorer", [KAFKA, REDIS]),
        ("publisher", [KAFKA, REDIS, COMMAND_KEY]),
        ("api", [KAFKA, REDIS, COMMAND_KEY]),
        ("collector", [KAFKA]),
    ],
)
def test_each_service_is_asked_only_for_what_it_uses(service: str, expected: list[str]) -> None:
    reasons = insecure_reasons(_settings(), SERVICE_NEEDS[service])
    assert [reason[: len(want)] for reason, want in zip(reasons, expected, strict=True)] == expected


def test_every_command_reaching_the_broker_needs_kafka_credentials() -> None:
    assert set(COMMAND_NEEDS) == {
        "accounts set",
        "edition publish",
        "topics create",
        "replay",
        "rebuild",
        "collect",
    }
    assert all("kafka" in needs and needs <= ALL_NEEDS for needs in COMMAND_NEEDS.values())
    assert set(SERVICE_NEEDS) == {"scorer", "publisher", "api", "collector"}


def test_the_refusal_lists_every_reason_and_the_override() -> None:
    message = refusal("service publisher", insecure_reasons(_settings()))
    assert message.startswith("service publisher refuses to start on the kafka profile without: ")
    assert all(part in message for part in (KAFKA, REDIS, COMMAND_KEY, "OBS_ALLOW_INSECURE=true"))
    warning = insecure_warning("service publisher", [REDIS])
    assert warning == (
        f"OBS_ALLOW_INSECURE=true: service publisher starts on the kafka profile without: {REDIS}"
    )


# --- the start gate -------------------------------------------------------------------------
def test_the_gate_exits_2_with_the_refusal(capsys: pytest.CaptureFixture[str]) -> None:
    warnings: list[str] = []
    with pytest.raises(typer.Exit) as stopped:
        check_start(_settings(), "service api", SERVICE_NEEDS["api"], warnings.append)
    assert stopped.value.exit_code == 2
    assert capsys.readouterr().err == (
        f"error: {refusal('service api', insecure_reasons(_settings()))}\n"
    )
    assert warnings == []


def test_the_gate_lets_an_insecure_start_through_with_a_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    warnings: list[str] = []
    settings = _settings(allow_insecure=True)
    check_start(settings, "service scorer", SERVICE_NEEDS["scorer"], warnings.append)
    assert warnings == [
        insecure_warning("service scorer", insecure_reasons(settings, SERVICE_NEEDS["scorer"]))
    ]
    assert capsys.readouterr().err == ""


def test_the_gate_says_nothing_when_nothing_is_missing() -> None:
    warnings: list[str] = []
    check_start(_settings(**SECURE), "service api", SERVICE_NEEDS["api"], warnings.append)
    check_start(_settings(broker_profile="local"), "service api", ALL_NEEDS, warnings.append)
    assert warnings == []


def test_an_unusable_kafka_security_is_refused_even_when_insecure_is_allowed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = _settings(kafka_security_protocol="SASL_SSL", allow_insecure=True)
    with pytest.raises(typer.Exit) as stopped:
        check_start(settings, "service scorer", SERVICE_NEEDS["scorer"], lambda _m: None)
    assert stopped.value.exit_code == 2
    assert "set OBS_KAFKA_USERNAME and OBS_KAFKA_PASSWORD" in capsys.readouterr().err


# --- the operator commands ------------------------------------------------------------------
@pytest.fixture
def kafka_profile_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """OBS_BROKER_PROFILE=kafka and nothing else (no .env: run from an empty directory); the
    broker address answers nothing, so reaching it would fail, not hang."""
    for name in [name for name in os.environ if name.startswith("OBS_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OBS_BROKER_PROFILE", "kafka")
    monkeypatch.setenv("OBS_KAFKA_BOOTSTRAP", "127.0.0.1:9")
    monkeypatch.setenv("OBS_RUN_DIR", str(tmp_path / "run"))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


COMMANDS = {
    "accounts set": (accounts.app, ["set", "dep-32", "gersledepartement"]),
    "edition publish": (edition.app, ["publish", "2021-06"]),
    "topics create": (topics.app, ["create"]),
    "replay": (replay.replay_command, ["{file}"]),
    "rebuild": (rebuild.rebuild_command, []),
    "collect": (collect.collect_command, ["--source", "sim", "--once"]),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_an_operator_command_on_the_kafka_profile_refuses_like_a_service(
    kafka_profile_env: Path, command: str
) -> None:
    target, args = COMMANDS[command]
    empty = kafka_profile_env / "empty.jsonl"
    empty.write_text("")
    app = target if isinstance(target, typer.Typer) else _single(target)
    result = CliRunner().invoke(app, [arg.format(file=empty) for arg in args])

    assert result.exit_code == 2, result.output
    reasons = insecure_reasons(get_settings(), COMMAND_NEEDS[command])
    assert reasons[0].startswith(KAFKA)
    assert f"error: {refusal(f'`observatoire {command}`', reasons)}" in result.output


def _single(command: Any) -> typer.Typer:
    app = typer.Typer()
    app.command()(command)
    return app
