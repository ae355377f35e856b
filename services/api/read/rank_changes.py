"""Rank-change reads: a category's recorded events after a cursor (`rc:events`, the last
1,000) and the last seq of the categories someone follows (`rc:state`).

The publisher records each event and moves the category's `rc:state` seq in one script, so a
read of both in one MULTI is consistent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from services.common.view.keys import ViewKeys


@dataclass(frozen=True, slots=True)
class FeedSlice:
    """Events after a cursor, with what the category holds: last seq and oldest kept seq."""

    events: list[tuple[int, bytes]]
    last_seq: int  # the category's last event (0: none yet)
    oldest_seq: int | None  # the oldest event still kept (None: none kept)

    def missed(self, after_seq: int) -> bool:
        """Some events after `after_seq` are no longer kept (the reader must reload)."""
        return (
            self.oldest_seq is not None
            and after_seq + 1 < self.oldest_seq
            and self.last_seq > after_seq
        )

    def unknown_cursor(self, after_seq: int) -> bool:
        """The cursor is beyond the last event: it comes from another history (a rebuild)."""
        return after_seq > self.last_seq


class RankChangeFeed:
    """Reads a category's recorded rank-change events."""

    def __init__(self, redis: Redis, rk: ViewKeys) -> None:
        self.redis = redis
        self.rk = rk

    async def after(self, category: str, after_seq: int, limit: int) -> FeedSlice:
        """Up to `limit` events with seq > after_seq, in seq order, in one consistent read."""
        events_key = self.rk.rank_changes_events_key(category)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrangebyscore(
                events_key, f"({after_seq}", "+inf", start=0, num=limit, withscores=True
            )
            pipe.zrange(events_key, 0, 0, withscores=True)
            pipe.hget(self.rk.rank_changes_state_key(category), "seq")
            found, oldest, seq = await pipe.execute()
        events = [(int(score), cast(bytes, raw)) for raw, score in found]
        return FeedSlice(
            events=events,
            last_seq=int(seq) if seq is not None else 0,
            oldest_seq=int(oldest[0][1]) if oldest else None,
        )


async def last_seqs(redis: Redis, rk: ViewKeys, categories: list[str]) -> dict[str, int]:
    """The last rank-change seq of each category (0: none yet), in one pipelined read."""
    async with redis.pipeline(transaction=False) as pipe:
        for category in categories:
            pipe.hget(rk.rank_changes_state_key(category), "seq")
        found: list[Any] = await pipe.execute()
    return {
        category: int(raw) if raw is not None else 0
        for category, raw in zip(categories, found, strict=True)
    }
