"""`GET /flux/{category}.atom` and `GET /flux/territoires/{id}.atom`: Atom 1.0 feeds in French
for people who follow the rankings without Kafka (services/api/feeds.py writes them).

A category's feed: its published editions, changes of leader and entries into or exits from
the top 10, from its kept rank-change events (the last 1,000). A territory's feed: its rank
in each published edition and its account's transitions to and from `dead` (the publisher
keeps the last 50 per account). Newest first, at most 50 entries; a strong ETag (304 when the
reader already has the feed) and five minutes of caching. An unknown category or territory
answers a 404 JSON error, whatever the reader accepts.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Final

from fastapi import APIRouter, Request, Response

from services.api import feeds
from services.api.deps import ReadersDep, RedisDep, RegistryDep
from services.api.errors import ApiError, error_response
from services.api.etag import etag_of, etagged_bytes
from services.api.params import check_category, find_territory
from services.api.read.feeds import link_transitions, newest_rank_changes, published_editions
from services.common.contracts import PLATFORM_INSTAGRAM
from services.common.territories import Registry
from services.common.view.watermark import read_as_of

router = APIRouter(include_in_schema=False)

CACHE_CONTROL: Final = "public, max-age=300"


def _names(registry: Registry) -> feeds.Names:
    def name(territory_id: str) -> str:
        territory = registry.get(territory_id)
        return territory.name if territory is not None else territory_id

    return name


def _answer(request: Request, raw: bytes) -> Response:
    return etagged_bytes(
        request, raw, etag_of(raw), CACHE_CONTROL, media_type=feeds.ATOM_MEDIA_TYPE
    )


@router.get("/flux/{category}.atom")
async def category_feed(
    request: Request, category: str, redis: RedisDep, readers: ReadersDep, registry: RegistryDep
) -> Response:
    """A category's news: editions published, changes of leader, top 10 entries and exits."""
    try:
        check_category(category)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    rk = readers.rk
    items: list[feeds.FeedItem] = [
        feeds.EditionPublished(category, month, published_at, ranked, leader)
        for month, published_at, ranked, leader in await published_editions(
            redis, rk, category, feeds.MAX_ENTRIES
        )
    ]
    news = 0
    async with aclosing(newest_rank_changes(redis, rk, readers.feed, category)) as windows:
        async for window in windows:
            for event in window:
                told = feeds.rank_change_items(event)
                items += told
                news += len(told)
            if news >= feeds.MAX_ENTRIES:
                break  # older events cannot tell any of the newest 50
    head = feeds.category_head(category, await read_as_of(redis, rk, category))
    return _answer(request, feeds.atom_feed(head, items, _names(registry), str(request.base_url)))


@router.get("/flux/territoires/{territory_id}.atom")
async def territory_feed(
    request: Request, territory_id: str, redis: RedisDep, readers: ReadersDep, registry: RegistryDep
) -> Response:
    """A territory's news: its results in the published editions, moves of 3 places or more
    between two consecutive daily points, its account's dead link and its recovery."""
    try:
        territory = find_territory(registry, territory_id)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    detail = await readers.territories.detail(territory)
    items = feeds.edition_results(territory.id, territory.category, detail["history"])
    daily = await readers.history.read(territory)
    items += feeds.daily_rank_moves(territory.id, territory.category, daily.points)
    handle = detail["handle"]
    if handle is not None:
        transitions = await link_transitions(redis, readers.rk, PLATFORM_INSTAGRAM, handle)
        items += feeds.link_changes(territory.id, PLATFORM_INSTAGRAM, handle, transitions)
    head = feeds.territory_head(territory.id, territory.name, detail["as_of"])
    return _answer(request, feeds.atom_feed(head, items, _names(registry), str(request.base_url)))
