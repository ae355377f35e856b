"""Command results (`obs:{meta}:command-results`): the publisher's answer to each command,
written by the publisher, read by the API and the CLI while they wait for an answer."""

from __future__ import annotations

from typing import cast

import redis as sync_redis
from redis.asyncio import Redis

from services.common.view.generations import read_generations_sync
from services.common.view.keys import ViewKeys
from services.common.view.values import CommandResult


class ResultStore:
    """Reads and writes of command results."""

    def __init__(self, redis: Redis, rk: ViewKeys) -> None:
        self.redis = redis
        self.rk = rk

    async def of(self, command_id: str) -> CommandResult | None:
        raw = await self.redis.hget(self.rk.COMMAND_RESULTS_KEY, command_id)
        return None if raw is None else CommandResult.decode(command_id, raw)

    async def save(self, command_id: str, record: bytes) -> None:
        """Store a result as produced to `obs.command-results.v1`."""
        await self.redis.hset(self.rk.COMMAND_RESULTS_KEY, command_id, record)


def read_result(client: sync_redis.Redis, command_id: str) -> CommandResult | None:
    """A command's result in the current generation, read with a synchronous client (the
    CLI)."""
    rk = read_generations_sync(client).keys
    raw = client.hget(rk.COMMAND_RESULTS_KEY, command_id)
    return None if raw is None else CommandResult.decode(command_id, cast(bytes | str, raw))
