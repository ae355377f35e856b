"""Which generation of the view is live, which one a rebuild is building, and the switch.

The view lives in generations (`ViewKeys(g)`, docs/redis.md "Generations"): readers read the
`current` one; `observatoire rebuild` builds `next` beside it while the live scorers write
both, then switches `current` to it and drops the old one after a grace period. The pointer
is one hash, `obs:{meta}:generation`, outside every generation:

- `current`: the generation readers read and every writer writes (absent: 0);
- `next`: the generation a rebuild is building (the scorers write it too);
- `hold`: the generation a rebuild is building the publisher's part of: the live publisher
  finishes what it is writing, stops writing, and answers in `held` (JSON: the lease token it
  holds and the offsets up to which it has applied each input partition); it resumes on the
  new `current` at the switch, or on the old one when the rebuild gives up;
- `retired` / `retire_after`: the generation switched away from and when it may be dropped
  (readers that read it just before the switch finish their reads first).

A generation only moves forward; a reader's `GenerationTracker` re-reads the pointer at most
every `refresh_seconds` and whenever a read finds nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
import redis as sync_redis
from redis.asyncio import Redis

from services.common.view.keys import GENERATION_KEY, ViewKeys


@dataclass(frozen=True, slots=True)
class Generations:
    """The pointer as read."""

    current: int = 0
    next: int | None = None
    hold: int | None = None
    held: dict[str, Any] | None = None
    retired: int | None = None
    retire_after: float | None = None

    @property
    def keys(self) -> ViewKeys:
        """The keys readers read."""
        return ViewKeys(self.current)

    def written(self) -> list[ViewKeys]:
        """The generations the scorer writes: the current one, and the one being built."""
        if self.next is None or self.next == self.current:
            return [ViewKeys(self.current)]
        return [ViewKeys(self.current), ViewKeys(self.next)]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse(raw: dict[Any, Any]) -> Generations:
    """The pointer from its hash (an empty hash: generation 0, nothing under way)."""
    fields = {_text(k): _text(v) for k, v in raw.items()}

    def number(name: str) -> int | None:
        return int(fields[name]) if name in fields else None

    return Generations(
        current=number("current") or 0,
        next=number("next"),
        hold=number("hold"),
        held=orjson.loads(fields["held"]) if "held" in fields else None,
        retired=number("retired"),
        retire_after=float(fields["retire_after"]) if "retire_after" in fields else None,
    )


async def read_generations(redis: Redis) -> Generations:
    return parse(await redis.hgetall(GENERATION_KEY))


def read_generations_sync(client: sync_redis.Redis) -> Generations:
    return parse(client.hgetall(GENERATION_KEY))


async def begin_next(redis: Redis, generation: int) -> bool:
    """Announce the generation a rebuild builds (false: another rebuild is under way)."""
    return bool(await redis.hsetnx(GENERATION_KEY, "next", generation))


async def request_hold(redis: Redis, generation: int) -> None:
    """Ask the live publisher to stop writing while its part of `generation` is built."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hdel(GENERATION_KEY, "held")
        pipe.hset(GENERATION_KEY, "hold", generation)
        await pipe.execute()


async def answer_hold(redis: Redis, generation: int, held: dict[str, Any]) -> bool:
    """The publisher's answer: it has stopped writing (false: the hold was withdrawn)."""
    if (await read_generations(redis)).hold != generation:
        return False
    await redis.hset(GENERATION_KEY, "held", orjson.dumps(held))
    return True


async def switch(redis: Redis, generation: int, grace_seconds: float) -> Generations:
    """Make `generation` current; the old one may be dropped after the grace period."""
    before = await read_generations(redis)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(
            GENERATION_KEY,
            mapping={
                "current": generation,
                "retired": before.current,
                "retire_after": f"{time.time() + grace_seconds:.3f}",
            },
        )
        pipe.hdel(GENERATION_KEY, "next", "hold", "held")
        await pipe.execute()
    return before


async def abandon(redis: Redis, generation: int) -> None:
    """A rebuild gives up: writers stop writing `generation`, the publisher resumes."""
    if (await read_generations(redis)).next == generation:
        await redis.hdel(GENERATION_KEY, "next", "hold", "held")


async def forget_retired(redis: Redis, generation: int) -> None:
    """The retired generation is dropped: say so."""
    if (await read_generations(redis)).retired == generation:
        await redis.hdel(GENERATION_KEY, "retired", "retire_after")


class GenerationTracker:
    """A reader's view of the pointer: re-read at most every `refresh_seconds`, or at once
    after a read that found nothing (`refresh()`)."""

    def __init__(self, redis: Redis, refresh_seconds: float = 0.5) -> None:
        self.redis = redis
        self.refresh_seconds = refresh_seconds
        self._read_at = float("-inf")
        self._keys = ViewKeys(0)

    async def keys(self) -> ViewKeys:
        """The keys of the current generation (never an older one than before)."""
        if time.monotonic() - self._read_at >= self.refresh_seconds:
            await self.refresh()
        return self._keys

    async def refresh(self) -> bool:
        """Re-read the pointer now; true when the current generation changed."""
        generation = (await read_generations(self.redis)).current
        self._read_at = time.monotonic()
        if generation > self._keys.generation:
            self._keys = ViewKeys(generation)
            return True
        return False
