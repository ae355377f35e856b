"""`GET /api/v1/territories/{id}/history`: a territory's daily points and their ranks (JSON,
or CSV with `?format=csv` or `Accept: text/csv`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from services.api import csv_export, schemas
from services.api.bodies import history_body
from services.api.deps import HistoryDep, RegistryDep
from services.api.params import TerritoryId, find_territory

router = APIRouter(prefix="/api/v1", tags=["territories"])


@router.get(
    "/territories/{territory_id}/history",
    responses=csv_export.with_csv(schemas.responses(schemas.DailyHistory, 404, etag=True)),
    openapi_extra={"parameters": [csv_export.FORMAT_PARAMETER]},
)
async def territory_history(
    request: Request, territory_id: TerritoryId, registry: RegistryDep, history: HistoryDep
) -> Response:
    """The territory's point for each Europe/Paris day (its last `ok` snapshot of the day:
    score, followers, posts in the window) over the ISO weeks holding the last 90 days, then
    one point per ISO week (the week's last) for two years; each with its rank among the
    category's points of that day (or week), computed when read."""
    fmt = csv_export.wanted_format(request)
    territory = find_territory(registry, territory_id)
    body = history_body(await history.read(territory))
    return csv_export.respond(request, body, csv_export.HISTORY, fmt=fmt)
