"""A rebuild's lazy fold of link status equals applying every valid snapshot in log order."""

from __future__ import annotations

from collections import defaultdict

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.dead_links import LinkState, apply_snapshot
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


def eager(log: list[bytes | None]) -> dict[tuple[str, str], LinkState]:
    states: dict[tuple[str, str], LinkState] = defaultdict(LinkState)
    for raw in log:
        snap = validate_metrics(raw, None)
        if not isinstance(snap, Rejection):
            account = (snap.platform, snap.handle)
            states[account], _ = apply_snapshot(
                states[account],
                observed_at=snap.observed_at,
                event_id=snap.event_id,
                status=snap.status,
            )
    return {k: v for k, v in states.items() if v.status is not None}


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
