"""Account summaries (compare-and-set per edition month), the months with data, the
watermark and the months the publisher froze."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from redis.asyncio import Redis

from services.common.methodology import SnapshotSummary
from services.common.view.entries import decode_month_summaries, encode_month_summary, month_code
from services.common.view.keys import ViewKeys
from services.common.view.scripts import scorer as scripts
from services.common.view.watermark import read_watermark
from services.common.watermark import K, NewestAccounts
from services.scorer.plan import BatchPlan


class SummaryStore:
    """The scorer's facts about accounts."""

    def __init__(self, redis: Redis, rk: ViewKeys) -> None:
        self.redis = redis
        self.rk = rk
        self._account_cas = scripts.ACCOUNT_CAS.bind(redis)
        self._watermark = scripts.ADVANCE_WATERMARK.bind(redis)

    # --- watermark and frozen months ---------------------------------------------------
    async def advance_watermark(self, newest: NewestAccounts) -> int | None:
        """Add a batch's K newest accounts to the global set; return the watermark after it
        (the K-th newest account time; None while fewer than K accounts are known)."""
        args: list[str | int] = [K]
        for account, epoch in newest.items():
            args += [account, epoch]
        return await self._watermark(scripts.watermark_keys(self.rk), args)

    async def watermark(self) -> int | None:
        """The global watermark (epoch seconds), None while fewer than K accounts are known."""
        return await read_watermark(self.redis, self.rk)

    async def frozen_months(self) -> set[str]:
        """Edition months the publisher has frozen (never written by the scorer)."""
        return texts(await self.redis.smembers(self.rk.FROZEN_MONTHS_KEY))

    # --- account summaries -------------------------------------------------------------
    async def save(self, plan: BatchPlan, frozen: Iterable[str] = ()) -> None:
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
                await self._account_cas.queue(
                    pipe,
                    scripts.summaries_keys(self.rk, platform, handle),
                    [handle, frozen_codes, *args],
                )
            if months:
                pipe.sadd(self.rk.MONTHS_KEY, *sorted(months))
            await pipe.execute()

    async def of_accounts(
        self, platform: str, handles: Iterable[str]
    ) -> dict[str, dict[str | None, SnapshotSummary]]:
        """Every stored summary of these accounts: handle -> {None (current) | month: summary}."""
        by_key: dict[str, list[str]] = {}
        for handle in sorted(handles):
            by_key.setdefault(self.rk.summaries_key(platform, handle), []).append(handle)
        if not by_key:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, fields in by_key.items():
                pipe.hmget(key, fields)  # one command per bucket of accounts
            replies = await pipe.execute()
        out: dict[str, dict[str | None, SnapshotSummary]] = {}
        pairs = (
            (handle, raw)
            for fields, values in zip(by_key.values(), replies, strict=True)
            for handle, raw in zip(fields, values, strict=True)
        )
        for handle, raw in pairs:
            held: dict[str | None, SnapshotSummary] = {}
            if raw:
                months = decode_month_summaries(cast(bytes, raw))
                held.update(months)
                held[None] = months[max(months)]
            out[handle] = held
        return out

    async def months(self) -> set[str]:
        """Every month in which some account has an `ok` snapshot."""
        return texts(await self.redis.smembers(self.rk.MONTHS_KEY))


def texts(members: Iterable[bytes | str]) -> set[str]:
    """Set members as text."""
    return {m.decode() if isinstance(m, bytes) else m for m in members}
