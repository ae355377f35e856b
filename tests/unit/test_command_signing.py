"""Signed operator commands: the signature over the canonical form, its verification, the keys
a process holds (rotation), and where the command line finds its key."""

from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from typer.testing import CliRunner

from services.cli import _register, app
from services.common.commands.keys import (
    UNAUTHENTICATED,
    CommandKeys,
    NoCommandKey,
    local_key_path,
    operator_signing_key,
    write_local_key,
)
from services.common.events import (
    Command,
    build_command,
    canonical_json,
    compute_event_id,
    signature_matches,
)
from services.common.settings import Settings, get_settings

KEY = SecretStr("current-key")
OLD = SecretStr("previous-key")

keys = st.text(min_size=1, max_size=40).map(SecretStr)
handles = st.from_regex(r"[a-z0-9._]{1,30}", fullmatch=True)
territories = st.sampled_from(["dep-32", "dep-2A", "reg-76", "com-75056", "epci-200000172"])
moments = st.sampled_from(["2021-07-08T09:12:00Z", "2024-02-29T23:59:59Z"])


@st.composite
def set_account_commands(draw: st.DrawFn, key: SecretStr = KEY) -> dict[str, Any]:
    return build_command(
        command="set_account",
        args={"id": draw(territories), "handle": draw(st.none() | handles)},
        requested_by=draw(st.sampled_from(["cli", "api", "auto"])),
        requested_at=draw(moments),
        key=key,
    )


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


# --- the signature (pure) ---------------------------------------------------------------------


def test_the_signature_is_hmac_sha256_of_the_canonical_json_without_id_and_signature():
    command = build_command(
        command="set_account",
        args={"id": "dep-32", "handle": "gersledepartement"},
        requested_by="api",
        requested_at="2021-07-08T09:12:00Z",
        key=SecretStr("clé"),
    )
    content = {k: v for k, v in command.items() if k not in ("event_id", "signature")}
    expected = hmac.new("clé".encode(), canonical_json(content), hashlib.sha256).hexdigest()
    assert command["signature"] == expected
    assert command["event_id"] == compute_event_id(command)  # the id covers the signature
    assert command["event_id"] != compute_event_id(content)


@given(command=set_account_commands(), key=keys)
def test_a_command_verifies_with_its_key_only(command: dict[str, Any], key: SecretStr):
    Command.model_validate(command)
    assert signature_matches(command, [KEY])
    assert signature_matches(command, [key, KEY])  # any accepted key
    if key.get_secret_value() != KEY.get_secret_value():
        assert not signature_matches(command, [key])
    assert not signature_matches(command, [])


@given(command=set_account_commands(), handle=handles)
def test_any_change_to_the_signed_content_breaks_the_signature(command: dict, handle: str):
    tampered = {**command, "args": {**command["args"], "handle": handle}}
    assert signature_matches(tampered, [KEY]) == (handle == command["args"]["handle"])
    later = {**command, "requested_at": "2030-01-01T00:00:00Z"}
    assert not signature_matches(later, [KEY])


@given(command=set_account_commands())
def test_the_signature_ignores_the_event_id_and_needs_to_be_there(command: dict[str, Any]):
    assert signature_matches({**command, "event_id": "0" * 64}, [KEY])
    unsigned = {k: v for k, v in command.items() if k != "signature"}
    assert not signature_matches(unsigned, [KEY])
    assert not signature_matches({**command, "signature": "é" * 64}, [KEY])  # not hex: no error


# --- the keys a process holds -----------------------------------------------------------------


def test_the_command_key_signs_and_older_keys_are_accepted_during_a_rotation():
    keys = CommandKeys.from_settings(
        settings(command_key=KEY, command_keys=SecretStr(" previous-key , older ,,"))
    )
    assert keys.signing is KEY
    assert [k.get_secret_value() for k in keys.accepted] == ["current-key", "previous-key", "older"]
    old = build_command(
        command="publish_edition",
        args={"edition": "2021-06"},
        requested_by="cli",
        requested_at="2021-07-02T08:00:00Z",
        key=OLD,
    )
    assert keys.refusal(old) is None
    assert CommandKeys.from_settings(settings(command_key=KEY)).refusal(old) == (
        f"{UNAUTHENTICATED}: the signature matches none of the publisher's keys"
    )


def test_a_command_is_refused_unsigned_wrongly_signed_or_without_any_key_to_verify():
    keys = CommandKeys.from_settings(settings(command_key=KEY))
    signed = build_command(
        command="publish_edition",
        args={"edition": "2021-06"},
        requested_by="cli",
        requested_at="2021-07-02T08:00:00Z",
        key=KEY,
    )
    unsigned = {k: v for k, v in signed.items() if k != "signature"}
    assert keys.refusal(signed) is None
    assert keys.refusal(unsigned) == f"{UNAUTHENTICATED}: the command is not signed"
    none = CommandKeys.from_settings(settings())
    assert none.signing is None and none.accepted == ()
    refusal = none.refusal(signed)
    assert refusal is not None and refusal.startswith(UNAUTHENTICATED)
    assert "no command key" in refusal
    for reason in (keys.refusal(unsigned), refusal):
        assert KEY.get_secret_value() not in str(reason) and signed["signature"] not in str(reason)


# --- where the command line finds its key ------------------------------------------------------


def test_the_local_key_file_is_written_for_its_owner_only_and_read_by_the_cli(tmp_path: Path):
    local = settings(run_dir=tmp_path / "run")
    with pytest.raises(NoCommandKey, match="OBS_COMMAND_KEY"):
        operator_signing_key(local)
    path = local_key_path(local)
    path.parent.mkdir()
    path.write_text("stale")
    path.chmod(0o644)
    key = write_local_key(local)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # replaced, not reopened
    assert len(key.get_secret_value()) >= 43  # token_urlsafe(32)
    assert operator_signing_key(local).get_secret_value() == key.get_secret_value()
    explicit = settings(run_dir=tmp_path / "run", command_key=KEY)
    assert operator_signing_key(explicit) is KEY  # the environment wins over the file


@pytest.mark.parametrize(
    "args", [["accounts", "set", "dep-32", "gers"], ["edition", "publish", "2021-06"]]
)
def test_the_cli_without_any_key_says_how_to_provide_one(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    for name in ("OBS_COMMAND_KEY", "OBS_COMMAND_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OBS_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.chdir(tmp_path)  # no .env
    _register()
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, args)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert "no command key" in result.output and "OBS_COMMAND_KEY" in result.output
    assert "command.key" in result.output and "observatoire run" in result.output
