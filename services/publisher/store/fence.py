"""Fenced writes: every write of the publisher checks its lease token in the slot it writes.

Each slot the publisher writes (each category's `obs:{cat:C}` and `obs:{meta}`) holds a fence
key with the highest lease token that wrote or claimed it (docs/redis.md, "Lease and
fencing"). A write runs as one script on one slot that checks the token first: an older token
than the stored one is refused and nothing is written (`Fenced`), a newer one is stored.
A publisher taking over claims every slot (`claim`) before it recovers, so a former active
that was only paused (a "zombie") can no longer write any of them.

A `WriteBatch` collects plain commands (SET, HSET, ZADD, UNLINK…) on the keys of one slot;
`FencedWriter.run` sends each batch as one script (atomic: all its commands or none). Token
0 writes without the check (`observatoire rebuild` and tests, with the services stopped).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from services.common.contracts import CATEGORY_IDS
from services.common.view.keys import ViewKeys
from services.common.view.scripts import ScriptArg
from services.common.view.scripts import publisher as scripts

UNFENCED = 0  # the token of a writer that does not hold the lease (rebuild, tests)


class Fenced(Exception):
    """A write refused: a publisher with a newer lease token claimed the slot."""

    def __init__(self, token: int, stored: int, where: str) -> None:
        super().__init__(
            f"write refused in {where}: this publisher's lease token {token} is older than "
            f"the token {stored} stored there (another publisher took over)"
        )
        self.token, self.stored, self.where = token, stored, where


def slot_tags(rk: ViewKeys) -> list[str]:
    """Every slot the publisher writes and claims: each category's, then the global one."""
    return [rk.category_tag(category) for category in CATEGORY_IDS] + [rk.META_TAG]


@dataclass(slots=True)
class WriteBatch:
    """Commands on the keys of one slot, run as one fenced script."""

    tag: str  # the slot's hash-tagged prefix (`obs:{cat:C}` or `obs:{meta}`)
    keys: list[str] = field(default_factory=list)
    args: list[ScriptArg] = field(default_factory=list)
    commands: int = 0

    def add(self, command: str, key: str, *args: ScriptArg) -> WriteBatch:
        """Add `command key args…` (the key must be of this batch's slot)."""
        if key not in self.keys:
            self.keys.append(key)
        self.args += [command, self.keys.index(key) + 2, len(args), *args]
        self.commands += 1
        return self


def check(reply: Any, token: int, where: str) -> Any:
    """A write script's reply, or `Fenced` if it refused the writer."""
    stored = scripts.fenced(reply)
    if stored is not None:
        raise Fenced(token, stored, where)
    return reply


class FencedWriter:
    """Runs write batches and fenced scripts with one lease token."""

    def __init__(self, redis: Redis, rk: ViewKeys, token: int = UNFENCED) -> None:
        self.redis = redis
        self.rk = rk
        self.token = token
        self._write = scripts.FENCED_WRITE.bind(redis)
        self._claim = scripts.CLAIM_FENCE.bind(redis)

    def batch(self, tag: str) -> WriteBatch:
        return WriteBatch(tag)

    def fence_key(self, tag: str) -> str:
        return self.rk.publisher_fence_key(tag)

    async def run(self, *batches: WriteBatch) -> None:
        """Run each non-empty batch as one script, in order; `Fenced` stops at a refusal."""
        for batch in batches:
            if batch.commands:
                reply = await self._write(
                    [self.fence_key(batch.tag), *batch.keys], [self.token, *batch.args]
                )
                check(reply, self.token, batch.tag)

    async def claim(self, tags: Sequence[str] | None = None) -> None:
        """Claim slots for this token (all the publisher writes by default): from now on a
        write with an older token is refused there. `Fenced` if a newer token holds one."""
        for tag in slot_tags(self.rk) if tags is None else tags:
            stored = await self._claim([self.fence_key(tag)], [self.token])
            if stored != self.token:
                raise Fenced(self.token, stored, tag)

    async def check_still_active(self) -> None:
        """Before producing: `Fenced` if a newer token claimed the global slot (a publisher
        paused past its lease learns here, before its record reaches a topic). Unfenced
        writers skip it."""
        if self.token != UNFENCED:
            await self.claim([self.rk.META_TAG])

    async def stored_tokens(self, tags: Iterable[str] | None = None) -> dict[str, int]:
        """The token stored in each slot's fence key (0: never claimed)."""
        found = {}
        for tag in slot_tags(self.rk) if tags is None else tags:
            raw = await self.redis.get(self.fence_key(tag))
            found[tag] = 0 if raw is None else int(raw)
        return found
