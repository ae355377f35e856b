"""A rank-change event's `at`: the category's `as_of`, monotonic, never a forged snapshot's."""

from __future__ import annotations

from services.publisher.rank_changes import Trigger, event_time


def _trigger(observed_at: str) -> Trigger:
    trigger = Trigger()
    trigger.add(observed_at, None)
    return trigger


def test_the_category_as_of_dates_the_event_not_the_batch_newest_snapshot() -> None:
    forged = _trigger("2099-01-01T00:00:00Z")
    at = event_time("2021-07-01T06:00:00Z", "2021-06-30T06:00:00Z", forged)
    assert at == "2021-07-01T06:00:00Z"


def test_without_a_watermark_the_batch_newest_snapshot_dates_it() -> None:
    assert event_time(None, None, _trigger("2021-06-30T06:00:00Z")) == "2021-06-30T06:00:00Z"


def test_never_before_the_previous_event_of_the_category() -> None:
    assert event_time("2021-06-01T00:00:00Z", "2021-06-02T00:00:00Z", None) == (
        "2021-06-02T00:00:00Z"
    )
    assert event_time(None, "2021-06-02T00:00:00Z", _trigger("2021-06-01T00:00:00Z")) == (
        "2021-06-02T00:00:00Z"
    )
