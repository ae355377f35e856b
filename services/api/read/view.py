"""The readers of the generation of the view readers read (services/common/view/generations.py).

`LiveView.readers()` gives the readers of the current generation, re-reading the pointer at
most every `refresh_seconds`: after a rebuild's switch, every reader moves to the new
generation within that time, well within the grace period before the old one is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from services.api.read.editions import EditionIndex
from services.api.read.history import HistoryReader
from services.api.read.rank_changes import RankChangeFeed
from services.api.read.standings import StandingsRepository
from services.api.read.territory import TerritoryReader
from services.common.territories import Registry
from services.common.view.accounts import AccountMapping
from services.common.view.generations import GenerationTracker
from services.common.view.keys import ViewKeys
from services.common.view.results import ResultStore

REFRESH_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class Readers:
    """Every reader of one generation."""

    rk: ViewKeys
    repository: StandingsRepository
    editions: EditionIndex
    territories: TerritoryReader
    history: HistoryReader
    feed: RankChangeFeed
    accounts: AccountMapping
    results: ResultStore


class LiveView:
    """The readers of the current generation of the view."""

    def __init__(
        self,
        redis: Redis,
        registry: Registry,
        *,
        grace_hours: float,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self.redis = redis
        self.registry = registry
        self.grace_hours = grace_hours
        self.tracker = GenerationTracker(redis, refresh_seconds)
        self._readers = self._build(ViewKeys(0))

    def _build(self, rk: ViewKeys) -> Readers:
        redis = self.redis
        return Readers(
            rk=rk,
            repository=StandingsRepository(redis, rk),
            editions=EditionIndex(redis, rk, grace_hours=self.grace_hours),
            territories=TerritoryReader(redis, rk, self.registry),
            history=HistoryReader(redis, rk, self.registry),
            feed=RankChangeFeed(redis, rk),
            accounts=AccountMapping(redis, rk),
            results=ResultStore(redis, rk),
        )

    async def readers(self) -> Readers:
        rk = await self.tracker.keys()
        if rk != self._readers.rk:
            self._readers = self._build(rk)
        return self._readers

    async def keys(self) -> ViewKeys:
        return (await self.readers()).rk

    async def refresh(self) -> bool:
        """Re-read the pointer now (after a read that found nothing); true if it moved."""
        return await self.tracker.refresh()
