"""The daily history: compare-and-set writes of territories' points and the rank indexes
(services/common/history.py has the rules; docs/redis.md, "Daily history")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import cast

from redis.asyncio import Redis

from services.common.history import (
    RawPoint,
    Window,
    decode_points,
    decode_raws,
    encode_raw,
    split_series,
    week_of,
)
from services.common.view.keys import ViewKeys
from services.common.view.scripts import scorer as scripts

SCRIPT_POINTS = 2_000
SCRIPT_ACCOUNTS = 500  # accounts per pipeline of ACCOUNT_HISTORY calls
# At most this many index keys deleted per trim call (a window that jumps far, e.g. the first
# watermark after a long replay, is trimmed in several calls).
TRIM_KEYS = 500


@dataclass(frozen=True, slots=True)
class PointWrite:
    """One territory's point for one day, ready for the compare-and-set script."""

    territory_id: str
    ordinal: int
    point: bytes  # services.common.history.encode_point
    day: int
    link: bytes  # the account link the point carries (AccountLink.encode)


class HistoryStore:
    """Atomic, idempotent writes of the daily history."""

    def __init__(self, redis: Redis, rk: ViewKeys) -> None:
        self.redis = redis
        self.rk = rk
        self._apply = scripts.HISTORY_APPLY.bind(redis)
        self._account = scripts.ACCOUNT_HISTORY.bind(redis)
        self._reset = scripts.HISTORY_RESET.bind(redis)
        self._trim = scripts.HISTORY_TRIM.bind(redis)
        self._trimmed: dict[str, Window] = {}

    async def save_accounts(
        self, points: dict[tuple[str, str], list[RawPoint]], window: Window
    ) -> None:
        """Keep each account's daily points (one script call per account, one pipeline)."""
        accounts = list(points.items())
        for start in range(0, len(accounts), SCRIPT_ACCOUNTS):
            async with self.redis.pipeline(transaction=False) as pipe:
                for (platform, handle), raws in accounts[start : start + SCRIPT_ACCOUNTS]:
                    await self._account.queue(
                        pipe,
                        scripts.account_history_keys(self.rk, platform, handle),
                        [
                            handle,
                            window.first_day,
                            window.oldest_week,
                            b"".join(map(encode_raw, raws)),
                        ],
                    )
                await pipe.execute()

    async def of_accounts(self, platform: str, handles: set[str]) -> dict[str, list[RawPoint]]:
        """The stored daily points of some accounts (missing ones: none)."""
        ordered = sorted(handles)
        async with self.redis.pipeline(transaction=False) as pipe:
            for handle in ordered:
                pipe.hget(self.rk.account_history_key(platform, handle), handle)
            values = await pipe.execute()
        return {h: decode_raws(v) for h, v in zip(ordered, values, strict=True) if v}

    async def apply(self, category: str, writes: Sequence[PointWrite], window: Window) -> int:
        """Write points of one category (each only if its territory's link is the point's
        and it is later than the one held); returns how many were written. A territory whose
        stored history came from its previous account is emptied first (`reset`)."""
        written = 0
        # By week, then territory: a call touches at most 8 indexes (a week's days and the
        # week) and reads and rewrites each territory's history once for its days of the week
        # (a rebuild sends a whole log: every day of every territory).
        ordered = sorted(writes, key=lambda w: (week_of(w.day), w.territory_id, w.day))
        for start in range(0, len(ordered), SCRIPT_POINTS):
            chunk = ordered[start : start + SCRIPT_POINTS]
            while chunk:
                applied = await self._apply_chunk(category, chunk, window)
                written += applied.written
                stale = set(applied.stale)
                for tid in stale:
                    await self.reset(
                        category, tid, next(w.ordinal for w in chunk if w.territory_id == tid)
                    )
                chunk = [w for w in chunk if w.territory_id in stale]
        return written

    async def _apply_chunk(
        self, category: str, chunk: Sequence[PointWrite], window: Window
    ) -> scripts.HistoryApplied:
        days = sorted({w.day for w in chunk})
        weeks = sorted({week_of(w.day) for w in chunk})
        day_at = {day: 4 + i for i, day in enumerate(days)}
        week_at = {week: 4 + len(days) + i for i, week in enumerate(weeks)}
        # One group per territory (the chunk is in territory order within a week).
        args: list[str | bytes | int | float] = [window.first_day, window.oldest_week]
        for tid, group in groupby(chunk, key=lambda w: (w.territory_id, w.link, w.ordinal)):
            points = b"".join(
                w.point
                + day_at[w.day].to_bytes(2, "big")
                + week_at[week_of(w.day)].to_bytes(2, "big")
                for w in group
            )
            args += [*tid, points]
        keys = scripts.history_keys(self.rk, category, days, weeks)
        return await self._apply(keys, args)

    async def reset_all(self, category: str, territories: Sequence[tuple[str, int]]) -> None:
        """`reset` for many territories of a category: one pipeline asks the script, with no
        index declared, whether each history still matches its link (nothing is read back);
        only those that do not are read and reset."""
        if not territories:
            return
        keys = scripts.history_reset_keys(self.rk, category, [], [])
        async with self.redis.pipeline(transaction=False) as pipe:
            for territory_id, ordinal in territories:
                await self._reset.queue(pipe, keys, [territory_id, ordinal, 0])
            replies = await pipe.execute()
        for (territory_id, ordinal), reply in zip(territories, replies, strict=True):
            if self._reset.decode(reply) < 0:  # another link's history: its indexes needed
                await self.reset(category, territory_id, ordinal)

    async def reset(self, category: str, territory_id: str, ordinal: int) -> bool:
        """Empty a territory's history (and its index entries) if it was derived from
        another account than the one its link names now; true if it was."""
        while True:
            raw = await self.redis.hget(self.rk.history_key(category), territory_id)
            if raw is None:
                return False
            days = sorted({p.day for p in decode_points(split_series(cast(bytes, raw))[1])})
            weeks = sorted({week_of(day) for day in days})
            keys = scripts.history_reset_keys(self.rk, category, days, weeks)
            done = await self._reset(keys, [territory_id, ordinal, len(days), *days, *weeks])
            if done >= 0:
                return done == 1

    async def trim(self, categories: Sequence[str], window: Window) -> None:
        """Delete the rank indexes that left the window (days before its first daily day,
        weeks before its oldest) and record it; nothing when no category's window moved."""
        for category in categories:
            if self._trimmed.get(category) == window:
                continue
            meta = await self.redis.hmget(
                self.rk.history_meta_key(category),
                "first_day",
                "oldest_week",
                "low_day",
                "low_week",
            )
            first, oldest, low_day, low_week = (None if v is None else int(v) for v in meta)
            days = _between(first, low_day, window.first_day)
            weeks = _between(oldest, low_week, window.oldest_week)
            while True:
                now_days, days = days[:TRIM_KEYS], days[TRIM_KEYS:]
                room = TRIM_KEYS - len(now_days)
                now_weeks, weeks = weeks[:room], weeks[room:]
                await self._trim(
                    scripts.history_trim_keys(self.rk, category, now_days, now_weeks),
                    [window.first_day, window.oldest_week],
                )
                if not days and not weeks:
                    break
            self._trimmed[category] = window


def _between(trimmed: int | None, low: int | None, stop: int) -> list[int]:
    """The indexes that may exist below `stop`: from the lowest ever written (`low`; none
    when nothing was written) or the last trim's bound, whichever is higher."""
    if low is None:
        return []
    return list(range(low if trimmed is None else max(trimmed, low), stop))
