"""What the Atom feeds read beyond the standings: a category's published editions with their
leaders, its newest rank-change events, and an account's kept link transitions.

Cross-key reads of one category (the `{meta}` editions index, then the category's published
leaders in one pipeline on its slot); the rank-change events through `RankChangeFeed`, newest
first, a window at a time, until the caller has enough.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Final, cast

import orjson
from redis.asyncio import Redis

from services.api.read.rank_changes import RankChangeFeed, last_seqs
from services.common.dead_links import LinkTransition
from services.common.view.keys import ViewKeys
from services.common.view.values import decode_editions

WINDOW: Final = 200  # rank-change events read per round trip, newest first


async def published_editions(
    redis: Redis, rk: ViewKeys, category: str, limit: int
) -> list[tuple[str, str, int, str | None]]:
    """The category's latest `limit` published editions in which it ranks someone, latest
    first: (month, published_at, ranked, leader id)."""
    editions = decode_editions(cast(dict[bytes, bytes], await redis.hgetall(rk.EDITIONS_KEY)))
    months = [
        month
        for month in sorted(editions, reverse=True)
        if editions[month].categories.get(category, 0) > 0
    ][:limit]
    if not months:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for month in months:
            pipe.zrange(rk.published_rank_key(category, month), 0, 0)
        leaders: list[Any] = await pipe.execute()
    return [
        (
            month,
            editions[month].published_at,
            editions[month].categories[category],
            cast(bytes, found[0]).decode() if found else None,
        )
        for month, found in zip(months, leaders, strict=True)
    ]


async def newest_rank_changes(
    redis: Redis, rk: ViewKeys, feed: RankChangeFeed, category: str, window: int = WINDOW
) -> AsyncGenerator[list[dict[str, Any]], None]:
    """The category's kept rank-change events, newest first, `window` at a time (seq has no
    gap: each window is the `window` events before the previous one)."""
    upper = (await last_seqs(redis, rk, [category]))[category]
    while upper > 0:
        lower = max(0, upper - window)
        found = await feed.after(category, lower, upper - lower)
        events = [orjson.loads(raw) for seq, raw in found.events if seq <= upper]
        if not events:
            return  # older events are no longer kept
        yield events[::-1]
        if found.oldest_seq is None or lower < found.oldest_seq:
            return
        upper = lower


async def link_transitions(
    redis: Redis, rk: ViewKeys, platform: str, handle: str
) -> list[LinkTransition]:
    """The account's kept link transitions (its last 50), oldest first."""
    raw = cast(list[bytes], await redis.zrange(rk.link_transitions_key(platform, handle), 0, -1))
    return [LinkTransition.from_json(member) for member in raw]
