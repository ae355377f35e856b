"""Response bodies shared by the JSON routes and the pages: standings items (live and
provisional from stored entries, published ones as published) and the edition body."""

from __future__ import annotations

from typing import Any

import orjson

from services.api.items import ScoredEntries, published_item
from services.api.read.history import History
from services.api.read.standings import EditionPage, PublishedPage, StandingsPage
from services.common.territories import Registry
from services.common.view.accounts import AccountMapping


def view_items(scored: ScoredEntries, page: StandingsPage, offset: int) -> list[dict[str, Any]]:
    """The items of a scorer-view page (rank = position in the filtered list)."""
    return [scored.item(row, position) for position, row in enumerate(page.rows, start=offset + 1)]


def standings_json(
    scored: ScoredEntries, category: str, page: StandingsPage, limit: int, offset: int
) -> bytes:
    """The live standings body, assembled from memoised item JSON."""
    head = orjson.dumps(
        {
            "category": category,
            "edition": None,
            "as_of": page.as_of,
            "total": page.total,
            "limit": limit,
            "offset": offset,
            "movement_since": page.latest_edition,
            "rank_changes_seq": page.seq or 0,
        }
    )
    items = b",".join(
        scored.item_json(row, position) for position, row in enumerate(page.rows, start=offset + 1)
    )
    return head[:-1] + b',"items":[' + items + b"]}"


async def published_items(
    accounts: AccountMapping, registry: Registry, page: PublishedPage, offset: int
) -> list[dict[str, Any]]:
    """Items of a published page; `simulated` when the entry's handle is the territory's
    simulated account (published entries do not carry the flag)."""
    links = await accounts.links([entry["id"] for entry in page.rows])
    items = []
    for position, entry in enumerate(page.rows, start=offset + 1):
        link = links.get(entry["id"])
        simulated = link is not None and link.simulated and link.handle == entry["handle"]
        items.append(published_item(registry[entry["id"]], entry, position, simulated))
    return items


async def edition_body(
    accounts: AccountMapping,
    registry: Registry,
    scored: ScoredEntries,
    category: str,
    month: str,
    page: EditionPage,
    *,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    """The standings shape for an edition page (published or provisional)."""
    if page.published is not None:
        return {
            "category": category,
            "edition": month,
            "status": "published",
            "published_at": page.published.published_at,
            "as_of": page.published.published_at,
            "total": page.published.total,
            "limit": limit,
            "offset": offset,
            "movement_since": None,
            "items": await published_items(accounts, registry, page.published, offset),
        }
    assert page.provisional is not None
    view = page.provisional
    return {
        "category": category,
        "edition": month,
        "status": "provisional",
        "published_at": None,
        "as_of": view.as_of,
        "total": view.total,
        "limit": limit,
        "offset": offset,
        "movement_since": view.latest_edition,
        "items": view_items(scored, view, offset),
    }


def history_body(history: History) -> dict[str, Any]:
    """The body of `GET /api/v1/territories/{id}/history`: a territory's daily points (then
    weekly ones before the last 90 days), oldest first, each with its rank that day."""
    territory = history.territory
    return {
        "id": territory.id,
        "name": territory.name,
        "category": territory.category,
        "as_of": history.as_of,
        "points": [
            {
                "date": p.shown.point.date.isoformat(),
                "period": p.shown.period,
                "observed_at": p.observed_at,
                "score": p.shown.point.score,
                "rank": p.rank,
                "ranked": p.ranked,
                "followers": p.shown.point.followers,
                "posts": p.shown.point.posts,
            }
            for p in history.points
        ],
    }
