"""Which editions exist and where each stands: published (with its summary) or provisional
(a month with data, not published yet), per category.

Cross-category reads (ARCHITECTURE allows it for edition status): the `{meta}` facts in one
pipeline, then one small read per category.
"""

from __future__ import annotations

from typing import Any, cast

from redis.asyncio import Redis

from services.common.clock import format_timestamp, from_epoch
from services.common.contracts import CATEGORIES, CATEGORY_IDS
from services.common.editions import publishable_at
from services.common.view.keys import ViewKeys
from services.common.view.values import EditionRecord, decode_editions, decode_watermark


def _text(value: Any) -> str | None:
    return None if value is None else cast(bytes, value).decode()


class EditionIndex:
    """Reads the editions index (the publisher's) and the months with data (the scorer's)."""

    def __init__(self, redis: Redis, rk: ViewKeys, *, grace_hours: float) -> None:
        self.redis = redis
        self.rk = rk
        self.grace_hours = grace_hours

    async def _global(self) -> tuple[dict[str, EditionRecord], set[str], str | None]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.rk.EDITIONS_KEY)
            pipe.smembers(self.rk.MONTHS_KEY)
            pipe.zrange(self.rk.WATERMARK_KEY, 0, -1, withscores=True)
            published_raw, months_raw, watermark_raw = await pipe.execute()
        published = decode_editions(published_raw)
        months = {cast(bytes, m).decode() for m in months_raw}
        epoch = decode_watermark(watermark_raw)
        watermark = None if epoch is None else from_epoch(epoch)
        return published, months, watermark

    def _publishable_at(self, month: str) -> str:
        return format_timestamp(publishable_at(month, self.grace_hours))

    async def latest_published(self) -> str | None:
        """The latest published month, if any."""
        months = await self.redis.hkeys(self.rk.EDITIONS_KEY)
        return max((cast(bytes, m).decode() for m in months), default=None)

    async def published_months(self) -> list[str]:
        """Published months, latest first."""
        months = await self.redis.hkeys(self.rk.EDITIONS_KEY)
        return sorted((cast(bytes, m).decode() for m in months), reverse=True)

    async def listing(self) -> dict[str, Any]:
        """The body of `GET /api/v1/editions`: every published or provisional month."""
        published, months, watermark = await self._global()
        items = []
        for month in sorted(set(published) | months, reverse=True):
            summary = published.get(month)
            items.append(
                {
                    "edition": month,
                    "status": "published" if summary else "provisional",
                    "published_at": summary.published_at if summary else None,
                    "publishable_at": self._publishable_at(month),
                    "categories": summary.categories if summary else None,
                    "url": f"/api/v1/editions/{month}",
                }
            )
        return {
            "watermark": watermark,
            "latest": max(published, default=None),
            "editions": items,
        }

    async def status(self, month: str) -> dict[str, Any] | None:
        """The body of `GET /api/v1/editions/{month}`; None when the month is unknown."""
        published, months, watermark = await self._global()
        async with self.redis.pipeline(transaction=False) as pipe:
            for category in CATEGORY_IDS:
                pipe.hgetall(self.rk.published_meta_key(category, month))
                pipe.zcard(self.rk.rank_key(self.rk.view_prefix(category, month)))
                pipe.get(self.rk.edition_frozen_key(category, month))
            found = await pipe.execute()
        summary = published.get(month)
        categories = []
        frozen_any = False
        for index, info in enumerate(CATEGORIES):
            meta, provisional, frozen = found[3 * index : 3 * index + 3]
            frozen_any = frozen_any or frozen is not None
            if meta:
                entry = {
                    "category": info.id,
                    "label": info.label,
                    "status": "published",
                    "ranked": int(meta[b"total"]),
                    "parts": int(meta[b"parts"]),
                    "published_at": _text(meta.get(b"published_at")),
                }
            else:
                entry = {
                    "category": info.id,
                    "label": info.label,
                    "status": "frozen" if frozen is not None else "provisional",
                    "ranked": int(provisional),
                    "parts": None,
                    "published_at": None,
                }
            entry["url"] = f"/api/v1/editions/{month}/{info.id}"
            categories.append(entry)
        has_data = month in months or any(c["ranked"] for c in categories)
        if summary is None and not has_data and not frozen_any:
            return None
        if summary is not None:
            status = "published"
        elif frozen_any:
            status = "publishing"  # frozen, not recorded yet: being published (or interrupted)
        else:
            status = "provisional"
        return {
            "edition": month,
            "status": status,
            "published_at": summary.published_at if summary else None,
            "command_id": summary.command_id if summary else None,
            "publishable_at": self._publishable_at(month),
            "watermark": watermark,
            "categories": categories,
        }

    async def exists(self, month: str) -> bool:
        """A month published, or with data in some category."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hexists(self.rk.EDITIONS_KEY, month)
            pipe.sismember(self.rk.MONTHS_KEY, month)
            published, has_data = await pipe.execute()
        return bool(published or has_data)
