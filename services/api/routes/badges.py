"""`GET /badges/{id}.svg`: the badge a territory shows on its own site (services/api/badge.py),
with its rank in the latest published edition of its category, or its live rank. Cacheable
for an hour by anyone (`Cache-Control: public, max-age=3600`) with a strong ETag (304 when the
client already has it). An unknown territory answers a 404 JSON error."""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Request, Response

from services.api.badge import badge_facts, badge_svg
from services.api.deps import ReadersDep, RedisDep, RegistryDep
from services.api.errors import ApiError, error_response
from services.api.etag import etag_of, etagged_bytes
from services.api.params import find_territory
from services.api.read.badge import badge_ranks

router = APIRouter(include_in_schema=False)

CACHE_CONTROL: Final = "public, max-age=3600"
SVG_MEDIA_TYPE: Final = "image/svg+xml"


@router.get("/badges/{territory_id}.svg")
async def badge(
    request: Request, territory_id: str, redis: RedisDep, readers: ReadersDep, registry: RegistryDep
) -> Response:
    """The territory's badge, an accessible SVG image."""
    try:
        territory = find_territory(registry, territory_id)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    ranks = await badge_ranks(redis, readers.rk, territory)
    facts = badge_facts(
        territory.name,
        territory.category,
        edition=ranks.edition,
        edition_rank=ranks.edition_rank,
        live_rank=ranks.live_rank,
    )
    raw = badge_svg(facts)
    return etagged_bytes(request, raw, etag_of(raw), CACHE_CONTROL, media_type=SVG_MEDIA_TYPE)
