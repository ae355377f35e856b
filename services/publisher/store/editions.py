"""Editions: the months the publisher froze and published, their published copies
(`pub:M:*`), the scorer's frozen month views it reads and drops, and the editions index."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import orjson
from redis.asyncio import Redis

from services.common.clock import from_epoch
from services.common.contracts import CATEGORY_IDS
from services.common.editions import PreviousEdition
from services.common.view.keys import ViewKeys
from services.common.view.scripts import publisher as scripts
from services.common.view.scripts import text
from services.common.view.scripts.publisher import ViewRow
from services.common.view.values import EditionRecord, decode_editions
from services.common.view.watermark import read_watermark
from services.publisher.store.fence import FencedWriter


class EditionStore:
    """Reads and idempotent writes of editions."""

    def __init__(self, redis: Redis, rk: ViewKeys, fence: FencedWriter) -> None:
        self.redis = redis
        self.rk = rk
        self.fence = fence
        self._read_view = scripts.READ_EDITION_VIEW.bind(redis)

    async def watermark(self) -> str | None:
        """The scorer's global watermark as a timestamp (None while fewer than K accounts are
        known: services/common/watermark.py)."""
        epoch = await read_watermark(self.redis, self.rk)
        return None if epoch is None else from_epoch(epoch)

    async def published(self) -> dict[str, EditionRecord]:
        """Published months -> their record in the editions index."""
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(self.rk.EDITIONS_KEY))
        return decode_editions(raw)

    async def months_with_data(self) -> set[str]:
        """Months in which some category's edition view ranks at least one territory."""
        candidates: dict[str, list[str]] = {}
        for category in CATEGORY_IDS:
            for month in await self.redis.smembers(self.rk.edition_months_key(category)):
                candidates.setdefault(cast(bytes, month).decode(), []).append(category)
        months = set()
        for month, categories in candidates.items():
            for category in categories:
                if await self.redis.zcard(self.rk.rank_key(self.rk.view_prefix(category, month))):
                    months.add(month)
                    break
        return months

    async def freeze(self, edition: str, published_at: str) -> str:
        """Freeze a month in every category (the scorer's scripts refuse to write it from
        now on) and return its `published_at`: the one of an earlier, interrupted attempt if
        there was one, so that re-publishing produces the very same parts."""
        keys = [self.rk.edition_frozen_key(category, edition) for category in CATEGORY_IDS]
        for key in keys:
            existing = text(await self.redis.get(key))
            if existing and existing[:1].isdigit() and existing.endswith("Z"):
                published_at = existing
                break
        await self.fence.run(
            *(
                self.fence.batch(self.rk.category_tag(category)).add("SET", key, published_at)
                for category, key in zip(CATEGORY_IDS, keys, strict=True)
            ),
            self.fence.batch(self.rk.META_TAG).add("SADD", self.rk.FROZEN_MONTHS_KEY, edition),
        )
        return published_at

    async def drop_edition_views(self, editions: Iterable[str]) -> None:
        """Delete the scorer's frozen views of published months: once an edition is recorded
        it is served from the publisher's copy (`pub:M:*`), and the view would only hold
        ~255 bytes per ranked territory per month for nothing. The frozen markers stay (the
        scorer's scripts check them), so the view is never written again."""
        editions = list(editions)
        if not editions:
            return
        batches = []
        for category in CATEGORY_IDS:
            batch = self.fence.batch(self.rk.category_tag(category))
            for edition in editions:
                prefix = self.rk.view_prefix(category, edition)
                batch.add("UNLINK", self.rk.rank_key(prefix))
                batch.add("UNLINK", self.rk.entry_key(prefix))
                batch.add("SREM", self.rk.edition_months_key(category), edition)
            batches.append(batch)
        await self.fence.run(*batches)

    async def read_edition_view(self, category: str, edition: str) -> list[ViewRow]:
        """The scorer's (frozen) view of a month in rank order, with each territory's link
        status now, in one read."""
        return await self._read_view(scripts.edition_view_keys(self.rk, category, edition))

    async def previous_edition(self, category: str, edition: str) -> PreviousEdition:
        """A published edition's ranks and its leader's streak."""
        ranked = cast(
            list[tuple[bytes, float]],
            await self.redis.zrange(
                self.rk.published_rank_key(category, edition), 0, -1, withscores=True
            ),
        )
        ranks = {tid.decode(): int(rank) for tid, rank in ranked}
        leader = next((tid for tid, rank in ranks.items() if rank == 1), None)
        streak = 0
        if leader is not None:
            raw = await self.redis.hget(self.rk.published_entry_key(category, edition), leader)
            streak = 0 if raw is None else int(orjson.loads(raw)["streak"])
        return PreviousEdition(ranks=ranks, leader_streak=streak)

    async def write_published(
        self,
        category: str,
        edition: str,
        *,
        published_at: str,
        parts: int,
        standings: Sequence[Mapping[str, Any]],
    ) -> None:
        """Store one category's published edition; it becomes the latest if it is newer."""
        latest = text(await self.redis.get(self.rk.latest_published_edition_key(category)))
        is_latest = latest is None or edition >= latest
        rank_key = self.rk.published_rank_key(category, edition)
        entry_key = self.rk.published_entry_key(category, edition)
        ranks = {entry["id"]: entry["rank"] for entry in standings}
        # One fenced script: atomic, as the MULTI it replaces.
        batch = self.fence.batch(self.rk.category_tag(category))
        batch.add("DEL", rank_key)
        batch.add("DEL", entry_key)
        for chunk in _chunks(list(standings), 1000):
            batch.add("ZADD", rank_key, *(v for e in chunk for v in (e["rank"], e["id"])))
            batch.add("HSET", entry_key, *(v for e in chunk for v in (e["id"], orjson.dumps(e))))
        batch.add(
            "HSET",
            self.rk.published_meta_key(category, edition),
            *("published_at", published_at, "parts", parts, "total", len(standings)),
        )
        if is_latest:
            latest_rank = self.rk.latest_published_rank_key(category)
            batch.add("DEL", latest_rank)
            for chunk_items in _chunks(list(ranks.items()), 1000):
                batch.add(
                    "ZADD", latest_rank, *(v for tid, rank in chunk_items for v in (rank, tid))
                )
            batch.add("SET", self.rk.latest_published_edition_key(category), edition)
        await self.fence.run(batch)

    async def record_published(self, edition: str, record: EditionRecord) -> None:
        """The last step of a publication: the month is published from now on."""
        batch = self.fence.batch(self.rk.META_TAG)
        batch.add("HSET", self.rk.EDITIONS_KEY, edition, record.encode())
        batch.add("SADD", self.rk.FROZEN_MONTHS_KEY, edition)
        await self.fence.run(batch)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
