"""Monthly editions: `GET /api/v1/editions`, `GET /api/v1/editions/{YYYY-MM}` (status per
category) and `GET /api/v1/editions/{YYYY-MM}/{category}` (its standings)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from services.api import schemas
from services.api.deps import EditionsDep, RedisDep, RegistryDep, RepositoryDep, ScoredDep
from services.api.errors import ApiError
from services.api.items import published_item
from services.api.params import LIST_PARAMETERS, CategoryId, Month, parse_list_query
from services.api.repository import EditionPage, PublishedPage
from services.api.responses import JSON
from services.api.routes.standings import check_category, check_filters, etagged, view_items
from services.common.territories import Registry
from services.common.view import keys as rk
from services.common.view.entries import decode_account_link

router = APIRouter(prefix="/api/v1", tags=["editions"])


@router.get("/editions", responses=schemas.responses(schemas.EditionList))
async def list_editions(editions: EditionsDep) -> JSON:
    """Every month published or with data (latest first), with its status."""
    return JSON(await editions.listing())


@router.get("/editions/{month}", responses=schemas.responses(schemas.EditionStatus, 400, 404))
async def edition_status(month: Month, editions: EditionsDep) -> JSON:
    """A month's status in each category: published (ranked, parts) or provisional."""
    body = await editions.status(month)
    if body is None:
        raise ApiError(
            404,
            "unknown_edition",
            f"no edition {month}: not published, and no territory has data in that month",
        )
    return JSON(body)


async def simulated_flags(redis: Any, ids: list[str]) -> dict[str, tuple[str | None, bool]]:
    """The scorer's account mapping of these territories: (handle, simulated)."""
    if not ids:
        return {}
    found = await redis.hmget(rk.ACCOUNTS_KEY, ids)
    flags: dict[str, tuple[str | None, bool]] = {}
    for tid, raw in zip(ids, found, strict=True):
        if raw is not None:
            flags[tid] = decode_account_link(raw)
    return flags


async def published_items(
    redis: Any, registry: Registry, page: PublishedPage, offset: int
) -> list[dict[str, Any]]:
    """Items of a published page; `simulated` when the entry's handle is the territory's
    simulated account (published entries do not carry the flag)."""
    flags = await simulated_flags(redis, [entry["id"] for entry in page.rows])
    items = []
    for position, entry in enumerate(page.rows, start=offset + 1):
        handle, simulated = flags.get(entry["id"], (None, False))
        simulated = simulated and handle == entry["handle"]
        items.append(published_item(registry[entry["id"]], entry, position, simulated))
    return items


async def edition_body(
    redis: Any,
    registry: Registry,
    scored: Any,
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
            "items": await published_items(redis, registry, page.published, offset),
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


@router.get(
    "/editions/{month}/{category}",
    responses=schemas.responses(schemas.Standings, 400, 404, etag=True),
    openapi_extra={"parameters": LIST_PARAMETERS},
)
async def edition_standings(
    request: Request,
    month: Month,
    category: CategoryId,
    repository: RepositoryDep,
    registry: RegistryDep,
    scored: ScoredDep,
    editions: EditionsDep,
    redis: RedisDep,
) -> Response:
    """A month's standings: the published edition (immutable: `movement` against the
    previous edition, `streak`, handle and link status at publication) or, before it is
    published, the provisional ranking of the month (`status: provisional`)."""
    check_category(category)
    query = parse_list_query(request.query_params)
    limit, offset, region, departement = query.limit, query.offset, query.region, query.departement
    check_filters(registry, region, departement)
    page = await repository.edition(
        category, month, offset=offset, limit=limit, region=region, departement=departement
    )
    empty = page.status == "provisional" and page.provisional and page.provisional.total == 0
    if empty and not await editions.exists(month):
        raise ApiError(
            404,
            "unknown_edition",
            f"no edition {month}: not published, and no territory has data in that month",
        )
    body = await edition_body(
        redis, registry, scored, category, month, page, limit=limit, offset=offset
    )
    cache = "public, max-age=300" if page.status == "published" else "no-cache"
    return etagged(request, body, cache)
