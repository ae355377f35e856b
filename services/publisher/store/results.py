"""Command results as the publisher writes them: fenced (services/publisher/store/fence.py)."""

from __future__ import annotations

from redis.asyncio import Redis

from services.common.view.keys import ViewKeys
from services.common.view.results import ResultStore
from services.publisher.store.fence import FencedWriter


class FencedResultStore(ResultStore):
    """`ResultStore` whose writes check the publisher's lease token."""

    def __init__(self, redis: Redis, rk: ViewKeys, fence: FencedWriter) -> None:
        super().__init__(redis, rk)
        self.fence = fence

    async def save(self, command_id: str, record: bytes) -> None:
        """Store a result as produced to `obs.command-results.v1`."""
        batch = self.fence.batch(self.rk.META_TAG).add(
            "HSET", self.rk.COMMAND_RESULTS_KEY, command_id, record
        )
        await self.fence.run(batch)
