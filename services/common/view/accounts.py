"""The scorer's account mapping (`obs:{meta}:accounts`): which account each territory uses, as
the scorer last applied `obs.accounts.v1`. The scorer writes it; the API and the CLI read it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import redis as sync_redis
from redis.asyncio import Redis

from services.common.view import keys as rk
from services.common.view.values import AccountLink


class AccountMapping:
    """Reads and writes of the mapping; `mapping()` re-reads it only when it changed."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._version: int | None = None
        self._mapping: dict[str, AccountLink] = {}

    async def set_accounts(self, links: Mapping[str, AccountLink]) -> None:
        """Record many territories' accounts at once, and bump the mapping's version."""
        if not links:
            return
        values: dict[str | bytes | bytearray | memoryview | int | float, Any] = {
            tid: link.encode() for tid, link in links.items()
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(rk.ACCOUNTS_KEY, mapping=values)
            pipe.incr(rk.ACCOUNTS_VERSION_KEY)
            await pipe.execute()

    async def mapping(self) -> dict[str, AccountLink]:
        """Every territory's account, re-read only when the mapping changed."""
        version = int(await self.redis.get(rk.ACCOUNTS_VERSION_KEY) or 0)
        if version != self._version:
            raw = cast(dict[bytes, bytes], await self.redis.hgetall(rk.ACCOUNTS_KEY))
            self._mapping = {k.decode(): AccountLink.decode(v) for k, v in raw.items()}
            self._version = version
        return self._mapping

    async def links(self, ids: list[str]) -> dict[str, AccountLink]:
        """The accounts of these territories (absent: never mapped)."""
        if not ids:
            return {}
        found = await self.redis.hmget(rk.ACCOUNTS_KEY, ids)
        return {
            tid: AccountLink.decode(raw)
            for tid, raw in zip(ids, found, strict=True)
            if raw is not None
        }


def read_link(client: sync_redis.Redis, territory_id: str) -> AccountLink | None:
    """One territory's account, read with a synchronous client (the CLI)."""
    raw = client.hget(rk.ACCOUNTS_KEY, territory_id)
    return None if raw is None else AccountLink.decode(cast(bytes | str, raw))
