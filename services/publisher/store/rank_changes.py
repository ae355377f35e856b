"""Rank changes: the published list's read, its recorded state, the write-ahead copy of an
event being produced, and the recent events (docs/redis.md, "Publisher")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import orjson
from redis.asyncio import Redis

from services.common.view.keys import ViewKeys
from services.common.view.scripts import publisher as scripts
from services.common.view.values import PendingRankChange, RankState
from services.publisher.store.fence import FencedWriter, check

RECENT_EVENTS = 1000  # rank-change events kept per category (ARCHITECTURE: the last 1,000)


@dataclass(frozen=True, slots=True)
class TopRead:
    """A category's published list read from the live standings, with the scores involved."""

    top: list[str]
    scores: dict[str, float]  # score of each territory of `top`
    as_of: str | None  # the watermark the category view reflects
    previous_scores: dict[str, float | None]  # current score of each previous-list territory


class RankChangeStore:
    """Reads and idempotent writes of the rank-change state."""

    def __init__(self, redis: Redis, rk: ViewKeys, fence: FencedWriter) -> None:
        self.redis = redis
        self.rk = rk
        self.fence = fence
        self._read_top = scripts.READ_TOP.bind(redis)
        self._commit = scripts.COMMIT_RANK_CHANGE.bind(redis)

    async def read_top(self, category: str, size: int, previous: Sequence[str]) -> TopRead:
        """The first `size` of the live standings, as one consistent read."""
        reply = await self._read_top(scripts.top_keys(self.rk, category), [size - 1, *previous])
        return TopRead(
            top=[tid for tid, _score in reply.top],
            scores=dict(reply.top),
            as_of=reply.as_of,
            previous_scores=dict(zip(previous, reply.previous, strict=True)),
        )

    async def state(self, category: str) -> RankState:
        """The recorded published list of a category."""
        raw = await self.redis.hgetall(self.rk.rank_changes_state_key(category))
        return RankState.decode(cast(dict[bytes, bytes], raw))

    async def pending(self, category: str) -> PendingRankChange | None:
        """The write-ahead copy of an event being produced."""
        raw = await self.redis.get(self.rk.rank_changes_pending_key(category))
        return None if raw is None else PendingRankChange.decode(raw)

    async def write_pending(self, category: str, pending: PendingRankChange) -> None:
        """Save, before producing, what the event's record cannot carry: every score."""
        tag = self.rk.category_tag(category)
        batch = self.fence.batch(tag).add(
            "SET", self.rk.rank_changes_pending_key(category), pending.encode()
        )
        await self.fence.run(batch)

    async def drop_pending(self, category: str) -> None:
        """Forget a write-ahead copy whose event never reached the topic."""
        tag = self.rk.category_tag(category)
        batch = self.fence.batch(tag).add("DEL", self.rk.rank_changes_pending_key(category))
        await self.fence.run(batch)

    async def commit(
        self,
        category: str,
        *,
        seq: int,
        event_id: str,
        at: str,
        top: Sequence[str],
        scores: Mapping[str, float | None],
        record: bytes,
    ) -> None:
        """Record a delivered event (idempotent: the same event twice changes nothing)."""
        reply = await self._commit(
            scripts.rank_change_keys(self.rk, category),
            [
                seq,
                event_id,
                at,
                orjson.dumps(list(top)),
                orjson.dumps(dict(scores)),
                record,
                RECENT_EVENTS,
                self.fence.token,
            ],
        )
        check(reply, self.fence.token, self.rk.category_tag(category))

    async def recent(self, category: str, after_seq: int = 0) -> list[bytes]:
        """The recorded events of a category after `after_seq`, in seq order."""
        found = await self.redis.zrangebyscore(
            self.rk.rank_changes_events_key(category), f"({after_seq}", "+inf"
        )
        return cast(list[bytes], found)
