"""Follower gains over 7, 30, 90 and 365 days (services/common/methodology.py,
`follower_gains`): which earlier snapshot each period compares with, and when none does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.clock import format_timestamp, parse_timestamp
from services.common.methodology import GAIN_PERIODS_DAYS, FollowerGain, follower_gains

T = "2026-12-01T06:00:00Z"


def before(days: float = 0, seconds: int = 0) -> str:
    return format_timestamp(parse_timestamp(T) - timedelta(days=days, seconds=seconds))


def test_each_period_compares_with_the_newest_snapshot_of_its_window():
    earlier = [
        (before(7), 1_000),  # exactly t − 7 days: in
        (before(9), 950),
        (before(31), 800),  # the newest at or before t − 30 days
        (before(35), 700),
        (before(100), 500),  # t − 90 − 10: within the 22.5 days of tolerance
        (before(2), 1_190),  # too recent for any period
    ]
    gains = follower_gains(T, 1_200, earlier)
    assert gains == [
        FollowerGain(7, before(7), 1_000, 200, 20.0),
        FollowerGain(30, before(31), 800, 400, 50.0),
        FollowerGain(90, before(100), 500, 700, 140.0),
        None,  # nothing within 365 + 91.25 days
    ]
    assert [gain.days for gain in gains if gain] == [7, 30, 90]


@pytest.mark.parametrize(
    ("days", "tolerance_days"),
    [(7, 3), (30, 7.5), (90, 22.5), (365, 91.25)],  # max(3, D/4)
)
def test_the_window_runs_from_t_minus_d_back_by_max_3_or_a_quarter_of_d(days, tolerance_days):
    oldest = before(days + tolerance_days)
    assert follower_gains(T, 10, [(oldest, 5)], [days])[0] == FollowerGain(
        days, oldest, 5, 5, 100.0
    )
    too_old = before(days + tolerance_days, seconds=1)
    assert follower_gains(T, 10, [(too_old, 5)], [days]) == [None]
    too_recent = before(days, seconds=-1)
    assert follower_gains(T, 10, [(too_recent, 5)], [days]) == [None]


def test_no_earlier_snapshot_gives_four_nulls_in_period_order():
    assert follower_gains(T, 10, []) == [None, None, None, None]
    assert GAIN_PERIODS_DAYS == (7, 30, 90, 365)
    # the current snapshot itself is never an earlier one
    assert follower_gains(T, 10, [(T, 10)]) == [None, None, None, None]


def test_a_loss_is_a_negative_gain_and_no_percentage_from_zero():
    gains = follower_gains(T, 90, [(before(7), 100), (before(30), 0)])
    assert gains[0] == FollowerGain(7, before(7), 100, -10, -10.0)
    assert gains[1] == FollowerGain(30, before(30), 0, 90, None)
    assert gains[1] is not None and gains[1].to_dict() == {
        "days": 30,
        "since": before(30),
        "followers_then": 0,
        "gain": 90,
        "gain_pct": None,
    }


def test_malformed_inputs_are_refused():
    with pytest.raises(ValueError):
        follower_gains("2026-12-01 06:00", 10, [])
    with pytest.raises(ValueError):
        follower_gains(T, 10, [(before(7), -1)])


@given(
    st.lists(
        st.tuples(st.integers(1, 500 * 86400), st.integers(0, 10**6)), max_size=30, unique_by=str
    ),
    st.integers(0, 10**6),
)
def test_the_chosen_snapshot_is_in_the_window_and_none_newer_in_it_is_left(ages, followers):
    earlier = [(before(seconds=age), count) for age, count in ages]
    for days, gain in zip(GAIN_PERIODS_DAYS, follower_gains(T, followers, earlier), strict=True):
        latest = before(days)
        oldest = before(days + max(3, days / 4))
        inside = [(t, f) for t, f in earlier if oldest <= t <= latest]
        if not inside:
            assert gain is None
            continue
        assert gain is not None
        newest = max(inside)
        assert (gain.since, gain.followers_then) == newest
        assert gain.gain == followers - newest[1]
