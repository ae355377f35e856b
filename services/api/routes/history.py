"""`GET /api/v1/territories/{id}/history`: a territory's daily points and their ranks."""

from __future__ import annotations

from fastapi import APIRouter

from services.api import schemas
from services.api.bodies import history_body
from services.api.deps import HistoryDep, RegistryDep
from services.api.params import TerritoryId, find_territory
from services.api.responses import JSON

router = APIRouter(prefix="/api/v1", tags=["territories"])


@router.get(
    "/territories/{territory_id}/history",
    responses=schemas.responses(schemas.DailyHistory, 404),
)
async def territory_history(
    territory_id: TerritoryId, registry: RegistryDep, history: HistoryDep
) -> JSON:
    """The territory's point for each Europe/Paris day (its last `ok` snapshot of the day:
    score, followers, posts in the window) over the ISO weeks holding the last 90 days, then
    one point per ISO week (the week's last) for two years; each with its rank among the
    category's points of that day (or week), computed when read."""
    territory = find_territory(registry, territory_id)
    return JSON(history_body(await history.read(territory)))
