"""The publisher's lease in Redis: which publisher is the active one, with a fencing token.

`obs:{meta}:publisher:lease` holds `<token> <name>` with a time to live; the token comes from
`obs:{meta}:publisher:tokens` (INCR), so every holder gets a greater token than all before it.
Taking, renewing and giving up the lease are one script each on the `obs:{meta}` slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from services.common.view.keys import PUBLISHER_LEASE_KEY
from services.common.view.scripts import publisher as scripts
from services.common.view.scripts import text


@dataclass(frozen=True, slots=True)
class Held:
    """A lease this process holds: its token and the value stored (`<token> <name>`)."""

    token: int
    value: str


class LeaseStore:
    """Take, renew and give up the publisher's lease."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._acquire = scripts.ACQUIRE_LEASE.bind(redis)
        self._renew = scripts.RENEW_LEASE.bind(redis)
        self._release = scripts.RELEASE_LEASE.bind(redis)

    async def acquire(self, name: str, ttl_ms: int) -> Held | str:
        """Take the lease if it is free (a new token); else the current holder's value."""
        token, value = await self._acquire(scripts.lease_keys(), [name, ttl_ms])
        return Held(token, value) if token else value

    async def renew(self, held: Held, ttl_ms: int) -> bool:
        """Extend the lease; False if it is no longer this holder's."""
        return await self._renew(scripts.lease_keys()[:1], [held.value, ttl_ms])

    async def release(self, held: Held) -> bool:
        """Give the lease up (a clean stop) if it is still this holder's."""
        return await self._release(scripts.lease_keys()[:1], [held.value])

    async def holder(self) -> str | None:
        """The current holder's value, if any."""
        return text(await self.redis.get(PUBLISHER_LEASE_KEY))
