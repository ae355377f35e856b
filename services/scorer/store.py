"""The scorer's side of Redis: compare-and-set writes of summaries and standings views."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from services.common.contracts import CATEGORY_IDS
from services.common.methodology import SnapshotSummary
from services.common.standings_entry import (
    decode_account_link,
    decode_month_summaries,
    encode_account_link,
    encode_month_summary,
    month_code,
)
from services.common.territories import Registry
from services.common.view import keys as rk
from services.scorer import lua
from services.scorer.plan import BatchPlan

SCRIPT_ENTRIES = 2_000


@dataclass(frozen=True, slots=True)
class EntryWrite:
    """One territory's entry for one view, ready for the compare-and-set script."""

    territory_id: str
    version: bytes
    epoch: int
    score: float
    entry: bytes  # services.common.standings_entry.encode_entry


@dataclass(frozen=True, slots=True)
class AccountLink:
    """A territory's account as the scorer last applied it from `obs.accounts.v1`."""

    handle: str | None
    simulated: bool


class ScorerStore:
    """Atomic, idempotent writes of the scorer's facts to Redis."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._account_cas = redis.register_script(lua.ACCOUNT_CAS)
        self._apply = redis.register_script(lua.APPLY_ENTRIES)
        self._remove = redis.register_script(lua.REMOVE_ENTRIES)
        self._evict = redis.register_script(lua.EVICT_INACTIVE)
        self._watermark = redis.register_script(lua.ADVANCE_WATERMARK)
        self._mapping_version: int | None = None
        self._mapping: dict[str, AccountLink] = {}

    # --- watermark and frozen months ---------------------------------------------------
    async def advance_watermark(self, epoch: int) -> int:
        """Raise the global watermark to `epoch` if it is newer; return the watermark."""
        return int(await self._watermark(keys=[rk.WATERMARK_KEY], args=[epoch]))

    async def watermark(self) -> int | None:
        """The global watermark (epoch seconds), None before any event."""
        raw = await self.redis.get(rk.WATERMARK_KEY)
        return None if raw is None else int(raw)

    async def frozen_months(self) -> set[str]:
        """Edition months the publisher has frozen (never written by the scorer)."""
        return _texts(await self.redis.smembers(rk.FROZEN_MONTHS_KEY))

    # --- account summaries -------------------------------------------------------------
    async def save_summaries(self, plan: BatchPlan, frozen: Iterable[str] = ()) -> None:
        """Compare-and-set every account summary of the batch, per edition month.

        There is no separate current summary: the latest `ok` snapshot of an account is the
        latest of its newest month (months follow time). Frozen months are dropped from an
        account's summaries unless newest (docs/redis.md)."""
        records: dict[tuple[str, str], list[str | bytes]] = {}
        months = set()
        for (platform, handle, month), summary in plan.monthly.items():
            record = encode_month_summary(month, plan.version(summary), summary)
            records.setdefault((platform, handle), []).append(record)
            months.add(month)
        frozen_codes = b"".join(month_code(month) for month in sorted(frozen))
        # One script call per account, all in one pipeline.
        async with self.redis.pipeline(transaction=False) as pipe:
            for (platform, handle), args in records.items():
                await self._account_cas(
                    keys=[rk.summaries_key(platform, handle)],
                    args=[handle, frozen_codes, *args],
                    client=pipe,
                )
            if months:
                pipe.sadd(rk.MONTHS_KEY, *sorted(months))
            await pipe.execute()

    async def account_summaries(
        self, platform: str, handles: Iterable[str]
    ) -> dict[str, dict[str | None, SnapshotSummary]]:
        """Every stored summary of these accounts: handle -> {None (current) | month: summary}."""
        handles = sorted(handles)
        if not handles:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for handle in handles:
                pipe.hget(rk.summaries_key(platform, handle), handle)
            replies = await pipe.execute()
        out: dict[str, dict[str | None, SnapshotSummary]] = {}
        for handle, raw in zip(handles, replies, strict=True):
            held: dict[str | None, SnapshotSummary] = {}
            if raw:
                months = decode_month_summaries(cast(bytes, raw))
                held.update(months)
                held[None] = months[max(months)]
            out[handle] = held
        return out

    async def months(self) -> set[str]:
        """Every month in which some account has an `ok` snapshot."""
        return _texts(await self.redis.smembers(rk.MONTHS_KEY))

    # --- standings views -----------------------------------------------------------------
    async def apply_entries(
        self,
        category: str,
        edition: str | None,
        writes: Sequence[EntryWrite],
        *,
        cutoff: int | None,
        force: bool = False,
    ) -> list[tuple[str, str]]:
        """Compare-and-set entries into one view; returns (id, ranked|inactive) written."""
        if not writes:
            return []
        if edition is not None:
            await self.redis.sadd(rk.edition_months_key(category), edition)
        written: list[tuple[str, str]] = []
        # A script per few thousand entries: a rebuild's whole category never holds Redis
        # for long (each entry's compare-and-set is atomic on its own).
        for start in range(0, len(writes), SCRIPT_ENTRIES):
            args: list[str | bytes | int | float] = ["" if cutoff is None else cutoff, int(force)]
            for w in writes[start : start + SCRIPT_ENTRIES]:
                args += [w.territory_id, w.version, w.epoch, -w.score, w.entry]
            flat = await self._apply(keys=_view_keys(category, edition), args=args)
            if flat == [b"frozen"]:
                return written
            written += [(flat[i].decode(), flat[i + 1].decode()) for i in range(0, len(flat), 2)]
        return written

    async def remove_entries(
        self, category: str, edition: str | None, ids: Iterable[str]
    ) -> list[tuple[str, bytes]]:
        """Drop territories from one view entirely; returns the (id, entry JSON) removed."""
        ids = list(ids)
        if not ids:
            return []
        flat = await self._remove(keys=_view_keys(category, edition), args=ids)
        return [(flat[i].decode(), flat[i + 1]) for i in range(0, len(flat), 2)]

    async def entries(
        self, category: str, edition: str | None, ids: list[str]
    ) -> list[bytes | None]:
        """The stored entry JSON of territories in one view (None where absent)."""
        if not ids:
            return []
        found = await self.redis.hmget(rk.entry_key(rk.view_prefix(category, edition)), ids)
        return cast(list[bytes | None], found)

    async def evict_inactive(self, cutoff: int, as_of: str) -> dict[str, list[str]]:
        """Unrank, in every category, the territories older than the cutoff."""
        async with self.redis.pipeline(transaction=False) as pipe:  # one round trip
            for category in CATEGORY_IDS:
                prefix = rk.view_prefix(category, None)
                keys = [rk.rank_key(prefix), rk.entry_key(prefix), rk.meta_key(category)]
                await self._evict(keys=keys, args=[cutoff, as_of], client=pipe)
            replies = await pipe.execute()
        return {
            category: [i.decode() for i in ids]
            for category, ids in zip(CATEGORY_IDS, replies, strict=True)
            if ids
        }

    async def edition_months(self, category: str) -> set[str]:
        """Months for which this category has edition entries."""
        return _texts(await self.redis.smembers(rk.edition_months_key(category)))

    # --- account mapping -----------------------------------------------------------------
    async def set_accounts(self, links: dict[str, AccountLink]) -> None:
        """Record many territories' accounts at once (no re-derivation: nothing scored yet)."""
        if not links:
            return
        values: dict[str | bytes | bytearray | memoryview | int | float, Any] = {
            tid: encode_account_link(link.handle, link.simulated) for tid, link in links.items()
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(rk.ACCOUNTS_KEY, mapping=values)
            pipe.incr(rk.ACCOUNTS_VERSION_KEY)
            await pipe.execute()

    async def mapping(self) -> dict[str, AccountLink]:
        """Every territory's account, re-read only when the mapping changed."""
        version = int(await self.redis.get(rk.ACCOUNTS_VERSION_KEY) or 0)
        if version != self._mapping_version:
            raw = cast(dict[bytes, bytes], await self.redis.hgetall(rk.ACCOUNTS_KEY))
            self._mapping = {k.decode(): _link(v) for k, v in raw.items()}
            self._mapping_version = version
        return self._mapping

    # --- geography -------------------------------------------------------------------------
    async def ensure_geo(self, registry: Registry, fingerprint: str) -> bool:
        """Write the static région/département membership sets once per registry version."""
        if await self.redis.get(rk.GEO_READY_KEY) == fingerprint.encode():
            return False
        async with self.redis.pipeline(transaction=False) as pipe:
            for category in CATEGORY_IDS:
                groups: dict[str, list[str]] = {}
                for t in registry.by_category(category):
                    for code in t.regions:
                        groups.setdefault(rk.geo_key(category, "reg", code), []).append(t.id)
                    for code in t.departements:
                        groups.setdefault(rk.geo_key(category, "dep", code), []).append(t.id)
                for key, ids in groups.items():
                    pipe.delete(key)
                    pipe.sadd(key, *ids)
            pipe.set(rk.GEO_READY_KEY, fingerprint)
            await pipe.execute()
        return True


def geo_fingerprint(registry: Registry) -> str:
    """A short digest of the registry's membership: the geo sets are rebuilt when it changes."""
    digest = hashlib.sha256()
    for t in registry.all():
        digest.update(f"{t.id}:{','.join(t.regions)}:{','.join(t.departements)};".encode())
    return digest.hexdigest()[:16]


def _texts(members: Iterable[bytes | str]) -> set[str]:
    return {m.decode() if isinstance(m, bytes) else m for m in members}


def _view_keys(category: str, edition: str | None) -> list[str]:
    prefix = rk.view_prefix(category, edition)
    frozen = rk.edition_frozen_key(category, edition) if edition else f"{prefix}:never-frozen"
    return [rk.rank_key(prefix), rk.entry_key(prefix), rk.meta_key(category), frozen]


def _link(raw: bytes) -> AccountLink:
    handle, simulated = decode_account_link(raw)
    return AccountLink(handle=handle, simulated=simulated)
