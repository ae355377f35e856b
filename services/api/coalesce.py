"""Cheaper identical reads: concurrent ones share one Redis read ("group commit" for
reads), and a read whose reply equals the previous one reuses its rendered body.

Requests for the same resource that arrive while a read of it is in flight wait for the
*next* read, which starts as soon as the current one ends and serves all of them. So every
response still comes from a read that started after its request arrived (never an older
one), a hot page under load costs one read per read-duration instead of one per request,
and a request waits for at most two reads.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def _consume(future: asyncio.Future[Any]) -> None:
    # Every waiter may have gone (client disconnects): do not let an exception go unread.
    if not future.cancelled():
        future.exception()


@dataclass(slots=True)
class _Slot(Generic[T]):
    next: asyncio.Future[T] | None = None
    driver: asyncio.Task[None] | None = None


class ReadCoalescer(Generic[T]):
    """Runs `read()` once per batch of identical concurrent requests (keyed by `key`)."""

    def __init__(self) -> None:
        self._slots: dict[Hashable, _Slot[T]] = {}
        self.reads = 0  # reads done (for tests and metrics)
        self.requests = 0

    async def run(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        """The result of a read of `key` that starts after this call."""
        self.requests += 1
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        if slot.next is None:
            slot.next = asyncio.get_running_loop().create_future()
            slot.next.add_done_callback(_consume)
        waiting = slot.next
        if slot.driver is None:
            slot.driver = asyncio.create_task(self._drive(key, slot, read))
        return await asyncio.shield(waiting)

    async def _drive(self, key: Hashable, slot: _Slot[T], read: Callable[[], Awaitable[T]]) -> None:
        try:
            while slot.next is not None:
                batch, slot.next = slot.next, None
                self.reads += 1
                try:
                    result = await read()
                except Exception as exc:
                    if not batch.done():
                        batch.set_exception(exc)
                else:
                    if not batch.done():
                        batch.set_result(result)
        finally:
            if slot.next is not None:  # cancelled mid-way: release whoever still waits
                slot.next.cancel()
            self._slots.pop(key, None)


class RenderedBodies:
    """The last body rendered per resource, with the Redis reply it was rendered from.

    Content-addressed: a body is reused only for a reply equal to the one it came from, so
    it can never be stale; it only saves re-rendering an unchanged page. Bounded (LRU)."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._bodies: OrderedDict[Hashable, tuple[Any, bytes, str]] = OrderedDict()

    def get(self, key: Hashable, reply: Any) -> tuple[bytes, str] | None:
        """The body and ETag rendered from this very reply, if it is the last one seen."""
        found = self._bodies.get(key)
        if found is None or found[0] != reply:
            return None
        self._bodies.move_to_end(key)
        return found[1], found[2]

    def put(self, key: Hashable, reply: Any, body: bytes, etag: str) -> tuple[bytes, str]:
        """Remember a body rendered from `reply`; returns (body, etag)."""
        self._bodies[key] = (reply, body, etag)
        self._bodies.move_to_end(key)
        if len(self._bodies) > self.size:
            self._bodies.popitem(last=False)
        return body, etag
