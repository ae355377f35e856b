"""Read-only access to the standings views: one Lua script per response (a consistent view).

A category's live standings come from the scorer's current view, an edition month from the
publisher's published copy once it is published and from the scorer's month view before
(provisional). Each read is one script on the category's slot
(services/common/view/scripts/reader.py, which also defines the pages returned).
"""

from __future__ import annotations

from redis.asyncio import Redis

from services.common.view.keys import ViewKeys
from services.common.view.scripts import reader
from services.common.view.scripts.reader import (
    CategorySummary,
    CurrentReply,
    EditionPage,
    PublishedPage,
    StandingsPage,
    StandingsRow,
)

__all__ = [
    "CategorySummary",
    "CurrentReply",
    "EditionPage",
    "PublishedPage",
    "StandingsPage",
    "StandingsRepository",
    "StandingsRow",
]


class StandingsRepository:
    """Reads standings views (current, provisional or published months) from Redis."""

    def __init__(self, redis: Redis, rk: ViewKeys) -> None:
        self.redis = redis
        self.rk = rk
        self._current = reader.READ_CURRENT.bind(redis)
        self._edition = reader.READ_EDITION.bind(redis)
        self._summary = reader.READ_SUMMARY.bind(redis)

    async def page(
        self,
        category: str,
        edition: str | None,
        *,
        offset: int,
        limit: int,
        region: str | None = None,
        departement: str | None = None,
    ) -> StandingsPage:
        """One consistent read of a scorer view (current, or a month's as the scorer holds
        it), optionally filtered by région/département."""
        reply = await self.view_reply(
            category, edition, offset=offset, limit=limit, region=region, departement=departement
        )
        return reply.page(current=edition is None)

    async def view_reply(
        self,
        category: str,
        edition: str | None = None,
        *,
        offset: int,
        limit: int,
        region: str | None = None,
        departement: str | None = None,
    ) -> CurrentReply:
        """A scorer view's page as read (equal replies: equal pages)."""
        geo = reader.geo_key(self.rk, category, region, departement)
        return await self._current(
            reader.current_keys(self.rk, category, edition, geo),
            [offset, limit, int(geo is not None)],
        )

    async def edition(
        self,
        category: str,
        edition: str,
        *,
        offset: int,
        limit: int,
        region: str | None = None,
        departement: str | None = None,
    ) -> EditionPage:
        """A month of a category in one read: its published copy, or the provisional view."""
        geo = reader.geo_key(self.rk, category, region, departement)
        return await self._edition(
            reader.edition_keys(self.rk, category, edition, geo),
            [offset, limit, int(geo is not None)],
        )

    async def summaries(self, categories: list[str], leaders: int) -> list[CategorySummary]:
        """Each category's size, first `leaders` and latest edition (one script each)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for category in categories:
                await self._summary.queue(pipe, reader.summary_keys(self.rk, category), [leaders])
            results = await pipe.execute()
        return [
            _with_category(self._summary.decode(result), category)
            for category, result in zip(categories, results, strict=True)
        ]

    async def published_leaders(
        self, categories: list[str], edition: str, leaders: int
    ) -> dict[str, PublishedPage]:
        """The first `leaders` of each category's published edition (one script each)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for category in categories:
                keys = reader.edition_keys(self.rk, category, edition, None)
                await self._edition.queue(pipe, keys, [0, leaders, 0])
            results = await pipe.execute()
        pages = {}
        for category, result in zip(categories, results, strict=True):
            page = self._edition.decode(result)
            if page.published is not None:
                pages[category] = page.published
        return pages


def _with_category(summary: CategorySummary, category: str) -> CategorySummary:
    return CategorySummary(
        summary.total,
        summary.leaders,
        summary.as_of,
        summary.latest_edition,
        summary.seq,
        category,
    )
