"""The scorer's account mapping (`obs:{meta}:accounts`): which account each territory uses, as
the scorer last applied `obs.accounts.v1` (each territory's newest record by offset). The
scorer writes it; the API and the CLI read it; the scorer's metrics path reads it as the reverse
lookup (which territories use a handle), cached by its version counter and validated by one
read of that counter per batch. The links the standings writes are checked against are kept
per category (`obs:{cat:<c>}:accounts`, services/scorer/store/views.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import redis as sync_redis
from redis.asyncio import Redis

from services.common.view.generations import read_generations_sync
from services.common.view.keys import ViewKeys
from services.common.view.scripts import scorer as scripts
from services.common.view.values import AccountLink


class AccountMapping:
    """Reads and writes of the mapping; `mapping()` re-reads it only when it changed."""

    def __init__(self, redis: Redis, rk: ViewKeys) -> None:
        self.redis = redis
        self.rk = rk
        self._version: int | None = None
        self._mapping: dict[str, AccountLink] = {}
        self._set = scripts.SET_ACCOUNTS.bind(redis)

    async def set_accounts(self, links: Mapping[str, tuple[AccountLink, int]]) -> int:
        """Record many territories' accounts at once, each with the offset of its
        `obs.accounts.v1` record: a territory whose stored offset is at least as new keeps its
        account (an older or redelivered record is a no-op). Bumps the mapping's version when
        anything changed; returns how many territories were set."""
        if not links:
            return 0
        args: list[str | bytes | int] = []
        for tid, (link, version) in links.items():
            args += [tid, version, link.encode()]
        return await self._set(scripts.accounts_keys(self.rk), args)

    async def mapping(self) -> dict[str, AccountLink]:
        """Every territory's account, re-read only when the mapping changed."""
        version = int(await self.redis.get(self.rk.ACCOUNTS_VERSION_KEY) or 0)
        if version != self._version:
            raw = cast(dict[bytes, bytes], await self.redis.hgetall(self.rk.ACCOUNTS_KEY))
            self._mapping = {k.decode(): AccountLink.decode(v) for k, v in raw.items()}
            self._version = version
        return self._mapping

    async def links(self, ids: list[str]) -> dict[str, AccountLink]:
        """The accounts of these territories (absent: never mapped)."""
        if not ids:
            return {}
        found = await self.redis.hmget(self.rk.ACCOUNTS_KEY, ids)
        return {
            tid: AccountLink.decode(raw)
            for tid, raw in zip(ids, found, strict=True)
            if raw is not None
        }


def read_link(client: sync_redis.Redis, territory_id: str) -> AccountLink | None:
    """One territory's account in the current generation, read with a synchronous client
    (the CLI)."""
    rk = read_generations_sync(client).keys
    raw = client.hget(rk.ACCOUNTS_KEY, territory_id)
    return None if raw is None else AccountLink.decode(cast(bytes | str, raw))
