"""The Server-Sent Events streams of rank changes (the reads: services/api/read/rank_changes.py).

Streams do not poll Redis each: one `StreamHub` per
process polls the seq of the categories someone follows (one pipelined read every
`poll_seconds`) and wakes their streams, which then read what they have not sent yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import Counter
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.api.read.rank_changes import last_seqs
from services.api.read.view import LiveView

log = logging.getLogger("api.streams")


class StreamsStopping(Exception):
    """The server is stopping: streams end now."""


_HUBS: weakref.WeakSet[StreamHub] = weakref.WeakSet()


def stop_all_streams() -> None:
    """End every stream of this process (thread- and signal-safe: the server calls it on
    SIGTERM so that no listener holds the shutdown up)."""
    for hub in list(_HUBS):
        hub.request_stop()


class StreamHub:
    """Follows the rank-change seq of the categories being streamed; wakes their streams."""

    def __init__(
        self,
        redis: Redis,
        view: LiveView,
        *,
        poll_seconds: float,
        max_streams: int,
        max_streams_per_client: int,
    ) -> None:
        self.redis = redis
        self.view = view
        self.poll_seconds = poll_seconds
        self.max_streams = max_streams
        self.max_streams_per_client = max_streams_per_client
        self._seq: dict[str, int] = {}
        self._followers: Counter[str] = Counter()
        self._clients: Counter[str] = Counter()
        self._changed = asyncio.Condition()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poller: asyncio.Task[None] | None = None
        _HUBS.add(self)

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def open_streams(self) -> int:
        return sum(self._followers.values())

    def start(self) -> None:
        """Bind to the running loop (the app's lifespan calls this)."""
        self._loop = asyncio.get_running_loop()

    def request_stop(self) -> None:
        """Ask every stream to end; safe from a signal handler or another thread."""
        self._stopping = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._wake_all()))

    async def _wake_all(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def close(self) -> None:
        """Stop the poller (the app's lifespan calls this)."""
        self._stopping = True
        await self._wake_all()
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    def admit(self, client: str) -> str | None:
        """Why a new stream from `client` is refused now (None: admitted)."""
        if self.open_streams >= self.max_streams:
            return "server"
        if self._clients[client] >= self.max_streams_per_client:
            return "client"
        return None

    @contextlib.asynccontextmanager
    async def following(self, category: str, client: str) -> AsyncIterator[None]:
        """Count a stream of `category` from `client` while it runs."""
        self._followers[category] += 1
        self._clients[client] += 1
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="rank-change-poller")
        try:
            yield
        finally:
            self._followers[category] -= 1
            self._clients[client] -= 1
            if self._followers[category] <= 0:
                del self._followers[category]
            if self._clients[client] <= 0:
                del self._clients[client]

    async def wait_after(self, category: str, seq: int, seconds: float) -> bool:
        """Wait until the category's seq passes `seq`: True then, False after `seconds`."""
        if self._stopping:
            raise StreamsStopping
        try:
            # asyncio.timeout, not asyncio.wait_for: wait_for (3.11) waits in a task of its
            # own, and a stream cancelled twice (a client leaving: anyio cancels again until
            # the task ends) leaves before that task has taken the lock back, so the lock is
            # released unheld ("Lock is not acquired") and then stays held by the finished
            # task: every stream and the poller block on it. In this task, Condition.wait
            # takes the lock back whatever the cancellations.
            async with self._changed, asyncio.timeout(seconds):
                await self._changed.wait_for(
                    lambda: self._stopping or self._seq.get(category, 0) > seq
                )
        except TimeoutError:
            return False
        if self._stopping:
            raise StreamsStopping
        return True

    async def _poll(self) -> None:
        """While someone follows a category, read the followed seqs every `poll_seconds`."""
        while self._followers and not self._stopping:
            categories = list(self._followers)
            try:
                seqs = await last_seqs(self.redis, await self.view.keys(), categories)
            except (RedisError, OSError) as exc:
                log.warning("cannot read rank-change state: %s", exc)
            else:
                changed = False
                for category, seq in seqs.items():
                    if seq != self._seq.get(category):
                        self._seq[category] = seq
                        changed = True
                if changed:
                    async with self._changed:
                        self._changed.notify_all()
            await asyncio.sleep(self.poll_seconds)


def sse_event(data: bytes, *, event: str, event_id: int | None = None) -> bytes:
    """One Server-Sent Event (`data` split on newlines as the format requires)."""
    lines = []
    if event_id is not None:
        lines.append(b"id: %d" % event_id)
    lines.append(b"event: " + event.encode())
    lines += [b"data: " + line for line in data.split(b"\n")]
    return b"\n".join(lines) + b"\n\n"
