"""Reading the watermark (`obs:{meta}:watermark`, written by the scorer's ADVANCE_WATERMARK):
the one read shared by the scorer, the publisher and the API; and a category's `as_of`."""

from __future__ import annotations

from redis.asyncio import Redis

from services.common.view.keys import ViewKeys
from services.common.view.values import decode_watermark


async def read_watermark(redis: Redis, rk: ViewKeys) -> int | None:
    """The K-th newest account time (epoch seconds), None while fewer than K are known."""
    return decode_watermark(await redis.zrange(rk.WATERMARK_KEY, 0, -1, withscores=True))


async def read_as_of(redis: Redis, rk: ViewKeys, category: str) -> str | None:
    """The watermark as last applied to a category (`as_of` of its standings), or None."""
    raw = await redis.hget(rk.meta_key(category), "as_of")
    return raw.decode() if isinstance(raw, bytes) else raw
