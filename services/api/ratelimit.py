"""Per-client token buckets (in process): `rate` requests per minute, bursts up to `rate`.

Each client (the peer address uvicorn reports, see docs/api.md on proxies) has a bucket of
`capacity` tokens refilled continuously at `rate / 60` per second; a request takes one token
or is refused with the seconds until one is back. Memory is bounded: idle clients (whose
bucket would be full again) are forgotten, and past `max_clients` the least recently seen go.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

DEFAULT_MAX_CLIENTS: Final = 100_000


class TokenBuckets:
    """Token buckets keyed by client."""

    def __init__(
        self,
        per_minute: int,
        *,
        capacity: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = DEFAULT_MAX_CLIENTS,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.rate = per_minute / 60.0  # tokens per second
        self.capacity = float(capacity if capacity is not None else per_minute)
        self.clock = clock
        self.max_clients = max_clients
        # client -> (tokens, time of the last update); ordered by last use.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> float:
        """Take a token: 0.0 when granted, else the seconds until one is available."""
        now = self.clock()
        tokens, last = self._buckets.pop(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[client] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[client] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        if len(self._buckets) > self.max_clients:
            self._forget(now)
        return wait

    def _forget(self, now: float) -> None:
        """Drop clients whose bucket is full again, then the least recently seen ones."""
        # Least recently used first (take() re-inserts): the idle ones are at the front.
        refill = self.capacity / self.rate
        while self._buckets:
            client, (_, last) = next(iter(self._buckets.items()))
            if now - last < refill and len(self._buckets) <= self.max_clients:
                break
            del self._buckets[client]

    def __len__(self) -> int:
        return len(self._buckets)
