"""Graph API call budgets: a hard cap per token and pacing from the platform's usage headers.

Each token may make `calls_per_window` calls in any sliding window of `window_seconds`
(Instagram: 200 per user per rolling hour). A call occupies its slot from the moment it is
granted until `window_seconds` after its response arrived: the platform counts a call when it
receives it, which is somewhere between those two instants, so however the network delays
requests, the platform never sees more than the budget within any window of its own clock.

On top of the cap, the usage the platform reports (`X-App-Usage`,
`X-Business-Use-Case-Usage`: percentages of its own hourly allowance) paces the token:

- below 75 %: no gap beyond the cap;
- 75 % to 90 %: `window / calls_per_window` between calls (the budget spread evenly: 18 s at
  200 calls per hour);
- 90 % to 100 %: the remaining allowance spread over a whole window,
  `window / (calls_per_window × (100 − u) / 100)` (180 s at 90 %, 200 calls per hour);
- 100 % or more, or a throttling error: no call until `estimated_time_to_regain_access` has
  passed, else for a configured pause.

Tokens are secrets: a `TokenBudget` names its token by position (`#1`), never by value.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import orjson
from pydantic import SecretStr

from services.collector import metrics as m

STEADY_FROM_PERCENT = 75.0
STRETCH_FROM_PERCENT = 90.0
_USAGE_FIELDS = ("call_count", "total_cputime", "total_time")


class NoUsableToken(RuntimeError):
    """Every Graph token was rejected by the platform (code 190): nothing can be collected."""


@dataclass(frozen=True, slots=True)
class Usage:
    """What the usage headers of one response said: the highest percentage, and any wait."""

    percent: float
    regain_seconds: float | None = None


def parse_usage_headers(headers: Mapping[str, str]) -> Usage | None:
    """The highest usage percentage of `X-App-Usage` and `X-Business-Use-Case-Usage`.

    Header names are matched case-insensitively; an unreadable header counts as absent (a
    malformed header must not stop collection). `estimated_time_to_regain_access` is in
    minutes in the platform's headers and returned in seconds.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    percents: list[float] = []
    regain: float | None = None
    app = _json(lowered.get("x-app-usage"))
    if isinstance(app, dict):
        percents += _percents(app)
    business = _json(lowered.get("x-business-use-case-usage"))
    if isinstance(business, dict):
        for entries in business.values():
            for entry in entries if isinstance(entries, list) else []:
                if not isinstance(entry, dict):
                    continue
                percents += _percents(entry)
                minutes = entry.get("estimated_time_to_regain_access")
                if isinstance(minutes, int | float) and _is_number(minutes) and minutes > 0:
                    regain = max(regain or 0.0, float(minutes) * 60.0)
    if not percents and regain is None:
        return None
    return Usage(max(percents, default=100.0 if regain else 0.0), regain)


def _json(raw: str | None) -> object:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _percents(entry: dict) -> list[float]:
    return [float(entry[k]) for k in _USAGE_FIELDS if _is_number(entry.get(k))]


def pacing_interval(usage_percent: float, calls_per_window: int, window_seconds: float) -> float:
    """The minimum gap between two calls on a token whose platform usage is `usage_percent`."""
    if usage_percent < STEADY_FROM_PERCENT:
        return 0.0
    steady = window_seconds / calls_per_window
    if usage_percent < STRETCH_FROM_PERCENT:
        return steady
    remaining_calls = calls_per_window * max(0.0, 100.0 - usage_percent) / 100.0
    return max(steady, window_seconds / max(remaining_calls, 1.0))


class TokenBudget:
    """One token's sliding-window cap, pacing and health. Pure: the caller passes the time."""

    def __init__(
        self, index: int, token: SecretStr, calls_per_window: int, window_seconds: float
    ) -> None:
        self.index = index  # 1-based position in OBS_GRAPH_TOKENS: the only name it is given
        self.label = str(index)
        self._token = token
        self.calls_per_window = calls_per_window
        self.window_seconds = window_seconds
        self._ended: deque[float] = deque()  # completion times of calls still in the window
        self._in_flight = 0
        self.min_interval = 0.0
        self.usage_percent: float | None = None
        self.last_granted: float | None = None
        self.paused_until = 0.0
        self.valid = True

    def __repr__(self) -> str:
        return f"TokenBudget(#{self.index}, used={self.used_at(None)}, valid={self.valid})"

    def secret(self) -> str:
        """The token itself, for the Authorization header only."""
        return self._token.get_secret_value()

    def _expire(self, now: float) -> None:
        while self._ended and self._ended[0] + self.window_seconds <= now:
            self._ended.popleft()

    def used_at(self, now: float | None) -> int:
        """Calls counted against the window at `now` (in flight or ended within the window)."""
        if now is not None:
            self._expire(now)
        return len(self._ended) + self._in_flight

    def next_slot(self, now: float) -> float:
        """The earliest time (>= now) a call may be granted; `math.inf` when never."""
        if not self.valid:
            return math.inf
        self._expire(now)
        slot = max(now, self.paused_until)
        if self.last_granted is not None:
            slot = max(slot, self.last_granted + self.min_interval)
        if len(self._ended) + self._in_flight >= self.calls_per_window:
            excess = len(self._ended) + self._in_flight - self.calls_per_window
            if excess >= len(self._ended):
                return math.inf  # every slot is held by a call in flight: wait for one to end
            slot = max(slot, self._ended[excess] + self.window_seconds)
        return slot

    def grant(self, now: float) -> None:
        """Count a call starting now (the caller checked `next_slot(now) <= now`)."""
        self._in_flight += 1
        self.last_granted = now

    def finish(self, now: float) -> None:
        """The call granted earlier got its answer (or failed) at `now`."""
        self._in_flight = max(0, self._in_flight - 1)
        self._ended.append(now)

    def observe(self, usage: Usage | None, now: float, default_pause: float) -> None:
        """Adapt pacing to what the platform reported about this token's usage."""
        if usage is None:
            return
        self.usage_percent = usage.percent
        self.min_interval = pacing_interval(
            usage.percent, self.calls_per_window, self.window_seconds
        )
        if usage.regain_seconds:
            self.paused_until = max(self.paused_until, now + usage.regain_seconds)
        elif usage.percent >= 100.0:
            self.paused_until = max(self.paused_until, now + default_pause)

    def throttled(self, usage: Usage | None, now: float, default_pause: float) -> None:
        """The platform refused a call for throttling: rest, as long as it says if it says."""
        wait = usage.regain_seconds if usage is not None and usage.regain_seconds else None
        self.paused_until = max(self.paused_until, now + (wait or default_pause))
        if usage is not None:
            self.usage_percent = usage.percent
            self.min_interval = pacing_interval(
                usage.percent, self.calls_per_window, self.window_seconds
            )


class BudgetPool:
    """Grants Graph calls across tokens, first come first served, never beyond any budget."""

    def __init__(
        self,
        tokens: Sequence[SecretStr],
        *,
        calls_per_window: int,
        window_seconds: float = 3600.0,
        throttle_pause: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not tokens:
            raise NoUsableToken("no Graph token is configured (OBS_GRAPH_TOKENS)")
        self.tokens = [
            TokenBudget(i, token, calls_per_window, window_seconds)
            for i, token in enumerate(tokens, start=1)
        ]
        self.throttle_pause = throttle_pause
        self.clock = clock
        self._lock = asyncio.Lock()  # FIFO: callers are served in the order they asked
        self._changed = asyncio.Event()
        for token in self.tokens:
            m.GRAPH_TOKEN_VALID.labels(token.label).set(1)
            self._export(token)

    def __repr__(self) -> str:
        return f"BudgetPool({', '.join(repr(t) for t in self.tokens)})"

    @property
    def valid_tokens(self) -> int:
        return sum(token.valid for token in self.tokens)

    async def acquire(self) -> TokenBudget:
        """Wait for a call slot on some token and take it (NoUsableToken: none is left)."""
        async with self._lock:
            while True:
                now = self.clock()
                slots = [(token.next_slot(now), token.index, token) for token in self.tokens]
                slot, _, token = min(slots, key=lambda item: (item[0], item[1]))
                if not self.valid_tokens:
                    raise NoUsableToken(
                        "every Graph token was rejected by the platform (code 190): renew "
                        "OBS_GRAPH_TOKENS"
                    )
                if slot <= now:
                    token.grant(now)
                    self._export(token)
                    return token
                self._changed.clear()
                wait = None if math.isinf(slot) else slot - now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout=wait)

    def release(self, token: TokenBudget, usage: Usage | None) -> None:
        """The call on `token` ended; `usage` is what its response headers reported."""
        now = self.clock()
        token.finish(now)
        token.observe(usage, now, self.throttle_pause)
        self._export(token)
        self._changed.set()

    def throttled(self, token: TokenBudget, usage: Usage | None) -> None:
        """The platform throttled `token` (codes 4, 17, 32, 613 or HTTP 429)."""
        token.throttled(usage, self.clock(), self.throttle_pause)
        self._changed.set()

    def invalidate(self, token: TokenBudget) -> None:
        """The platform rejected `token` (code 190): never use it again in this process."""
        token.valid = False
        m.GRAPH_TOKEN_VALID.labels(token.label).set(0)
        m.GRAPH_TOKEN_REJECTED.labels(token.label).inc()
        self._changed.set()

    def _export(self, token: TokenBudget) -> None:
        used = token.used_at(self.clock())
        m.GRAPH_BUDGET_USED.labels(token.label).set(used)
        m.GRAPH_BUDGET_REMAINING.labels(token.label).set(max(0, token.calls_per_window - used))
        if token.usage_percent is not None:
            m.GRAPH_USAGE_PERCENT.labels(token.label).set(token.usage_percent)
