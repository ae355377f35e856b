"""The standings views: compare-and-set writes of entries, the territories' account links
(whose changes remove entries), the inactivity sweep, the months with edition entries, and the
static geography the filters intersect with."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from services.common.contracts import CATEGORY_IDS
from services.common.territories import Registry
from services.common.view.keys import ViewKeys
from services.common.view.scripts import scorer as scripts
from services.common.view.values import AccountLink
from services.scorer.store.summaries import texts

SCRIPT_ENTRIES = 2_000


@dataclass(frozen=True, slots=True)
class EntryWrite:
    """One territory's entry for one view, ready for the compare-and-set script."""

    territory_id: str
    version: bytes
    epoch: int
    score: float
    entry: bytes  # services.common.view.entries.encode_entry
    link: bytes  # the account link the entry carries (AccountLink.encode)


class ViewStore:
    """Atomic, idempotent writes of the standings views."""

    def __init__(self, redis: Redis, rk: ViewKeys) -> None:
        self.redis = redis
        self.rk = rk
        self._apply = scripts.APPLY_ENTRIES.bind(redis)
        self._set_links = scripts.SET_LINKS.bind(redis)
        self._evict = scripts.EVICT_INACTIVE.bind(redis)

    async def apply_entries(
        self,
        category: str,
        edition: str | None,
        writes: Sequence[EntryWrite],
        *,
        cutoff: int | None,
    ) -> list[tuple[str, str]]:
        """Compare-and-set entries into one view, each only if its territory's account link
        is the entry's; returns (id, ranked|inactive) written."""
        if not writes:
            return []
        if edition is not None:
            await self.redis.sadd(self.rk.edition_months_key(category), edition)
        written: list[tuple[str, str]] = []
        keys = scripts.view_keys(self.rk, category, edition)
        # A script per few thousand entries: a rebuild's whole category never holds Redis
        # for long (each entry's compare-and-set is atomic on its own).
        for start in range(0, len(writes), SCRIPT_ENTRIES):
            args: list[str | bytes | int | float] = ["" if cutoff is None else cutoff]
            for w in writes[start : start + SCRIPT_ENTRIES]:
                args += [w.territory_id, w.version, w.epoch, -w.score, w.entry, w.link]
            applied = await self._apply(keys, args)
            if applied.frozen:
                return written
            written += applied.written
        return written

    async def set_links(
        self, category: str, links: Mapping[str, tuple[AccountLink, int]]
    ) -> list[tuple[str, bytes]]:
        """Record territories' account links (each with its record's version) in the category's
        slot; a territory whose link changes loses its entries in the current view and every
        unpublished month at once. Returns the (id, entry) removed from the current view."""
        if not links:
            return []
        args: list[str | bytes | int | float] = []
        for tid, (link, version) in links.items():
            args += [tid, version.to_bytes(8, "big"), link.encode()]
        months = sorted(await self.edition_months(category))
        while True:
            done = await self._set_links(
                scripts.links_keys(self.rk, category, months), [len(months), *months, *args]
            )
            if not done.undeclared:
                return done.removed
            months = sorted({*months, *done.undeclared})  # a month appeared meanwhile

    async def entries(
        self, category: str, edition: str | None, ids: list[str]
    ) -> list[bytes | None]:
        """The stored entries of territories in one view (None where absent)."""
        if not ids:
            return []
        found = await self.redis.hmget(
            self.rk.entry_key(self.rk.view_prefix(category, edition)), ids
        )
        return cast(list[bytes | None], found)

    async def evict_inactive(self, cutoff: int, as_of: str) -> dict[str, list[str]]:
        """Unrank, in every category, the territories older than the cutoff."""
        async with self.redis.pipeline(transaction=False) as pipe:  # one round trip
            for category in CATEGORY_IDS:
                await self._evict.queue(
                    pipe, scripts.evict_keys(self.rk, category), [cutoff, as_of]
                )
            replies = await pipe.execute()
        evicted = {
            category: self._evict.decode(reply)
            for category, reply in zip(CATEGORY_IDS, replies, strict=True)
        }
        return {category: ids for category, ids in evicted.items() if ids}

    async def edition_months(self, category: str) -> set[str]:
        """Months for which this category has edition entries."""
        return texts(await self.redis.smembers(self.rk.edition_months_key(category)))

    async def ensure_geo(self, registry: Registry, fingerprint: str) -> bool:
        """Write the static région/département membership sets once per registry version."""
        if await self.redis.get(self.rk.GEO_READY_KEY) == fingerprint.encode():
            return False
        async with self.redis.pipeline(transaction=False) as pipe:
            for category in CATEGORY_IDS:
                groups: dict[str, list[str]] = {}
                for t in registry.by_category(category):
                    for code in t.regions:
                        groups.setdefault(self.rk.geo_key(category, "reg", code), []).append(t.id)
                    for code in t.departements:
                        groups.setdefault(self.rk.geo_key(category, "dep", code), []).append(t.id)
                for key, ids in groups.items():
                    pipe.delete(key)
                    pipe.sadd(key, *ids)
            pipe.set(self.rk.GEO_READY_KEY, fingerprint)
            await pipe.execute()
        return True


def geo_fingerprint(registry: Registry) -> str:
    """A short digest of the registry's membership: the geo sets are rebuilt when it changes."""
    digest = hashlib.sha256()
    for t in registry.all():
        digest.update(f"{t.id}:{','.join(t.regions)}:{','.join(t.departements)};".encode())
    return digest.hexdigest()[:16]
