"""A territory's daily history as the API serves it: its points under the current window and
each point's rank among the category's points of its day (or week), read at request time
(services/common/history.py has the rules)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from services.common.clock import from_epoch
from services.common.history import (
    RankedPoint,
    Window,
    day_of_epoch,
    decode_points,
    fold,
    index_entry,
    ordinals,
    split_series,
)
from services.common.territories import Registry, Territory
from services.common.view.keys import ViewKeys
from services.common.view.scripts import reader as scripts
from services.common.view.watermark import read_watermark


@dataclass(frozen=True, slots=True)
class History:
    """A territory's shown points with their ranks, and the watermark they are read under."""

    territory: Territory
    as_of: str | None
    points: list[RankedPoint]


class HistoryReader:
    """Reads territories' daily histories from one generation of the view."""

    def __init__(self, redis: Redis, rk: ViewKeys, registry: Registry) -> None:
        self.redis = redis
        self.rk = rk
        self.registry = registry
        self._ranks = scripts.HISTORY_RANKS.bind(redis)
        self._ordinals: dict[str, dict[str, int]] = {}

    def _ordinal(self, territory: Territory) -> int:
        table = self._ordinals.get(territory.category)
        if table is None:
            ids = [t.id for t in self.registry.by_category(territory.category)]
            table = self._ordinals[territory.category] = ordinals(ids)
        return table[territory.id]

    async def read(self, territory: Territory) -> History:
        """The territory's history, oldest point first."""
        watermark = await read_watermark(self.redis, self.rk)
        raw = await self.redis.hget(self.rk.history_key(territory.category), territory.id)
        window = Window.of(None if watermark is None else day_of_epoch(watermark)[0])
        points = decode_points(split_series(cast(bytes, raw))[1]) if raw else []
        shown = fold(points, window)
        as_of = None if watermark is None else from_epoch(watermark)
        if not shown:
            return History(territory, as_of, [])
        days = sorted({s.point.day for s in shown if not s.weekly})
        weeks = sorted({s.point.week for s in shown if s.weekly})
        at = {("d", day): i + 1 for i, day in enumerate(days)}
        at.update({("w", week): len(days) + i + 1 for i, week in enumerate(weeks)})
        ordinal = self._ordinal(territory)
        args: list[str | bytes | int | float] = []
        for s in shown:
            args += [
                at[("w", s.point.week) if s.weekly else ("d", s.point.day)],
                index_entry(s.point.score, ordinal),
            ]
        keys = scripts.history_rank_keys(self.rk, territory.category, days, weeks)
        ranks = await self._ranks(keys, args)
        ranked = [
            RankedPoint(s, rank or None, total or None)
            for s, (rank, total) in zip(shown, ranks, strict=True)
        ]
        return History(territory, as_of, ranked)
