"""The daily history: compare-and-set writes of territories' points and the rank indexes
(services/common/history.py has the rules; docs/redis.md, "Daily history")."""

from __future__ import annotations

import struct
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, cast

from redis.asyncio import Redis

from services.common.history import (
    RawPoint,
    Window,
    decode_points,
    decode_raws,
    fold_stored,
    index_entries,
    monday_of,
    split_series,
    week_of,
)
from services.common.view.keys import ViewKeys
from services.common.view.scripts import ScriptArg
from services.common.view.scripts import scorer as scripts

# Points per HISTORY_APPLY call. Points written as sent cost Redis little; merging their
# entries into the indexes is most of a call (each index of the call is rewritten once), so
# calls are large: writing 10,000 points of the petites villes' 30 days into indexes already
# half full blocks Redis 90 ms at most (docs/redis.md, "Daily history"), no longer than calls
# of 2,000 points taken one by one did.
SCRIPT_POINTS = 10_000
CALLS_PER_PIPELINE = 4
SCRIPT_ACCOUNTS = 500  # ACCOUNT_HISTORY calls (one per bucket of accounts) per pipeline
# At most this many index keys deleted per trim call (a window that jumps far, e.g. the first
# watermark after a long replay, is trimmed in several calls).
TRIM_KEYS = 500
STALE_CHECKS = 1_000  # territories a HISTORY_STALE call checks


@dataclass(frozen=True, slots=True)
class PointWrite:
    """One territory's point for one day, ready for the compare-and-set script."""

    territory_id: str
    ordinal: int
    point: bytes  # services.common.history.encode_point
    day: int
    link: bytes  # the account link the point carries (AccountLink.encode)


@dataclass(frozen=True, slots=True)
class SeriesWrite:
    """A territory's points of a batch, all carrying one account link, folded under the
    window they are written with (services.common.history `fold_stored`, or
    `territory_series`): what one HISTORY_APPLY group takes."""

    territory_id: str
    ordinal: int
    link: bytes  # the account link the points carry (AccountLink.encode)
    points: list[bytes]  # 13 bytes each (services.common.history.encode_point), by day


@dataclass(slots=True)
class _Call:
    """One HISTORY_APPLY call: a slice of some of the writes' points (writes[i].points
    [starts[i]:stops[i]]), as KEYS and ARGV."""

    writes: Sequence[SeriesWrite]
    starts: dict[int, int]
    stops: dict[int, int]
    keys: list[str]
    args: list[ScriptArg]

    def sent(self) -> list[SeriesWrite]:
        """The territories' points this call sent."""
        out: list[SeriesWrite] = []
        for i, at in self.starts.items():
            w = self.writes[i]
            out.append(SeriesWrite(w.territory_id, w.ordinal, w.link, w.points[at : self.stops[i]]))
        return out


class HistoryStore:
    """Atomic, idempotent writes of the daily history."""

    def __init__(self, redis: Redis, rk: ViewKeys) -> None:
        self.redis = redis
        self.rk = rk
        self._apply = scripts.HISTORY_APPLY.bind(redis)
        self._account = scripts.ACCOUNT_HISTORY.bind(redis)
        self._reset = scripts.HISTORY_RESET.bind(redis)
        self._stale = scripts.HISTORY_STALE.bind(redis)
        self._trim = scripts.HISTORY_TRIM.bind(redis)
        self._trimmed: dict[str, Window] = {}

    async def save_accounts(
        self, series: dict[tuple[str, str], list[bytes]], window: Window
    ) -> None:
        """Keep accounts' daily points: each account's points (`encode_raw`) folded under
        `window` (services.common.history `fold_stored`, `fold_account`); one script call
        per bucket of accounts, in pipelines."""
        by_key: dict[str, list[bytes]] = {}
        for (platform, handle), points in series.items():
            (key,) = scripts.account_history_keys(self.rk, platform, handle)
            by_key.setdefault(key, []).append(_packed(handle.encode(), points))
        calls = list(by_key.items())
        for start in range(0, len(calls), SCRIPT_ACCOUNTS):
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, accounts in calls[start : start + SCRIPT_ACCOUNTS]:
                    args: list[ScriptArg] = [
                        window.first_day,
                        window.oldest_week,
                        b"".join(accounts),
                    ]
                    await self._account.queue(pipe, [key], args)
                await pipe.execute()

    async def of_accounts(self, platform: str, handles: set[str]) -> dict[str, list[RawPoint]]:
        """The stored daily points of some accounts (missing ones: none); one HMGET per
        bucket of accounts."""
        by_key: dict[str, list[str]] = defaultdict(list)
        for handle in sorted(handles):
            by_key[self.rk.account_history_key(platform, handle)].append(handle)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, fields in by_key.items():
                pipe.hmget(key, fields)
            replies = await pipe.execute()
        return {
            handle: decode_raws(value)
            for fields, values in zip(by_key.values(), replies, strict=True)
            for handle, value in zip(fields, values, strict=True)
            if value
        }

    async def apply(self, category: str, writes: Sequence[PointWrite], window: Window) -> int:
        """`apply_series` of points given one by one (any order, several a day allowed)."""
        points: dict[tuple[str, bytes, int], list[bytes]] = defaultdict(list)
        for w in writes:
            points[(w.territory_id, w.link, w.ordinal)].append(w.point)
        series = [
            SeriesWrite(tid, ordinal, link, fold_stored(given, window))
            for (tid, link, ordinal), given in points.items()
        ]
        return await self.apply_series(category, series, window)

    async def apply_series(
        self, category: str, writes: Sequence[SeriesWrite], window: Window
    ) -> int:
        """Write territories' points of one category (each only if its territory's link is
        the points' and it is later than the one held); returns how many were written. A
        territory whose stored history came from its previous account is emptied first
        (`reset`). The points go by weeks (`_calls`) with their entries already sorted into
        each index's: a territory with no stored history (every territory of a fresh
        generation), or whose points come after its stored ones, has them written as they
        are, one merge per index per call."""
        written = 0
        rounds = _rounds(writes)
        while rounds:
            pending = rounds.pop()
            calls = self._calls(category, pending, window)
            for start in range(0, len(calls), CALLS_PER_PIPELINE):
                batch = calls[start : start + CALLS_PER_PIPELINE]
                async with self.redis.pipeline(transaction=False) as pipe:
                    for call in batch:
                        await self._apply.queue(pipe, call.keys, call.args)
                    replies = await pipe.execute()
                for call, reply in zip(batch, replies, strict=True):
                    applied = self._apply.decode(reply)
                    if applied.window is not None:  # a writer with a newer watermark trimmed
                        first_day, oldest_week = applied.window
                        window = Window(
                            max(window.first_day, first_day), max(window.oldest_week, oldest_week)
                        )
                        rounds.append(
                            [
                                SeriesWrite(
                                    w.territory_id, w.ordinal, w.link, fold_stored(w.points, window)
                                )
                                for w in call.sent()
                            ]
                        )
                        continue
                    written += applied.written
                    if not applied.stale:
                        continue
                    stale = set(applied.stale)
                    again = [w for w in call.sent() if w.territory_id in stale]
                    for w in again:
                        await self.reset(category, w.territory_id, w.ordinal)
                    if again:
                        rounds.append(again)
        return written

    def _calls(self, category: str, writes: Sequence[SeriesWrite], window: Window) -> list[_Call]:
        """The calls writing these territories: by weeks, oldest first, each territory's
        points of a week in one call, at most SCRIPT_POINTS a call unless a territory's
        week alone is more. A territory's next weeks then come after its stored points,
        which the script appends as they are: each index is merged by the calls of its own
        week only, not by every call (a rebuild's series span every index of the log)."""
        # per week: (index of the write, start, stop of its points that week), flat
        by_week: dict[int, list[int]] = defaultdict(list)
        for i, w in enumerate(writes):
            points = w.points
            if not points:
                by_week[-1] += (i, 0, 0)  # nothing to write: the script still checks it
                continue
            at, end = 0, len(points)
            week = week_of(points[0][0] << 8 | points[0][1])
            while at < end:  # by day ascending: a week's points end at the next Monday's
                stop = bisect_left(points, monday_of(week + 1).to_bytes(2, "big"), at)
                if stop > at:
                    by_week[week] += (i, at, stop)
                at, week = stop, week + 1
        calls: list[_Call] = []
        starts: dict[int, int] = {}
        stops: dict[int, int] = {}
        size = 0
        for week in sorted(by_week):
            flat = by_week[week]
            for k in range(0, len(flat), 3):
                i, at, stop = flat[k], flat[k + 1], flat[k + 2]
                if starts and size + stop - at > SCRIPT_POINTS:
                    calls.append(self._call(category, writes, starts, stops, window))
                    starts, stops, size = {}, {}, 0
                starts.setdefault(i, at)  # a territory's weeks in one call are contiguous
                stops[i] = stop
                size += stop - at or 1
        if starts:
            calls.append(self._call(category, writes, starts, stops, window))
        return calls

    def _call(
        self,
        category: str,
        writes: Sequence[SeriesWrite],
        starts: dict[int, int],
        stops: dict[int, int],
        window: Window,
    ) -> _Call:
        days, weeks = index_entries(
            ((writes[i].points[at : stops[i]], writes[i].ordinal) for i, at in starts.items()),
            window,
        )
        args: list[ScriptArg] = [window.first_day, window.oldest_week, len(days), len(weeks)]
        args += days
        args += weeks
        args += days.values()
        args += weeks.values()
        head = _ORDINAL_COUNT.pack
        parts = []
        for i, at in starts.items():
            w, stop = writes[i], stops[i]
            points = w.points[at:stop]
            parts.append(
                _packed(w.territory_id.encode(), points, w.link, head(w.ordinal, stop - at))
            )
        args.append(b"".join(parts))
        keys = scripts.history_keys(self.rk, category, list(days), list(weeks))
        return _Call(writes, starts, stops, keys, args)

    async def reset_all(self, category: str, territories: Sequence[tuple[str, int]]) -> None:
        """`reset` for many territories of a category: HISTORY_STALE names, STALE_CHECKS
        territories a call in one pipeline, those whose history no longer matches its link
        (nothing else is read back); only those are read and reset."""
        if not territories:
            return
        keys = scripts.history_reset_keys(self.rk, category, [], [])
        ordinals = dict(territories)
        ids = list(ordinals)
        async with self.redis.pipeline(transaction=False) as pipe:
            for start in range(0, len(ids), STALE_CHECKS):
                await self._stale.queue(pipe, keys, ids[start : start + STALE_CHECKS])
            replies = await pipe.execute()
        for reply in replies:
            for territory_id in self._stale.decode(reply):
                await self.reset(category, territory_id, ordinals[territory_id])

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


_ORDINAL_COUNT: Final = struct.Struct(">HH")
_COUNT: Final = struct.Struct(">H")


def _packed(
    name: bytes, points: list[bytes], link: bytes | None = None, head: bytes = b""
) -> bytes:
    """One account's or territory's part of a script argument (one argument for them all:
    redis-py packs a few large arguments much faster than many small ones): its name and,
    for a territory, its link, each after its length; then, for a territory, `head` (its
    ordinal and number of points), for an account, its number of points; then the points."""
    if link is None:
        return b"".join((bytes((len(name),)), name, _COUNT.pack(len(points)), *points))
    return b"".join((bytes((len(name),)), name, bytes((len(link),)), link, head, *points))


def _rounds(writes: Sequence[SeriesWrite]) -> list[list[SeriesWrite]]:
    """The writes in rounds where each territory appears once (a call holds one group per
    territory; a territory given points of two links has them written one link after the
    other, as they would be one by one)."""
    rounds: list[list[SeriesWrite]] = []
    seen: dict[str, int] = {}
    for w in writes:
        at = seen.get(w.territory_id, 0)
        seen[w.territory_id] = at + 1
        if at == len(rounds):
            rounds.append([])
        rounds[at].append(w)
    return rounds[::-1]  # popped from the end: the first round first


def _between(trimmed: int | None, low: int | None, stop: int) -> list[int]:
    """The indexes that may exist below `stop`: from the lowest ever written (`low`; none
    when nothing was written) or the last trim's bound, whichever is higher."""
    if low is None:
        return []
    return list(range(low if trimmed is None else max(trimmed, low), stop))
