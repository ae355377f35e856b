"""`GET /api/v1/categories` and `GET /api/v1/standings/{category}` (live standings)."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from services.api import schemas
from services.api.coalesce import ReadCoalescer, RenderedBodies
from services.api.errors import ApiError
from services.api.items import ScoredEntries
from services.api.metrics import VIEW_READS
from services.api.params import LIST_PARAMETERS, CategoryId, parse_list_query
from services.api.repository import StandingsPage, StandingsRepository
from services.api.responses import JSON
from services.common.contracts import CATEGORIES, CATEGORIES_BY_ID
from services.common.territories import Registry

router = APIRouter(prefix="/api/v1", tags=["standings"])


@router.get("/categories", responses=schemas.responses(schemas.CategoryList))
async def list_categories() -> JSON:
    """The eight categories, their labels and the size of their published list."""
    return JSON(
        {
            "categories": [
                {"id": c.id, "label": c.label, "published_size": c.published_size}
                for c in CATEGORIES
            ]
        }
    )


def check_category(category: str) -> str:
    """404 with the valid ids on an unknown category."""
    if category not in CATEGORIES_BY_ID:
        raise ApiError(
            404,
            "unknown_category",
            f"unknown category {category!r}; valid: {', '.join(CATEGORIES_BY_ID)}",
        )
    return category


def check_filters(registry: Registry, region: str | None, departement: str | None) -> None:
    """422 on a filter code that names no région/département, or on both filters at once."""
    if region is not None and departement is not None:
        raise ApiError(422, "invalid_parameter", "use either region or departement, not both")
    if region is not None and region not in registry.region_codes():
        raise ApiError(422, "invalid_parameter", f"region: no région with code {region!r}")
    if departement is not None and departement not in registry.departement_codes():
        raise ApiError(
            422, "invalid_parameter", f"departement: no département with code {departement!r}"
        )


def view_items(scored: ScoredEntries, page: StandingsPage, offset: int) -> list[dict[str, Any]]:
    """The items of a scorer-view page (rank = position in the filtered list)."""
    return [scored.item(row, position) for position, row in enumerate(page.rows, start=offset + 1)]


def etag_of(raw: bytes) -> str:
    """A strong ETag of a body."""
    return '"' + hashlib.blake2b(raw, digest_size=12).hexdigest() + '"'


def etagged(request: Request, body: dict[str, Any], cache_control: str = "no-cache") -> Response:
    """Answer with a strong ETag of the body; 304 when the client already has it."""
    raw = orjson.dumps(body)
    return etagged_bytes(request, raw, etag_of(raw), cache_control)


def etagged_bytes(
    request: Request, raw: bytes, etag: str, cache_control: str = "no-cache"
) -> Response:
    """A JSON body already rendered, with its ETag; 304 when the client already has it."""
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if etag in _if_none_match(request):
        return Response(status_code=304, headers=headers)
    return Response(raw, media_type="application/json", headers=headers)


def _if_none_match(request: Request) -> list[str]:
    header = request.headers.get("if-none-match")
    if not header:
        return []
    if header.strip() == "*":
        return ["*"]
    return [tag.strip().removeprefix("W/") for tag in header.split(",")]


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


@router.get(
    "/standings/{category}",
    responses=schemas.responses(schemas.Standings, 404, 422, etag=True),
    openapi_extra={"parameters": LIST_PARAMETERS},
)
async def current_standings(request: Request, category: CategoryId) -> Response:
    """Live standings of a category: score descending, ties by id; filters by INSEE code.

    `rank` is the position in the (filtered) list, `national_rank` in the whole category;
    `movement` counts places gained since the latest published edition (`movement_since`).
    `rank_changes_seq` is the category's last rank-change event when this was read: follow
    the stream from there (`after_seq`) to miss nothing.
    """
    # The hottest route: app state read directly and the query parsed by hand (no
    # per-request dependency resolution; see services/api/params.py).
    state = request.app.state
    check_category(category)
    query = parse_list_query(request.query_params)
    limit, offset, region, departement = query.limit, query.offset, query.region, query.departement
    check_filters(state.registry, region, departement)
    repository: StandingsRepository = state.repository
    scored: ScoredEntries = state.scored

    key = ("standings", category, offset, limit, region, departement)
    bodies: RenderedBodies = state.bodies

    async def read() -> tuple[bytes, str]:
        reply = await repository.view_reply(
            category, None, offset=offset, limit=limit, region=region, departement=departement
        )
        rendered = bodies.get(key, reply)
        if rendered is None:
            raw = standings_json(scored, category, reply.page(), limit, offset)
            rendered = bodies.put(key, reply, raw, etag_of(raw))
            VIEW_READS.labels("yes").inc()
        else:
            VIEW_READS.labels("no").inc()
        return rendered

    if state.options.coalesce_reads:
        coalescer: ReadCoalescer[tuple[bytes, str]] = state.coalescer
        raw, etag = await coalescer.run(key, read)
    else:
        raw, etag = await read()
    return etagged_bytes(request, raw, etag)
