"""The dead-links index as the API lists it."""

from __future__ import annotations

from typing import cast

from redis.asyncio import Redis

from services.common.view.keys import ViewKeys
from services.common.view.values import DeadLink


async def dead_links(redis: Redis, rk: ViewKeys) -> list[DeadLink]:
    """Every dead account (the index holds at most one entry per account)."""
    raw = cast(dict[bytes, bytes], await redis.hgetall(rk.DEAD_LINKS_KEY))
    return [DeadLink.decode(value) for value in raw.values()]
