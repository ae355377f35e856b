"""Monthly editions: `GET /api/v1/editions`, `GET /api/v1/editions/{YYYY-MM}` (status per
category) and `GET /api/v1/editions/{YYYY-MM}/{category}` (its standings)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from services.api import csv_export, schemas
from services.api.bodies import edition_body
from services.api.deps import EditionsDep, ReadersDep, RegistryDep, RepositoryDep, ScoredDep
from services.api.errors import ApiError
from services.api.params import (
    LIST_PARAMETERS,
    CategoryId,
    Month,
    check_category,
    check_filters,
    parse_list_query,
)
from services.api.responses import JSON

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


@router.get(
    "/editions/{month}/{category}",
    responses=csv_export.with_csv(schemas.responses(schemas.Standings, 400, 404, etag=True)),
    openapi_extra={"parameters": [*LIST_PARAMETERS, csv_export.FORMAT_PARAMETER]},
)
async def edition_standings(
    request: Request,
    month: Month,
    category: CategoryId,
    repository: RepositoryDep,
    registry: RegistryDep,
    scored: ScoredDep,
    editions: EditionsDep,
    readers: ReadersDep,
) -> Response:
    """A month's standings: the published edition (immutable: `movement` against the
    previous edition, `streak`, handle and link status at publication) or, before it is
    published, the provisional ranking of the month (`status: provisional`). `?format=csv`
    (or `Accept: text/csv`): the same rows as CSV."""
    check_category(category)
    query = parse_list_query(request.query_params)
    limit, offset, region, departement = query.limit, query.offset, query.region, query.departement
    check_filters(registry, region, departement)
    fmt = csv_export.wanted_format(request)
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
        readers.accounts, registry, scored, category, month, page, limit=limit, offset=offset
    )
    cache = "public, max-age=300" if page.status == "published" else "no-cache"
    return csv_export.respond(request, body, csv_export.EDITION, cache, fmt)
