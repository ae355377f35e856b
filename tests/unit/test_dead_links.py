"""The link-status state machine: suspect after one not_found, dead after two consecutive
(`error` skipped), ok again on the next ok; each distinct snapshot counted once."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.common.dead_links import (
    LinkState,
    LinkTransition,
    apply_snapshot,
    apply_snapshots,
    dead_link_event,
)
from services.common.events import DeadLinkEvent


def t(day: int, hour: int = 6) -> str:
    return f"2021-06-{day:02d}T{hour:02d}:00:00Z"


def run(snapshots: list[tuple[str, str]]) -> tuple[LinkState, list[LinkTransition]]:
    """Snapshots (observed_at, status) with distinct ids, in the order given."""
    return apply_snapshots(
        LinkState(), [(at, f"{i:064x}", status) for i, (at, status) in enumerate(snapshots)]
    )


def test_dead_link_needs_two_consecutive_not_found():
    state, transitions = run([(t(1), "ok"), (t(2), "not_found")])
    assert state.status == "suspect" and state.since == t(2) and transitions == []
    state, transitions = run([(t(1), "ok"), (t(2), "not_found"), (t(3), "not_found")])
    assert state.status == "dead" and state.since == t(2)
    assert transitions == [LinkTransition("dead", t(2), t(3))]


def test_errors_in_between_are_skipped_never_counted():
    state, transitions = run(
        [(t(1), "not_found"), (t(2), "error"), (t(3), "error"), (t(4), "not_found")]
    )
    assert state.status == "dead" and state.since == t(1)
    assert transitions == [LinkTransition("dead", t(1), t(4))]
    state, _ = run([(t(1), "ok"), (t(2), "error"), (t(3), "error")])
    assert state.status == "ok"
    state, _ = run([(t(1), "error")])
    assert state == LinkState()  # never judged


def test_an_ok_ends_the_run_and_a_dead_link_recovers():
    state, transitions = run([(t(1), "not_found"), (t(2), "ok"), (t(3), "not_found"), (t(4), "ok")])
    assert state.status == "ok" and transitions == []  # never two in a row
    state, transitions = run(
        [(t(1), "not_found"), (t(2), "not_found"), (t(3), "not_found"), (t(4), "ok")]
    )
    assert state.status == "ok" and state.since is None
    assert transitions == [LinkTransition("dead", t(1), t(2)), LinkTransition("ok", t(4), t(4))]


def test_a_redelivered_not_found_counts_once():
    nf = (t(2), "a" * 64, "not_found")
    state, transitions = apply_snapshots(LinkState(), [(t(1), "b" * 64, "ok"), nf, nf])
    assert state.status == "suspect" and transitions == []
    again, transition = apply_snapshot(state, observed_at=nf[0], event_id=nf[1], status="not_found")
    assert again == state and transition is None


def test_a_snapshot_older_than_the_judgement_changes_nothing():
    state, _ = run([(t(5), "ok")])
    older, transition = apply_snapshot(
        state, observed_at=t(4), event_id="c" * 64, status="not_found"
    )
    assert older == state and transition is None


def test_the_state_survives_a_json_round_trip():
    state, _ = run([(t(1), "not_found"), (t(2), "not_found")])
    assert LinkState.from_json(state.to_json()) == state


def test_a_transition_survives_a_json_round_trip_and_says_when_it_was_observed():
    _, transitions = run([(t(1), "not_found"), (t(2), "not_found"), (t(3), "ok")])
    assert [(tr.status, tr.since, tr.at) for tr in transitions] == [
        ("dead", t(1), t(2)),
        ("ok", t(3), t(3)),
    ]
    assert [LinkTransition.from_json(tr.to_json()) for tr in transitions] == transitions


def test_the_event_follows_the_contract():
    event = dead_link_event(
        platform="instagram",
        handle="latenareze",
        transition=LinkTransition("dead", t(1), t(2)),
        territories=["epci-243200417", "epci-243200417"],
    )
    parsed = DeadLinkEvent.model_validate(event)
    assert parsed.territories == ["epci-243200417"] and parsed.since == t(1)


def reference(statuses: list[str]) -> tuple[str | None, list[str]]:
    """The rule as ARCHITECTURE words it, over distinct snapshots in observed_at order."""
    status: str | None = None
    run_length = 0
    announced: list[str] = []
    for s in statuses:
        if s == "error":
            continue
        if s == "ok":
            if status == "dead":
                announced.append("ok")
            status, run_length = "ok", 0
        else:
            run_length += 1
            new = "suspect" if run_length == 1 else "dead"
            if new == "dead" and status != "dead":
                announced.append("dead")
            status = new
    return status, announced


@given(st.lists(st.sampled_from(["ok", "not_found", "error"]), max_size=30), st.data())
def test_matches_the_rule_with_any_redeliveries(statuses, data):
    snapshots = [(t(1 + i // 24, i % 24), f"{i:064x}", s) for i, s in enumerate(statuses)]
    # Redeliver some snapshots right after themselves (at-least-once delivery).
    delivered = []
    for snapshot in snapshots:
        delivered.append(snapshot)
        if data.draw(st.booleans()):
            delivered.append(snapshot)
    state, transitions = apply_snapshots(LinkState(), delivered)
    expected_status, expected_events = reference(statuses)
    assert state.status == expected_status
    assert [tr.status for tr in transitions] == expected_events
