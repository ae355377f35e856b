"""The publisher's side of a rebuild beside it: hold, then resume on the new generation.

While `observatoire rebuild` builds the publisher's part of a new generation of the view, the
live publisher must not write: what the rebuild derives from the topics must meet exactly
where the publisher resumes (services/common/view/generations.py). Every write of the
publisher goes through `HoldGate.writing()`; a follower (a timer of the worker) sees the hold
in the generation pointer, closes the gate, waits for the writes under way, and answers with
the lease token and the offsets up to which each input partition has been applied. Records
already received wait at the gate; they are applied after the switch, to the new generation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Applied:
    """A record the publisher has applied (or set aside as invalid)."""

    topic: str
    partition: int
    offset: int


class HoldGate:
    """Lets the publisher's writers through while no rebuild holds it; records how far each
    input partition has been applied."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writing = 0
        self.positions: dict[str, int] = {}  # "<topic>:<partition>" -> next offset to apply

    @property
    def closed(self) -> bool:
        return not self._open.is_set()

    @asynccontextmanager
    async def writing(self, applied: Iterable[Applied] = ()) -> AsyncIterator[None]:
        """One write (or batch of writes); once it is done, the records are applied."""
        await self._open.wait()
        self._writing += 1
        self._idle.clear()
        try:
            yield
            for record in applied:
                key = f"{record.topic}:{record.partition}"
                self.positions[key] = max(self.positions.get(key, 0), record.offset + 1)
        finally:
            self._writing -= 1
            if not self._writing:
                self._idle.set()

    async def close(self) -> dict[str, int]:
        """Stop letting writers through; returns, once the writes under way are done, how far
        each partition has been applied."""
        self._open.clear()
        await self._idle.wait()
        return dict(self.positions)

    def open(self) -> None:
        self._open.set()

    def shut(self) -> None:
        """Closed from the start (nothing writes yet): a publisher starting while a rebuild's
        hold is pending writes nothing until it has answered, then resumed."""
        self._open.clear()


def applied(events: Iterable[object]) -> list[Applied]:
    """The records of faust events (their message's topic, partition and offset)."""
    out = []
    for event in events:
        message = event.message  # type: ignore[attr-defined]
        out.append(Applied(message.topic, message.partition, message.offset))
    return out


async def wait_closed(gate: HoldGate, seconds: float) -> dict[str, int] | None:
    """`gate.close()` within `seconds` (None: a write did not finish in time; the gate is
    open again)."""
    try:
        async with asyncio.timeout(seconds):
            return await gate.close()
    except TimeoutError:
        gate.open()
        return None
