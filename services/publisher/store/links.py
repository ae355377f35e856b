"""Link status: each account's judged link, each territory's status per category, the
dead-links index, and the handles as the publisher applied `obs.accounts.v1`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import cast

from redis.asyncio import Redis

from services.common.dead_links import LinkState
from services.common.view import keys as rk


class LinkStore:
    """Reads and writes of the publisher's link facts."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def states(self, accounts: Iterable[tuple[str, str]]) -> dict[tuple[str, str], LinkState]:
        """The judged link of each (platform, handle); a fresh state when never judged."""
        accounts = list(accounts)
        if not accounts:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for platform, handle in accounts:
                pipe.get(rk.account_link_key(platform, handle))
            found = await pipe.execute()
        return {
            account: LinkState() if raw is None else LinkState.from_json(raw)
            for account, raw in zip(accounts, found, strict=True)
        }

    async def save(
        self,
        *,
        territory_status: Mapping[str, Mapping[str, str | None]],
        dead_links: Mapping[str, bytes | None],
        states: Mapping[tuple[str, str], LinkState],
    ) -> None:
        """Write territory link statuses (category -> id -> status, None: unjudged), the
        dead-links index, then the account states last: a crash in between is repaired by
        the redelivered snapshots, which find the old account states."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for category, statuses in territory_status.items():
                key = rk.link_status_key(category)
                if any(s is not None for s in statuses.values()):
                    pipe.hset(key, mapping={tid: s for tid, s in statuses.items() if s is not None})
                unjudged = [tid for tid, s in statuses.items() if s is None]
                if unjudged:
                    pipe.hdel(key, *unjudged)
            for account_key, value in dead_links.items():
                if value is None:
                    pipe.hdel(rk.DEAD_LINKS_KEY, account_key)
                else:
                    pipe.hset(rk.DEAD_LINKS_KEY, account_key, value)
            for (platform, handle), state in states.items():
                pipe.set(rk.account_link_key(platform, handle), state.to_json())
            await pipe.execute()

    async def dead_link_count(self) -> int:
        return int(await self.redis.hlen(rk.DEAD_LINKS_KEY))

    async def handles(self) -> dict[str, str]:
        """Territory id -> handle, as the publisher applied `obs.accounts.v1`."""
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(rk.PUBLISHER_ACCOUNTS_KEY))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def set_handles(self, handles: dict[str, str]) -> None:
        """Record many territories' handles at once (rebuild)."""
        if handles:
            await self.redis.hset(rk.PUBLISHER_ACCOUNTS_KEY, mapping=handles)  # type: ignore[arg-type]

    async def set_handle(self, territory_id: str, handle: str | None) -> None:
        if handle is None:
            await self.redis.hdel(rk.PUBLISHER_ACCOUNTS_KEY, territory_id)
        else:
            await self.redis.hset(rk.PUBLISHER_ACCOUNTS_KEY, territory_id, handle)
