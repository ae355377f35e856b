"""`GET /api/v1/categories` and `GET /api/v1/standings/{category}` (live standings)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from services.api import csv_export, schemas
from services.api.bodies import standings_json
from services.api.coalesce import ReadCoalescer, RenderedBodies
from services.api.etag import etag_of
from services.api.items import ScoredEntries
from services.api.metrics import VIEW_READS
from services.api.params import (
    LIST_PARAMETERS,
    CategoryId,
    check_category,
    check_filters,
    parse_list_query,
)
from services.api.read.view import LiveView
from services.api.responses import JSON
from services.common.contracts import CATEGORIES

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


@router.get(
    "/standings/{category}",
    responses=csv_export.with_csv(schemas.responses(schemas.Standings, 404, 422, etag=True)),
    openapi_extra={"parameters": [*LIST_PARAMETERS, csv_export.FORMAT_PARAMETER]},
)
async def current_standings(request: Request, category: CategoryId) -> Response:
    """Live standings of a category: score descending, ties by id; filters by INSEE code.

    `rank` is the position in the (filtered) list, `national_rank` in the whole category;
    `movement` counts places gained since the latest published edition (`movement_since`).
    `rank_changes_seq` is the category's last rank-change event when this was read: follow
    the stream from there (`after_seq`) to miss nothing. `?format=csv` (or `Accept:
    text/csv`): the same rows as CSV.
    """
    # The hottest route: app state read directly and the query parsed by hand (no
    # per-request dependency resolution; see services/api/params.py).
    state = request.app.state
    check_category(category)
    query = parse_list_query(request.query_params)
    limit, offset, region, departement = query.limit, query.offset, query.region, query.departement
    check_filters(state.registry, region, departement)
    fmt = csv_export.wanted_format(request)
    view: LiveView = state.view
    scored: ScoredEntries = state.scored

    key = ("standings", category, offset, limit, region, departement)
    bodies: RenderedBodies = state.bodies

    async def read() -> tuple[bytes, str]:
        reply = await (await view.readers()).repository.view_reply(
            category, None, offset=offset, limit=limit, region=region, departement=departement
        )
        if reply.missing and await view.refresh():  # nothing there: a rebuild switched?
            reply = await (await view.readers()).repository.view_reply(
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
    return csv_export.respond_rendered(request, raw, etag, csv_export.STANDINGS, fmt)
