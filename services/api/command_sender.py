"""Operator commands from the API to `obs.commands.v1` (the audit log the publisher executes).

Commands are signed with `OBS_COMMAND_KEY` (the publisher refuses any other); an API without
that key answers operator actions 503 and says why rather than produce commands the publisher
would refuse. The producer starts on the first command, not with the API: reading the
standings must not depend on the broker. Before it starts, the topic is checked like every
service does (`verify_topics`); a missing topic or an unreachable broker answers 503 with the
reason, and the next command tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

import orjson
from pydantic import SecretStr

from services.api.errors import ApiError
from services.common.commands.keys import CommandKeys
from services.common.commands.sender import Sender, kafka_sender
from services.common.contracts import TOPIC_COMMANDS
from services.common.kafka import TopicsNotReady, verify_topics
from services.common.settings import Settings

log = logging.getLogger("api.commands")

SEND_TIMEOUT_SECONDS: Final = 15.0
# At the API's shutdown, how long the producers being closed may still take (its watchdog: 7 s).
CLOSE_TIMEOUT_SECONDS: Final = 5.0


class CommandSender:
    """Produces built commands (key: their event_id) and awaits the broker's acknowledgement."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._key = CommandKeys.from_settings(settings).signing
        if self._key is None and settings.operator_token is not None:
            log.warning(
                "no command key (OBS_COMMAND_KEY): operator actions answer 503 until one is set"
            )
        self._stack = contextlib.AsyncExitStack()
        self._send: Sender | None = None
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    async def _sender(self) -> Sender:
        async with self._lock:
            if self._send is not None:
                return self._send
            try:
                await asyncio.to_thread(verify_topics, self.settings, [TOPIC_COMMANDS])
                self._send = await asyncio.wait_for(
                    self._stack.enter_async_context(kafka_sender(self.settings)),
                    SEND_TIMEOUT_SECONDS,
                )
            except TopicsNotReady as exc:
                raise _unavailable(str(exc)) from exc
            except Exception as exc:  # aiokafka's and asyncio's errors alike
                # What the client library said stays in the log, not in the answer.
                log.error("cannot reach the broker for commands: %r", exc)
                await self._reset()
                raise _unavailable("cannot reach the broker; retry in a few seconds") from exc
            return self._send

    def signing_key(self) -> SecretStr:
        """The key commands are signed with; ApiError 503 when this API has none."""
        if self._key is None:
            raise _unavailable(
                "this server cannot sign operator commands: no command key is configured "
                "(set OBS_COMMAND_KEY to the key the publisher verifies with)"
            )
        return self._key

    async def submit(self, command: dict[str, Any]) -> None:
        """Produce one command; ApiError 503 when the broker cannot take it now."""
        send = await self._sender()
        try:
            await asyncio.wait_for(
                send(TOPIC_COMMANDS, command["event_id"].encode(), orjson.dumps(command)),
                SEND_TIMEOUT_SECONDS,
            )
        except Exception as exc:
            log.error("command %s not acknowledged: %r", command["event_id"], exc)
            async with self._lock:
                await self._reset()
            raise _unavailable(
                f"the broker did not acknowledge command {command['event_id']}; "
                "it may still arrive: check its status URL before retrying"
            ) from exc

    async def _reset(self) -> None:
        """Drop the producer; the next command starts another. It is stopped in the background:
        aiokafka's stop first waits for the records it holds, up to its request timeout while
        the broker does not answer (measured in the broker-cut drill: a 503 promised after 15 s
        came after 30 s), and neither this answer nor the next command may wait for that."""
        self._send = None
        stack, self._stack = self._stack, contextlib.AsyncExitStack()
        task = asyncio.create_task(_close_quietly(stack))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Stop the producer (the app's lifespan calls this), giving the producers being
        stopped CLOSE_TIMEOUT_SECONDS at most."""
        async with self._lock:
            await self._reset()
        if self._closing:
            _, pending = await asyncio.wait(set(self._closing), timeout=CLOSE_TIMEOUT_SECONDS)
            for task in pending:  # the broker still does not answer: give up on them
                task.cancel()


async def _close_quietly(stack: contextlib.AsyncExitStack) -> None:
    with contextlib.suppress(Exception):
        await stack.aclose()


def _unavailable(message: str) -> ApiError:
    return ApiError(503, "commands_unavailable", message, {"Retry-After": "10"})
