"""Reading the watermark (`obs:{meta}:watermark`, written by the scorer's ADVANCE_WATERMARK):
the one read shared by the scorer, the publisher and the API."""

from __future__ import annotations

from redis.asyncio import Redis

from services.common.view import keys as rk
from services.common.view.values import decode_watermark


async def read_watermark(redis: Redis) -> int | None:
    """The K-th newest account time (epoch seconds), None while fewer than K are known."""
    return decode_watermark(await redis.zrange(rk.WATERMARK_KEY, 0, -1, withscores=True))
