"""Per-token budgets: the sliding-window cap is never exceeded; usage headers pace the calls."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from services.collector.budget import BudgetPool, NoUsableToken, TokenBudget, Usage


def _budget(calls: int = 5, window: float = 10.0) -> TokenBudget:
    return TokenBudget(1, SecretStr("s3cr3t-token"), calls, window)


@settings(max_examples=200, deadline=None)
@given(
    calls=st.integers(1, 8),
    window=st.floats(1.0, 50.0),
    latencies=st.lists(st.floats(0.0, 5.0), min_size=1, max_size=60),
)
def test_no_window_ever_holds_more_calls_than_the_budget(calls, window, latencies):
    """Simulate callers that take every slot as soon as it opens, with random latencies."""
    budget = _budget(calls, window)
    now = 0.0
    spans: list[tuple[float, float]] = []  # (granted, answered)
    in_flight: list[float] = []  # answer times of calls in flight
    for latency in latencies:
        while True:
            for answered in sorted(t for t in in_flight if t <= now):
                in_flight.remove(answered)
                budget.finish(answered)
            slot = budget.next_slot(now)
            if slot <= now:
                break
            # advance time to the next answer or the next slot, whichever comes first
            now = min([t for t in in_flight if t > now] + ([] if math.isinf(slot) else [slot]))
        budget.grant(now)
        in_flight.append(now + latency)
        spans.append((now, now + latency))
    # The platform counts a call at some instant between its grant and its answer. A window
    # [t, t + window) can count every call whose span meets it; the most it can count, over
    # every t (the extremes are at span ends), stays within the budget.
    for t in {end for span in spans for end in span}:
        counted = [g for g, a in spans if g < t + window and a >= t]
        assert len(counted) <= calls


def test_usage_at_90_percent_spaces_the_calls():
    budget = _budget(calls=200, window=3600.0)
    budget.grant(0.0)
    budget.finish(0.1)
    assert budget.next_slot(0.1) == 0.1
    budget.observe(Usage(90.0), 0.1, default_pause=300)
    assert budget.next_slot(0.1) == pytest.approx(180.0)
    budget.observe(Usage(10.0), 0.2, default_pause=300)
    assert budget.next_slot(0.2) == 0.2


def test_a_throttled_token_rests_as_long_as_the_platform_says_or_the_default():
    budget = _budget()
    budget.throttled(Usage(100.0, regain_seconds=120.0), now=10.0, default_pause=300)
    assert budget.next_slot(10.0) == pytest.approx(130.0)
    other = _budget()
    other.throttled(None, now=10.0, default_pause=300)
    assert other.next_slot(10.0) == pytest.approx(310.0)


def test_a_token_is_never_shown_by_value():
    budget = _budget()
    assert "s3cr3t" not in repr(budget) and "s3cr3t" not in str(budget)
    assert budget.secret() == "s3cr3t-token"


async def test_the_pool_moves_to_another_token_and_fails_clearly_when_none_is_left():
    pool = BudgetPool(
        [SecretStr("a-secret"), SecretStr("b-secret")], calls_per_window=1, window_seconds=60
    )
    first = await pool.acquire()
    pool.release(first, None)
    second = await pool.acquire()
    assert {first.index, second.index} == {1, 2}
    pool.release(second, None)
    pool.invalidate(first)
    pool.invalidate(second)
    with pytest.raises(NoUsableToken, match="code 190"):
        await asyncio.wait_for(pool.acquire(), 1)
    assert "secret" not in repr(pool)


def test_a_pool_needs_a_token():
    with pytest.raises(NoUsableToken, match="OBS_GRAPH_TOKENS"):
        BudgetPool([], calls_per_window=200)
