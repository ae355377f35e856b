"""`GET /api/v1/categories` and `GET /api/v1/standings/{category}`."""

from __future__ import annotations

import hashlib
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request, Response

from services.api.deps import RegistryDep, RepositoryDep
from services.api.errors import ApiError
from services.api.responses import JSON
from services.common.contracts import CATEGORIES, CATEGORIES_BY_ID
from services.common.territories import Registry

router = APIRouter(prefix="/api/v1", tags=["standings"])

MAX_LIMIT = 500
MAX_OFFSET = 100_000

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (1–500).")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")]
Code = Annotated[
    str | None,
    Query(min_length=1, max_length=3, pattern=r"^[0-9AB]{1,3}$", description="INSEE code."),
]


@router.get("/categories")
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


async def standings_body(
    repository: RepositoryDep,
    registry: Registry,
    category: str,
    edition: str | None,
    *,
    limit: int,
    offset: int,
    region: str | None,
    departement: str | None,
) -> dict:
    """The standings shape of ARCHITECTURE for one view."""
    page = await repository.page(
        category, edition, offset=offset, limit=limit, region=region, departement=departement
    )
    items = []
    for position, row in enumerate(page.rows, start=offset + 1):
        territory = registry[row.territory_id]
        entry = row.entry
        score = entry.score(territory.population)
        items.append(
            {
                "rank": position,
                "national_rank": row.national_rank,
                "id": territory.id,
                "code": territory.code,
                "name": territory.name,
                "score": score.score,
                "handle": entry.handle,
                "simulated": entry.simulated,
                "link_status": row.link_status,
                "observed_at": entry.summary.observed_at,
                "movement": None,
                "likes_hidden": entry.summary.likes_hidden,
                "indicators": score.indicators_dict(),
            }
        )
    return {
        "category": category,
        "edition": edition,
        "as_of": page.as_of,
        "total": page.total,
        "limit": limit,
        "offset": offset,
        "items": items,
    }


def etagged(request: Request, body: dict) -> Response:
    """Answer with a strong ETag of the body; 304 when the client already has it."""
    raw = orjson.dumps(body)
    etag = '"' + hashlib.blake2b(raw, digest_size=12).hexdigest() + '"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(raw, media_type="application/json", headers={"ETag": etag})


@router.get("/standings/{category}")
async def current_standings(
    request: Request,
    category: str,
    repository: RepositoryDep,
    registry: RegistryDep,
    limit: Limit = 50,
    offset: Offset = 0,
    region: Code = None,
    departement: Code = None,
) -> Response:
    """Live standings of a category: score descending, ties by id; filters by code."""
    check_category(category)
    check_filters(registry, region, departement)
    body = await standings_body(
        repository,
        registry,
        category,
        None,
        limit=limit,
        offset=offset,
        region=region,
        departement=departement,
    )
    return etagged(request, body)
