"""The command key the tests sign with and their publishers verify with (the `settings`
fixture carries it, `service_env` passes it on)."""

from __future__ import annotations

from typing import Final

from pydantic import SecretStr

from services.common.commands.keys import CommandKeys

COMMAND_KEY: Final = SecretStr("tests-command-key")
COMMAND_KEYS: Final = CommandKeys(signing=COMMAND_KEY, accepted=(COMMAND_KEY,))
