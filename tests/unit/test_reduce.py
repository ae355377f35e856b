"""A rebuild's lazy reduction of the log equals validating every record, whatever the log."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.events import build_metrics_event
from services.common.validation import Rejection, validate_metrics
from services.common.watermark import kth_newest
from services.scorer.plan import plan_batch
from services.scorer.reduce import LogReducer

# Times around a Paris month boundary (31 Oct 23:00 UTC is 1 Nov in Paris), a few seconds apart
# so that equal observed_at happen.
TIMES = st.sampled_from(
    [
        "2026-10-30T10:00:00Z",
        "2026-10-31T22:59:59Z",
        "2026-10-31T23:00:00Z",
        "2026-11-01T00:00:00Z",
        "2026-11-02T08:00:00Z",
        "2026-11-02T08:00:00Z",
        "2026-12-01T09:00:00Z",
    ]
)
RECORD_MS = 1_796_000_000_000  # 2026-11-30: later snapshots are `future` for their record


@st.composite
def records(draw) -> tuple[bytes | None, int | None]:
    handle = draw(st.sampled_from(["a", "b", "c", "d", "e"]))  # more than K accounts
    status = draw(st.sampled_from(["ok", "ok", "ok", "not_found", "error"]))
    ok = status == "ok"
    event = build_metrics_event(
        handle=handle,
        observed_at=draw(TIMES),
        status=status,
        source="sim",
        followers=draw(st.integers(0, 5)) if ok else None,
        follows=1 if ok else None,
        media_count=1 if ok else None,
    )
    raw = orjson.dumps(event)
    damage = draw(st.sampled_from(["none"] * 6 + ["json", "id", "type", "tombstone", "future"]))
    timestamp = draw(st.none() | st.just(RECORD_MS))
    if damage == "json":
        raw = raw[:-1]
    elif damage == "id":
        raw = orjson.dumps({**event, "followers": (event["followers"] or 0) + 1})
    elif damage == "type":
        raw = orjson.dumps({**event, "observed_at": 5})
    elif damage == "tombstone":
        return None, timestamp
    elif damage == "future":
        timestamp = RECORD_MS - 40 * 86_400_000
    return raw, timestamp


@settings(max_examples=300, deadline=None)
@given(st.lists(records(), max_size=60), st.integers(1, 4), st.integers(1, 20_000))
def test_lazy_reduction_equals_validating_everything(log, per_key, budget) -> None:
    eager_rejections: Counter[str] = Counter()
    valid = []
    for raw, timestamp in log:
        result = validate_metrics(raw, timestamp)
        if isinstance(result, Rejection):
            eager_rejections[result.reason] += 1
        else:
            valid.append(result)
    eager = plan_batch(valid)

    lazy_rejections: Counter[str] = Counter()
    reducer = LogReducer(
        lambda r: lazy_rejections.update([r.reason]), held_per_key=per_key, held_bytes=budget
    )
    for raw, timestamp in log:
        reducer.add(raw, timestamp)
    lazy = reducer.finish()

    assert lazy.newest.watermark == eager.newest.watermark
    newest: dict[str, int] = {}
    for snapshot in valid:
        epoch = int(datetime.fromisoformat(snapshot.observed_at).timestamp())
        newest[snapshot.handle] = max(epoch, newest.get(snapshot.handle, epoch))
    assert lazy.newest.watermark == kth_newest(newest.values())
    assert lazy.current == eager.current
    assert lazy.monthly == eager.monthly
    # Every record was validated or dropped as superseded; rejections are among the eager ones.
    assert reducer.read == len(log)
    assert reducer.validated + reducer.skipped == len(log)
    assert all(lazy_rejections[r] <= eager_rejections[r] for r in lazy_rejections)


def test_a_log_of_snapshots_validates_only_each_days_last() -> None:
    """Three snapshots a day of one account over thirty days and two months: only each
    Paris day's last is validated (the daily history's point; the month's and the account's
    winners are among them)."""
    reducer = LogReducer(lambda r: None)
    for day in range(30):
        for hour in (8, 12, 20):
            event = build_metrics_event(
                handle="a",
                observed_at=datetime(2026, 10, 17, hour, tzinfo=UTC) + timedelta(days=day),
                status="ok",
                source="sim",
                followers=10,
                follows=1,
                media_count=1,
            )
            reducer.add(orjson.dumps(event), None)
    plan = reducer.finish()
    assert plan.current[("instagram", "a")].observed_at == "2026-11-15T20:00:00Z"
    assert plan.monthly[("instagram", "a", "2026-10")].observed_at == "2026-10-31T20:00:00Z"
    assert len(plan.daily) == 30
    assert all(same[0].observed_at.endswith("T20:00:00Z") for same in plan.daily.values())
    assert reducer.validated == 30 and reducer.skipped == 60
