"""How far each of the publisher's own topics is reflected in Redis (`publisher:offsets`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from redis.asyncio import Redis

from services.common.view.keys import ViewKeys
from services.common.view.scripts import publisher as scripts
from services.publisher.store.fence import FencedWriter, check


class OffsetStore:
    """Per topic and partition, the offset up to which the topic is reflected."""

    def __init__(self, redis: Redis, rk: ViewKeys, fence: FencedWriter) -> None:
        self.redis = redis
        self.rk = rk
        self.fence = fence
        self._advance = scripts.ADVANCE_OFFSET.bind(redis)

    async def of(self, topic: str) -> dict[int, int]:
        """Per partition, the offset up to which the topic is reflected in Redis."""
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(self.rk.PUBLISHER_OFFSETS_KEY))
        prefix = f"{topic}:".encode()
        return {
            int(name[len(prefix) :]): int(value)
            for name, value in raw.items()
            if name.startswith(prefix)
        }

    async def advance(self, topic: str, partition: int, next_offset: int) -> None:
        """Raise the reflected offset of one partition (never lowers it)."""
        reply = await self._advance(
            scripts.offsets_keys(self.rk), [f"{topic}:{partition}", next_offset, self.fence.token]
        )
        check(reply, self.fence.token, self.rk.META_TAG)

    async def set(self, topic: str, offsets: Mapping[int, int]) -> None:
        """Set the reflected offsets of a topic (after reading it to these end offsets)."""
        if offsets:
            batch = self.fence.batch(self.rk.META_TAG)
            for partition, offset in offsets.items():
                batch.add("HSET", self.rk.PUBLISHER_OFFSETS_KEY, f"{topic}:{partition}", offset)
            await self.fence.run(batch)
