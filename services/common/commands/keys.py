"""Where the keys that sign and verify operator commands come from.

The signature itself is part of the contract (`services.common.events.command_signature`);
this module only says which keys a process holds:

- a signer (the API, the CLI, the publisher's automatic publication) signs with
  `OBS_COMMAND_KEY`; the CLI, without it, takes the local stack's key file,
  `RUN_DIR/command.key`, which `observatoire run` writes when it generates a key;
- the publisher accepts `OBS_COMMAND_KEY` and the older keys of `OBS_COMMAND_KEYS`
  (comma-separated) during a rotation.

Keys stay `SecretStr`: nothing here logs or formats one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import SecretStr

from services.common.events import signature_matches
from services.common.settings import Settings

LOCAL_KEY_FILE: Final = "command.key"
UNAUTHENTICATED: Final = "unauthenticated"  # the start of the refusal's reason
HOW_TO_PROVIDE: Final = (
    "set OBS_COMMAND_KEY to the key the publisher verifies with (or run the local stack, "
    "`observatoire run`, which writes RUN_DIR/command.key)"
)


class NoCommandKey(Exception):
    """This process has no key to sign commands with (the message says how to provide one)."""


@dataclass(frozen=True, slots=True)
class CommandKeys:
    """The key a process signs with (None: it cannot sign) and every key it accepts."""

    signing: SecretStr | None
    accepted: tuple[SecretStr, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> CommandKeys:
        """`OBS_COMMAND_KEY` signs; it and every key of `OBS_COMMAND_KEYS` are accepted."""
        older: list[SecretStr] = []
        if settings.command_keys is not None:
            raw = settings.command_keys.get_secret_value()
            older = [SecretStr(key.strip()) for key in raw.split(",") if key.strip()]
        signing = settings.command_key
        if signing is not None and not signing.get_secret_value():
            signing = None
        accepted = ([signing] if signing is not None else []) + older
        return cls(signing=signing, accepted=tuple(accepted))

    def refusal(self, command: Mapping[str, Any]) -> str | None:
        """None when the command is authentic; else the reason to refuse it, which starts
        with `unauthenticated` (and never holds a key or the signature)."""
        if not self.accepted:
            return (
                f"{UNAUTHENTICATED}: the publisher has no command key to verify commands with "
                "(OBS_COMMAND_KEY)"
            )
        if command.get("signature") is None:
            return f"{UNAUTHENTICATED}: the command is not signed"
        if not signature_matches(command, self.accepted):
            return f"{UNAUTHENTICATED}: the signature matches none of the publisher's keys"
        return None


def local_key_path(settings: Settings) -> Path:
    """The local stack's key file (written by `observatoire run`)."""
    return settings.run_dir / LOCAL_KEY_FILE


def write_local_key(settings: Settings) -> SecretStr:
    """Generate a random key and write it to the local key file, readable by its owner only
    (created with mode 0600, never wider even briefly; an older file is replaced)."""
    key = secrets.token_urlsafe(32)
    path = local_key_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # O_CREAT keeps an existing file's mode: start from none
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # whatever the umask
        os.write(descriptor, key.encode("ascii"))
    finally:
        os.close(descriptor)
    return SecretStr(key)


def operator_signing_key(settings: Settings) -> SecretStr:
    """The key an operator's command line signs with: `OBS_COMMAND_KEY`, else the local
    stack's key file; NoCommandKey (saying how to provide one) when neither exists."""
    signing = CommandKeys.from_settings(settings).signing
    if signing is not None:
        return signing
    path = local_key_path(settings)
    try:
        stored = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        stored = ""
    except OSError as exc:
        raise NoCommandKey(
            f"no command key: OBS_COMMAND_KEY is not set and {path} cannot be read "
            f"({exc.strerror}); {HOW_TO_PROVIDE}"
        ) from None
    if not stored:
        raise NoCommandKey(
            f"no command key: OBS_COMMAND_KEY is not set and there is no {path}; {HOW_TO_PROVIDE}"
        )
    return SecretStr(stored)
