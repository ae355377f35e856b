"""`GET /api/v1/territories/{id}`: ranks, breakdown, link status and history per edition."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from services.api import schemas
from services.api.deps import RegistryDep, TerritoriesDep
from services.api.errors import ApiError
from services.api.responses import JSON
from services.common.territories import Registry, Territory

router = APIRouter(prefix="/api/v1", tags=["territories"])

TerritoryId = Annotated[
    str,
    Path(
        description="`{kind}-{code}`: reg-76, dep-32, dep-2A, com-75056, epci-200000172.",
        examples=["dep-32"],
    ),
]


def find_territory(registry: Registry, territory_id: str) -> Territory:
    """The territory, or 404 saying what an id looks like."""
    territory = registry.get(territory_id)
    if territory is None:
        raise ApiError(
            404,
            "unknown_territory",
            f"unknown territory {territory_id!r} (ids look like reg-76, dep-32, dep-2A, "
            "com-75056, epci-200000172)",
        )
    return territory


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
