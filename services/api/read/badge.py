"""What the badge reads: a territory's rank in its category's latest published edition and
its live national rank, in one MULTI on the category's slot (one consistent view), then
whether that edition is recorded as published."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from services.common.territories import Territory
from services.common.view.keys import ViewKeys


@dataclass(frozen=True, slots=True)
class BadgeRanks:
    """The latest published edition of the category (None: none yet), the territory's rank
    there and its live national rank (None: not ranked)."""

    edition: str | None
    edition_rank: int | None
    live_rank: int | None


async def badge_ranks(redis: Redis, rk: ViewKeys, territory: Territory) -> BadgeRanks:
    """The territory's ranks, read at once."""
    category = territory.category
    async with redis.pipeline(transaction=True) as pipe:
        pipe.get(rk.latest_published_edition_key(category))
        pipe.zscore(rk.latest_published_rank_key(category), territory.id)
        pipe.zrank(rk.rank_key(rk.view_prefix(category, None)), territory.id)
        edition, edition_rank, live_index = await pipe.execute()
    live_rank = None if live_index is None else int(live_index) + 1
    # A publication writes the category's copy first and records the month last: until it is
    # recorded (in the `{meta}` slot) the month is not published yet.
    if edition is None or not await redis.hexists(rk.EDITIONS_KEY, edition):
        return BadgeRanks(None, None, live_rank)
    return BadgeRanks(
        edition=edition.decode(),
        edition_rank=None if edition_rank is None else int(edition_rank),
        live_rank=live_rank,
    )
