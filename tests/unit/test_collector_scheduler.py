"""The scheduling policy: cadence, stalest first, no starvation, following the mapping."""

from __future__ import annotations

import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from services.collector.scheduler import Attempt, Schedule, last_attempts

HOUR = 3600.0


def test_new_accounts_are_due_at_once_and_taken_by_handle():
    schedule = Schedule(cadence_seconds=24 * HOUR)
    schedule.sync(["b", "a", "c"])
    assert schedule.due(0.0) == ["a", "b", "c"]
    assert schedule.take(0.0) == "a"
    assert schedule.due(0.0) == ["b", "c"]  # a is in flight


def test_an_account_is_due_again_after_the_cadence_or_the_error_retry():
    schedule = Schedule(cadence_seconds=24 * HOUR, retry_after_seconds=HOUR)
    schedule.sync(["ok", "bad"])
    for handle, status in (("bad", "error"), ("ok", "ok")):
        assert schedule.take(0.0) == handle
        schedule.record(handle, 10.0, status)
    assert schedule.due(10.0 + HOUR - 1) == []
    assert schedule.due(10.0 + HOUR) == ["bad"]
    assert schedule.due(10.0 + 24 * HOUR) == ["bad", "ok"]
    assert schedule.next_due() == 10.0 + HOUR


def test_the_stalest_goes_first():
    schedule = Schedule(cadence_seconds=HOUR)
    schedule.sync(["a", "b", "c"])
    for handle, at in (("a", 300.0), ("b", 100.0), ("c", 200.0)):
        schedule.get(handle).last_attempt = at  # type: ignore[union-attr]
    assert schedule.due(10 * HOUR) == ["b", "c", "a"]
    schedule.sync(["a", "b", "c", "new"])
    assert schedule.take(10 * HOUR) == "new"  # never observed: the stalest of all
    assert schedule.take(10 * HOUR) == "b"


def test_following_the_mapping_adds_and_drops_accounts():
    schedule = Schedule(cadence_seconds=HOUR)
    assert schedule.sync(["a", "b"]) == ({"a", "b"}, set())
    assert schedule.take(0.0) == "a"
    assert schedule.sync(["b", "c"]) == ({"c"}, {"a"})
    schedule.record("a", 1.0, "ok")  # an answer for a dropped account is ignored
    assert schedule.handles() == ["b", "c"]


def test_an_abandoned_observation_is_due_again():
    schedule = Schedule(cadence_seconds=HOUR)
    schedule.sync(["a"])
    assert schedule.take(0.0) == "a"
    schedule.release("a")
    assert schedule.due(0.0) == ["a"]


def test_the_last_attempt_of_each_handle_is_its_newest_snapshot():
    attempts = [
        Attempt("a", 100.0, "ok"),
        Attempt("a", 300.0, "error"),
        Attempt("a", 200.0, "ok"),
        Attempt("b", 50.0, "not_found"),
        Attempt("b", 50.0, "error"),  # same time: the account was observed then
        Attempt("c", 10.0, "error"),
        Attempt("c", 10.0, "ok"),
        Attempt("d", 9_999.0, "ok"),  # ahead of our clock: counts as now
        Attempt("e", 20.0, "bogus"),  # not a snapshot status: not an attempt
    ]
    assert last_attempts(attempts, now=1_000.0) == {
        "a": Attempt("a", 300.0, "error"),
        "b": Attempt("b", 50.0, "not_found"),
        "c": Attempt("c", 10.0, "ok"),
        "d": Attempt("d", 1_000.0, "ok"),
    }
    assert last_attempts([], now=0.0) == {}


def test_a_schedule_restored_from_the_log_retries_an_error_sooner():
    now = 100 * HOUR
    known = last_attempts(
        [
            Attempt("fine", now - 2 * HOUR, "ok"),
            Attempt("broken", now - 23 * HOUR, "ok"),
            Attempt("broken", now - 2 * HOUR, "error"),
            Attempt("stale", now - 25 * HOUR, "ok"),
            Attempt("dropped", now - HOUR, "ok"),  # no longer mapped: ignored
        ],
        now=now,
    )
    schedule = Schedule(cadence_seconds=24 * HOUR, retry_after_seconds=HOUR)
    schedule.sync(["fine", "broken", "stale", "new"])
    assert schedule.restore(known) == 3
    assert schedule.due(now) == ["new", "stale", "broken"]  # never attempted, then stalest
    assert schedule.due(now + 22 * HOUR) == ["new", "stale", "broken", "fine"]
    assert schedule.take(now) == "new"
    schedule.record("new", now, "ok")
    schedule.sync(["fine", "broken", "stale", "new", "dropped"])  # mapped again later
    assert schedule.restore(known) == 1  # only "dropped": "new" was attempted by this process
    assert schedule.get("new").last_attempt == now  # type: ignore[union-attr]
    assert "dropped" not in schedule.due(now)


@settings(max_examples=150, deadline=None)
@given(
    accounts=st.integers(1, 40),
    budget_per_hour=st.integers(1, 30),
    cadence_hours=st.sampled_from([0.25, 1.0, 6.0, 24.0]),
    hours=st.integers(1, 30),
    failures=st.sets(st.integers(0, 39)),
)
def test_under_any_budget_every_account_is_served_stalest_first_and_none_starves(
    accounts, budget_per_hour, cadence_hours, hours, failures
):
    """Grant `budget_per_hour` calls an hour, evenly spaced, to whatever the policy picks."""
    handles = [f"h{i:02d}" for i in range(accounts)]
    schedule = Schedule(cadence_seconds=cadence_hours * HOUR, retry_after_seconds=HOUR / 2)
    schedule.sync(handles)
    attempts: dict[str, list[float]] = {h: [] for h in handles}
    step = HOUR / budget_per_hour
    grants = 0
    for turn in range(budget_per_hour * hours):
        now = turn * step
        due_before = schedule.due(now)
        handle = schedule.take(now)
        if handle is not None:
            grants += 1
            # stalest first: nobody due was waiting longer than the one taken
            taken_last = attempts[handle][-1:] or [-math.inf]
            for other in due_before:
                other_last = attempts[other][-1] if attempts[other] else -math.inf
                assert (taken_last[0], handle) <= (other_last, other)
            attempts[handle].append(now)
            status = "error" if int(handle[1:]) in failures else "ok"
            schedule.record(handle, now, status)
    assert grants <= budget_per_hour * hours  # the budget is never exceeded
    # No starvation: an account is due again `cadence` after its attempt (sooner after an
    # error) and then waits at most one turn of the others: every account is served at least
    # once per cadence + one round of the budget.
    period = cadence_hours * HOUR + accounts * step + step
    for handle, times in attempts.items():
        if accounts * step < hours * HOUR:
            assert times, f"{handle} was never observed"
            assert times[0] <= (accounts - 1) * step + 1e-6
        ends = [*times, hours * HOUR] if times else []
        for before, after in itertools.pairwise(ends):
            assert after - before <= period + 1e-6, (handle, before, after)
