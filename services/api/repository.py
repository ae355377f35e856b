"""Read-only access to the standings views: one Lua script per response (a consistent view).

A category's live standings come from the scorer's current view, an edition month from the
publisher's published copy once it is published and from the scorer's month view before
(provisional). Each read is one script on the category's slot (services/api/lua.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, cast

import orjson
from redis.asyncio import Redis

from services.api import lua
from services.common.standings_entry import StoredEntry, decode_entry
from services.common.view import keys as rk


class StandingsRow(NamedTuple):
    """One ranked territory of a scorer view, with its national rank and link status.

    A tuple, not a dataclass: a page builds up to 500 of them per request."""

    territory_id: str
    national_rank: int
    raw: bytes  # the stored entry, as read (services/common/standings_entry.py)
    link_status: str | None
    published_rank: int | None = None  # rank in the latest published edition

    @property
    def entry(self) -> StoredEntry:
        """The stored entry, decoded (readers that cache by `raw` decode only on a miss)."""
        return decode_entry(self.raw)


@dataclass(frozen=True, slots=True)
class StandingsPage:
    """A slice of a scorer view with the total after filters and the watermark it reflects."""

    total: int
    as_of: str | None
    rows: list[StandingsRow]
    latest_edition: str | None = None  # the published edition `movement` is measured from
    seq: int | None = None  # the category's last rank-change seq (current view only)


@dataclass(frozen=True, slots=True)
class PublishedPage:
    """A slice of a published edition: entries as in `obs.editions.v1` `standings[]`."""

    total: int
    published_at: str | None
    rows: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class EditionPage:
    """A month of a category: published (immutable) or provisional (the scorer's view)."""

    status: Literal["published", "provisional"]
    published: PublishedPage | None = None
    provisional: StandingsPage | None = None


@dataclass(frozen=True, slots=True)
class CategorySummary:
    """What the home page shows of a category's live standings."""

    category: str
    total: int
    leaders: list[StandingsRow]
    as_of: str | None
    latest_edition: str | None
    seq: int | None


def _text(value: bytes | None) -> str | None:
    return None if value is None or value is False else value.decode()


def _int(value: bytes | int | None) -> int | None:
    return None if value is None or value is False else int(float(value))


def _geo(category: str, region: str | None, departement: str | None) -> str | None:
    if region is not None:
        return rk.geo_key(category, "reg", region)
    if departement is not None:
        return rk.geo_key(category, "dep", departement)
    return None


def _view_rows(ids: list, entries: list, nranks: list, links: list, before: list) -> list:
    return [
        StandingsRow(
            territory_id=tid.decode(),
            national_rank=int(nrank) + 1,
            raw=entry,
            link_status=_text(link),
            published_rank=_int(prev),
        )
        for tid, entry, nrank, link, prev in zip(ids, entries, nranks, links, before, strict=True)
        if entry is not None
    ]


def _view_page(raw: list, latest: bytes | None, seq: bytes | None = None) -> StandingsPage:
    total, as_of, ids, entries, nranks, links, before = raw
    return StandingsPage(
        total=int(total),
        as_of=_text(as_of) or None,
        rows=_view_rows(ids, entries, nranks, links, before),
        latest_edition=_text(latest),
        seq=_int(seq),
    )


class StandingsRepository:
    """Reads standings views (current, provisional or published months) from Redis."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._current = redis.register_script(lua.READ_CURRENT)
        self._edition = redis.register_script(lua.READ_EDITION)
        self._summary = redis.register_script(lua.READ_SUMMARY)

    def _view_keys(self, category: str, edition: str | None, geo: str | None) -> list[str]:
        prefix = rk.view_prefix(category, edition)
        rank = rk.rank_key(prefix)
        return [
            rank,
            rk.entry_key(prefix),
            rk.meta_key(category),
            rk.link_status_key(category),
            geo or rank,
            rk.latest_published_rank_key(category),
            rk.latest_published_edition_key(category),
        ]

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
        return self.page_of(reply, current=edition is None)

    async def view_reply(
        self,
        category: str,
        edition: str | None,
        *,
        offset: int,
        limit: int,
        region: str | None = None,
        departement: str | None = None,
    ) -> list[Any]:
        """The script's reply for a view page, as read (equal replies: equal pages)."""
        geo = _geo(category, region, departement)
        keys = [*self._view_keys(category, edition, geo), rk.rank_changes_state_key(category)]
        return cast(
            list[Any], await self._current(keys=keys, args=[offset, limit, int(geo is not None)])
        )

    @staticmethod
    def page_of(reply: list[Any], *, current: bool = True) -> StandingsPage:
        """The page a `view_reply` holds."""
        return _view_page(reply[:7], reply[7], reply[8] if current else None)

    @staticmethod
    def _published_keys(category: str, edition: str) -> list[str]:
        return [
            rk.published_rank_key(category, edition),
            rk.published_entry_key(category, edition),
            rk.published_meta_key(category, edition),
        ]

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
        geo = _geo(category, region, departement)
        keys = [
            *self._view_keys(category, edition, geo),
            *self._published_keys(category, edition),
        ]
        status, raw, latest = await self._edition(
            keys=keys, args=[offset, limit, int(geo is not None)]
        )
        if status == b"published":
            total, published_at, _ids, entries = raw
            rows = [orjson.loads(entry) for entry in entries if entry is not None]
            return EditionPage(
                "published",
                published=PublishedPage(int(total), _text(published_at), rows),
            )
        return EditionPage("provisional", provisional=_view_page(raw, latest))

    async def summaries(self, categories: list[str], leaders: int) -> list[CategorySummary]:
        """Each category's size, first `leaders` and latest edition (one script each)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for category in categories:
                prefix = rk.view_prefix(category, None)
                await self._summary(
                    keys=[
                        rk.rank_key(prefix),
                        rk.entry_key(prefix),
                        rk.link_status_key(category),
                        rk.meta_key(category),
                        rk.latest_published_edition_key(category),
                        rk.rank_changes_state_key(category),
                    ],
                    args=[leaders],
                    client=pipe,
                )
            results = await pipe.execute()
        summaries = []
        for category, (total, ids, entries, links, as_of, latest, seq) in zip(
            categories, results, strict=True
        ):
            rows = [
                StandingsRow(tid.decode(), position, entry, _text(link))
                for position, (tid, entry, link) in enumerate(
                    zip(ids, entries, links, strict=True), start=1
                )
                if entry is not None
            ]
            summaries.append(
                CategorySummary(category, int(total), rows, _text(as_of), _text(latest), _int(seq))
            )
        return summaries

    async def published_leaders(
        self, categories: list[str], edition: str, leaders: int
    ) -> dict[str, PublishedPage]:
        """The first `leaders` of each category's published edition (one script each)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for category in categories:
                keys = [
                    *self._view_keys(category, edition, None),
                    *self._published_keys(category, edition),
                ]
                await self._edition(keys=keys, args=[0, leaders, 0], client=pipe)
            results = await pipe.execute()
        pages = {}
        for category, (status, raw, _latest) in zip(categories, results, strict=True):
            if status != b"published":
                continue
            total, published_at, _ids, entries = raw
            rows = [orjson.loads(entry) for entry in entries if entry is not None]
            pages[category] = PublishedPage(int(total), _text(published_at), rows)
        return pages
