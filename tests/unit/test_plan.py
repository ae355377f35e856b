"""Reducing a batch of snapshots before any write (pure)."""

from __future__ import annotations

from services.common.events import MetricsSnapshot, build_metrics_event
from services.scorer.plan import plan_batch


def snap(handle: str, observed_at: str, status: str = "ok", followers: int = 10) -> MetricsSnapshot:
    ok = status == "ok"
    event = build_metrics_event(
        handle=handle,
        observed_at=observed_at,
        status=status,  # type: ignore[arg-type]
        source="sim",
        followers=followers if ok else None,
        follows=1 if ok else None,
        media_count=1 if ok else None,
    )
    return MetricsSnapshot.model_validate(event)


def test_only_the_newest_ok_snapshot_per_account_is_kept_whatever_the_order():
    older, newer = snap("a", "2021-06-01T00:00:00Z"), snap("a", "2021-06-02T00:00:00Z")
    for order in ([older, newer], [newer, older]):
        plan = plan_batch(order)
        assert plan.current[("instagram", "a")].event_id == newer.event_id


def test_equal_observed_at_keeps_the_greater_event_id():
    a, b = (
        snap("a", "2021-06-01T00:00:00Z", followers=1),
        snap("a", "2021-06-01T00:00:00Z", followers=2),
    )
    winner = max(a.event_id, b.event_id)
    assert plan_batch([a, b]).current[("instagram", "a")].event_id == winner
    assert plan_batch([b, a]).current[("instagram", "a")].event_id == winner


def test_months_follow_the_paris_calendar():
    last_june = snap("a", "2021-06-30T21:59:59Z")  # 23:59:59 in Paris
    first_july = snap("a", "2021-06-30T22:00:00Z")  # midnight in Paris
    plan = plan_batch([last_june, first_july])
    assert plan.monthly[("instagram", "a", "2021-06")].event_id == last_june.event_id
    assert plan.monthly[("instagram", "a", "2021-07")].event_id == first_july.event_id


def test_not_found_and_error_move_the_watermark_but_are_never_summarised():
    plan = plan_batch(
        [snap("a", "2021-06-01T00:00:00Z"), snap("a", "2021-06-05T00:00:00Z", "error")]
    )
    assert plan.newest.items() == [("instagram:a", 1622851200)]  # 2021-06-05T00:00:00Z
    assert plan.current[("instagram", "a")].observed_at == "2021-06-01T00:00:00Z"
    assert plan_batch([snap("b", "2021-06-05T00:00:00Z", "not_found")]).current == {}


def test_versions_order_like_the_contract():
    early = snap("a", "2021-06-01T00:00:00Z")
    late = snap("a", "2021-06-01T00:00:01Z")
    plan = plan_batch([early, late])
    assert plan.versions[early.event_id] < plan.versions[late.event_id]
