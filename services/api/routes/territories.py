"""`GET /api/v1/territories/{id}`: ranks, breakdown, link status and history per edition."""

from __future__ import annotations

from fastapi import APIRouter

from services.api import schemas
from services.api.deps import RegistryDep, TerritoriesDep
from services.api.params import TerritoryId, find_territory
from services.api.responses import JSON

router = APIRouter(prefix="/api/v1", tags=["territories"])


@router.get(
    "/territories/{territory_id}",
    responses=schemas.responses(schemas.TerritoryDetail, 404),
)
async def territory_detail(
    territory_id: TerritoryId, registry: RegistryDep, territories: TerritoriesDep
) -> JSON:
    """Where a territory ranks now (nationally, in its régions and départements), its
    five-indicator breakdown (value, points, weight), its account and link status, and its
    rank, score and followers in each published edition."""
    territory = find_territory(registry, territory_id)
    return JSON(await territories.detail(territory))
