"""`GET /api/v1/dead-links`: every account judged dead (the Graph API could not see it at two
consecutive snapshots), with the territories it serves."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.api import schemas
from services.api.deps import ReadersDep, RedisDep, RegistryDep
from services.api.params import Limit, Offset, check_category
from services.api.read.links import dead_links as read_dead_links
from services.api.responses import JSON

router = APIRouter(prefix="/api/v1", tags=["dead links"])


@router.get(
    "/dead-links",
    summary="Accounts the Instagram API cannot see (dead links)",
    responses=schemas.responses(schemas.DeadLinks, 404),
)
async def dead_links(
    redis: RedisDep,
    readers: ReadersDep,
    registry: RegistryDep,
    category: Annotated[
        str | None, Query(description="Only accounts serving a territory of this category.")
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> JSON:
    """Accounts the Instagram Graph API could not see at two consecutive snapshots.

    Status `dead` (two consecutive `not_found`) means the API cannot see the account: deleted,
    renamed, private, or not a professional (Business or Creator) account; not necessarily
    gone. The longest first (`since`), then by handle. The index holds at most one entry per
    account, so a read is bounded by the registry.
    """
    if category is not None:
        check_category(category)
    items: list[dict[str, Any]] = []
    for link in await read_dead_links(redis, readers.rk):
        territories = [
            {"id": tid, "name": registry[tid].name, "category": registry[tid].category}
            for tid in link.territories
            if tid in registry
        ]
        if category is not None and not any(t["category"] == category for t in territories):
            continue
        items.append(
            {
                "platform": link.platform,
                "handle": link.handle,
                "since": link.since,
                "territories": territories,
            }
        )
    items.sort(key=lambda item: (item["since"] or "", item["handle"]))
    return JSON(
        {
            "total": len(items),
            "limit": limit,
            "offset": offset,
            "items": items[offset : offset + limit],
        }
    )
