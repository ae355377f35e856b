"""A rebuild's lazy fold of link status, and of each account's transitions, equals applying
every valid snapshot in log order."""

from __future__ import annotations

from collections import defaultdict

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.dead_links import TRANSITIONS_KEPT, LinkState, LinkTransition, apply_snapshot
from services.common.events import build_metrics_event
from services.common.validation import Rejection, validate_metrics
from services.publisher.link_reduce import LinkReducer

# A few seconds, out of order at will: equal positions (redeliveries) and stale snapshots occur.
TIMES = st.sampled_from([f"2026-11-0{d}T08:00:0{s}Z" for d in (1, 2, 3) for s in (0, 1)])


@st.composite
def records(draw) -> bytes | None:
    status = draw(st.sampled_from(["ok", "not_found", "not_found", "not_found", "error"]))
    ok = status == "ok"
    event = build_metrics_event(
        handle=draw(st.sampled_from(["a", "b"])),
        observed_at=draw(TIMES),
        status=status,
        source="sim",
        followers=draw(st.integers(1, 3)) if ok else None,
        follows=1 if ok else None,
        media_count=1 if ok else None,
    )
    damage = draw(st.sampled_from(["none"] * 5 + ["json", "id", "tombstone"]))
    if damage == "json":
        return orjson.dumps(event)[:-1]
    if damage == "id":
        return orjson.dumps({**event, "observed_at": "2026-11-09T08:00:00Z"})
    if damage == "tombstone":
        return None
    return orjson.dumps(event)


def eager_with_transitions(
    log: list[bytes | None],
) -> tuple[dict[tuple[str, str], LinkState], dict[tuple[str, str], list[LinkTransition]]]:
    """Every valid snapshot applied in log order: the states, and each account's last
    transitions (what the live publisher keeps)."""
    states: dict[tuple[str, str], LinkState] = defaultdict(LinkState)
    transitions: dict[tuple[str, str], list[LinkTransition]] = defaultdict(list)
    for raw in log:
        snap = validate_metrics(raw, None)
        if not isinstance(snap, Rejection):
            account = (snap.platform, snap.handle)
            states[account], transition = apply_snapshot(
                states[account],
                observed_at=snap.observed_at,
                event_id=snap.event_id,
                status=snap.status,
            )
            if transition is not None:
                transitions[account].append(transition)
    return (
        {k: v for k, v in states.items() if v.status is not None},
        {k: v[-TRANSITIONS_KEPT:] for k, v in transitions.items()},
    )


def eager(log: list[bytes | None]) -> dict[tuple[str, str], LinkState]:
    return eager_with_transitions(log)[0]


@settings(max_examples=400, deadline=None)
@given(st.lists(records(), max_size=40), st.integers(1, 5), st.integers(1, 5_000))
def test_lazy_link_fold_equals_applying_every_valid_snapshot(log, per_account, budget) -> None:
    reducer = LinkReducer(lambda _: None, held_per_account=per_account, held_bytes=budget)
    for raw in log:
        reducer.add(raw, None)
    lazy = {k: v for k, v in reducer.finish().items() if v.status is not None}
    assert lazy == eager(log)
    assert reducer.validated + reducer.skipped == len(log)


def test_a_healthy_account_is_validated_once_per_settle_and_a_dead_run_record_by_record():
    reducer = LinkReducer(lambda _: None)
    for day in range(1, 10):
        status = "ok" if day <= 6 else "not_found"
        event = build_metrics_event(
            handle="a",
            observed_at=f"2026-11-0{day}T08:00:00Z",
            status=status,  # type: ignore[arg-type]
            source="sim",
            followers=5 if status == "ok" else None,
            follows=1 if status == "ok" else None,
            media_count=1 if status == "ok" else None,
        )
        reducer.add(orjson.dumps(event), None)
    state = reducer.finish()[("instagram", "a")]
    assert (state.status, state.since) == ("dead", "2026-11-07T08:00:00Z")
    assert reducer.validated == 4  # the three not_found of the run, then the last ok


# Runs of not_found long enough to die, and oks to recover, over many days: dead and back.
DAYS = st.sampled_from([f"2026-11-{d:02d}T08:00:0{s}Z" for d in range(1, 29) for s in (0, 1)])


@st.composite
def flapping_records(draw) -> bytes | None:
    status = draw(st.sampled_from(["ok", "ok", "not_found", "not_found", "not_found", "error"]))
    ok = status == "ok"
    event = build_metrics_event(
        handle=draw(st.sampled_from(["a", "b"])),
        observed_at=draw(DAYS),
        status=status,
        source="sim",
        followers=1 if ok else None,
        follows=1 if ok else None,
        media_count=1 if ok else None,
    )
    if draw(st.integers(0, 9)) == 0:
        return orjson.dumps(event)[:-1]  # invalid: never counts
    return orjson.dumps(event)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.one_of(records(), flapping_records()), max_size=60),
    st.integers(1, 5),
    st.integers(1, 5_000),
)
def test_lazy_fold_finds_every_transition_of_applying_every_valid_snapshot(
    log, per_account, budget
) -> None:
    reducer = LinkReducer(lambda _: None, held_per_account=per_account, held_bytes=budget)
    for raw in log:
        reducer.add(raw, None)
    states = {k: v for k, v in reducer.finish().items() if v.status is not None}
    expected_states, expected_transitions = eager_with_transitions(log)
    assert states == expected_states
    assert reducer.transitions() == expected_transitions


def test_only_the_last_transitions_of_an_account_are_kept():
    statuses = ["not_found", "not_found", "ok"] * 30  # 60 transitions: dead, ok, dead, ok…
    log: list[bytes | None] = []
    for index, status in enumerate(statuses):
        event = build_metrics_event(
            handle="a",
            observed_at=f"2026-11-{1 + index // 24:02d}T{index % 24:02d}:00:00Z",
            status=status,  # type: ignore[arg-type]
            source="sim",
            followers=5 if status == "ok" else None,
            follows=1 if status == "ok" else None,
            media_count=1 if status == "ok" else None,
        )
        log.append(orjson.dumps(event))
    reducer = LinkReducer(lambda _: None)
    for raw in log:
        reducer.add(raw, None)
    reducer.finish()
    kept = reducer.transitions()[("instagram", "a")]
    assert len(kept) == TRANSITIONS_KEPT == 50
    assert kept == eager_with_transitions(log)[1][("instagram", "a")]
    assert (kept[0].status, kept[-1].status) == ("dead", "ok")
    assert kept[-1].at == "2026-11-04T17:00:00Z"  # the last `ok` of the log
