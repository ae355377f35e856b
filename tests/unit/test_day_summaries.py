"""The scorer's day summaries: their records, their coverage, and a rebuild that reads them
reducing the log exactly as one that validates everything (services/scorer/day_summaries.py)."""

from __future__ import annotations

from collections import Counter

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.clock import to_epoch
from services.common.contracts import TOPIC_DAY_SUMMARIES, TOPIC_METRICS, TOPICS_BY_NAME
from services.common.events import (
    METRICS_PARTITION_COUNT,
    DaySummaries,
    build_metrics_event,
    build_recent_post,
    with_event_id,
)
from services.common.history import day_of_epoch
from services.common.methodology import SnapshotSummary
from services.common.validation import Rejection, validate_day_summaries, validate_metrics
from services.scorer.day_summaries import Coverage, day_summary_records, summaries_of
from services.scorer.plan import BatchPlan, plan_batch
from services.scorer.reduce import LogReducer
from tests.unit.test_reduce import records

AT = "2026-12-01T00:00:00Z"


def summary_day(summary: SnapshotSummary) -> int:
    return day_of_epoch(to_epoch(summary.observed_at))[0]


def test_the_topic_mirrors_the_metrics_partitions() -> None:
    metrics = TOPICS_BY_NAME[TOPIC_METRICS].partitions
    assert TOPICS_BY_NAME[TOPIC_DAY_SUMMARIES].partitions == metrics == METRICS_PARTITION_COUNT


def _snapshot(handle: str, observed_at: str, followers: int) -> bytes:
    return orjson.dumps(
        build_metrics_event(
            handle=handle,
            observed_at=observed_at,
            status="ok",
            source="sim",
            followers=followers,
            follows=2,
            media_count=1,
        )
    )


def test_a_batch_gives_one_valid_record_per_partition_and_run() -> None:
    raws = {
        (3, 10): _snapshot("a", "2026-11-02T08:00:00Z", 5),
        (3, 11): _snapshot("a", "2026-11-02T09:00:00Z", 6),  # a's day winner
        (3, 12): b"{not json",  # read, dead-lettered: covered all the same
        (5, 40): _snapshot("b", "2026-11-03T08:00:00Z", 7),
    }
    valid, positions = [], {}
    for position, raw in raws.items():
        result = validate_metrics(raw, None)
        if not isinstance(result, Rejection):
            valid.append(result)
            positions[result.event_id] = position
    events = day_summary_records(positions, raws, plan_batch(valid), AT, run_records=2)
    assert [(e["partition"], e["first_offset"], e["last_offset"]) for e in events] == [
        (3, 10, 11),
        (3, 12, 12),
        (5, 40, 40),
    ]
    parsed = [validate_day_summaries(orjson.dumps(e), None) for e in events]
    assert all(isinstance(p, DaySummaries) for p in parsed)
    first = summaries_of(parsed[0])  # type: ignore[arg-type]
    assert [(p, h, s.observed_at, s.followers) for p, h, s in first] == [
        ("instagram", "a", "2026-11-02T09:00:00Z", 6)
    ]
    assert parsed[1].summaries == [] and len(parsed[2].summaries) == 1  # type: ignore[union-attr]


def test_a_record_of_another_methodology_or_out_of_order_is_refused() -> None:
    event = day_summary_records({}, [(0, 1)], BatchPlan(), AT)[0]
    for change, field in (
        ({"methodology_version": 2}, "methodology_version"),
        ({"first_offset": 5, "last_offset": 4}, "last_offset"),
    ):
        bad = {**event, **change}
        result = validate_day_summaries(orjson.dumps(bad), None)
        assert isinstance(result, Rejection) and result.reason == "schema"
        assert field in result.detail or "first_offset" in result.detail


def test_coverage_merges_runs() -> None:
    coverage = Coverage()
    for first, last in ((10, 19), (0, 4), (5, 9), (30, 30)):
        coverage.add(1, first, last)
    assert [coverage.covers(1, o) for o in (0, 9, 19, 20, 29, 30, 31)] == [
        True,
        True,
        True,
        False,
        False,
        True,
        False,
    ]
    assert not coverage.covers(2, 0)
    assert coverage.records() == 21
    coverage.add(1, 20, 29)  # added after a lookup
    assert coverage.covers(1, 25) and coverage.records() == 31


@settings(max_examples=300, deadline=None)
@given(
    st.lists(records(), max_size=60),
    st.lists(st.integers(1, 12), min_size=1, max_size=12),  # live batch sizes
    st.integers(1, 5),  # records per run
    st.lists(st.booleans(), max_size=40),  # which runs' records reached the topic
    st.integers(1, 4),
)
def test_a_rebuild_with_day_summaries_reduces_as_one_validating_everything(
    log, sizes, run_records, kept, per_key
) -> None:
    # Two partitions, each account in one (as the topic's key puts it), offsets in log order.
    placed: list[tuple[bytes | None, int | None, tuple[int, int]]] = []
    next_offset = [0, 0]
    for index, (raw, timestamp) in enumerate(log):
        partition = index % 2 if raw is None else (b'"handle":"a"' in raw or b'"handle":"c"' in raw)
        partition = int(partition)
        placed.append((raw, timestamp, (partition, next_offset[partition])))
        next_offset[partition] += 1

    # The live scorer: batches of the log, each validated, planned and recorded.
    recorded: list[bytes] = []
    start, turn = 0, 0
    while start < len(placed):
        batch = placed[start : start + sizes[turn % len(sizes)]]
        start, turn = start + len(batch), turn + 1
        valid, positions = [], {}
        for raw, timestamp, position in batch:
            result = validate_metrics(raw, timestamp)
            if not isinstance(result, Rejection):
                valid.append(result)
                positions[result.event_id] = position
        events = day_summary_records(
            positions, [p for *_, p in batch], plan_batch(valid), AT, run_records=run_records
        )
        recorded += [orjson.dumps(e) for e in events]
    reached = [r for i, r in enumerate(recorded) if (kept[i] if i < len(kept) else True)]

    eager_rejections: Counter[str] = Counter()
    valid = []
    for raw, timestamp, _ in placed:
        result = validate_metrics(raw, timestamp)
        if isinstance(result, Rejection):
            eager_rejections[result.reason] += 1
        else:
            valid.append(result)
    eager = plan_batch(valid)

    lazy_rejections: Counter[str] = Counter()
    reducer = LogReducer(lambda r: lazy_rejections.update([r.reason]), held_per_key=per_key)
    coverage = Coverage()
    for raw in reached:
        event = validate_day_summaries(raw, None)
        assert isinstance(event, DaySummaries)
        for platform, handle, summary in summaries_of(event):
            reducer.plan.add_day_summary(platform, handle, summary)
        coverage.add(event.partition, event.first_offset, event.last_offset)
    for raw, timestamp, position in placed:
        reducer.add(raw, timestamp, covered=coverage.covers(*position))
    lazy = reducer.finish()

    assert lazy.newest.watermark == eager.newest.watermark
    assert lazy.current == eager.current
    assert lazy.monthly == eager.monthly

    def days(plan: BatchPlan) -> dict[tuple[str, str, int], set[str]]:
        return {key: {s.event_id for s in same} for key, same in plan.daily.items()}

    assert days(lazy) == days(eager)
    assert reducer.validated + reducer.skipped == len(placed)
    assert all(lazy_rejections[r] <= eager_rejections[r] for r in lazy_rejections)


def test_covered_daily_snapshots_are_not_validated() -> None:
    """Thirty days of one account over two months, all recorded: nothing is validated
    (against thirty without the topic), and each month's newest is its last day's."""
    placed = [
        (_snapshot("a", f"2026-{month}-{day:02d}T20:00:00Z", 10), (0, i))
        for i, (month, day) in enumerate(
            [("10", d) for d in range(17, 32)] + [("11", d) for d in range(1, 16)]
        )
    ]
    valid, positions = [], {}
    for raw, position in placed:
        snapshot = validate_metrics(raw, None)
        assert not isinstance(snapshot, Rejection)
        valid.append(snapshot)
        positions[snapshot.event_id] = position
    events = day_summary_records(positions, [p for _, p in placed], plan_batch(valid), AT)
    reducer = LogReducer(lambda r: None)
    coverage = Coverage()
    for event in events:
        parsed = validate_day_summaries(orjson.dumps(event), None)
        assert isinstance(parsed, DaySummaries)
        for platform, handle, summary in summaries_of(parsed):
            reducer.plan.add_day_summary(platform, handle, summary)
        coverage.add(parsed.partition, parsed.first_offset, parsed.last_offset)
    for raw, position in placed:
        reducer.add(raw, None, covered=coverage.covers(*position))
    plan = reducer.finish()
    assert len(plan.daily) == 30
    assert plan.current[("instagram", "a")].observed_at == "2026-11-15T20:00:00Z"
    assert {month: s.observed_at for (_, _, month), s in plan.monthly.items()} == {
        "2026-10": "2026-10-31T20:00:00Z",
        "2026-11": "2026-11-15T20:00:00Z",
    }
    assert plan.newest.items() == [("instagram:a", to_epoch("2026-11-15T20:00:00Z"))]
    assert reducer.validated == 0 and reducer.skipped == 30


def test_a_summary_holds_its_interactions_and_gives_its_engagement_back() -> None:
    posts = [
        build_recent_post(post_id=f"p{i}", published_at="2026-11-01T09:00:00Z", likes=4, comments=i)
        for i in (1, 2)
    ]
    event = build_metrics_event(
        handle="a",
        observed_at="2026-11-02T09:00:00Z",
        status="ok",
        source="sim",
        followers=7,
        follows=2,
        media_count=2,
        recent_posts=posts,
    )
    raw = orjson.dumps(event)
    snapshot = validate_metrics(raw, None)
    assert not isinstance(snapshot, Rejection)
    plan = plan_batch([snapshot])
    (event,) = day_summary_records({snapshot.event_id: (0, 3)}, [(0, 3)], plan, AT)
    assert "engagement" not in event["summaries"][0]
    assert event["summaries"][0]["interactions"] == 11  # 4 + 1 and 4 + 2
    parsed = validate_day_summaries(orjson.dumps(event), None)
    assert isinstance(parsed, DaySummaries)
    ((_, _, summary),) = summaries_of(parsed)
    (held,) = plan.daily[("instagram", "a", summary_day(summary))]
    assert summary == held and summary.engagement == 11 / 14  # to the last bit

    # Interactions without posts or followers: refused by the model (the schema allows them).
    bad = orjson.loads(orjson.dumps(event))
    bad["summaries"][0].update(posts=0, interactions=5)
    result = validate_day_summaries(orjson.dumps(with_event_id(bad)), None)
    assert isinstance(result, Rejection) and "interactions must be 0" in result.detail


def test_a_run_whose_engagement_the_record_cannot_hold_exactly_has_no_record() -> None:
    # E = 0.1 over 3 posts and 7 followers is no integer's division: nothing to write.
    odd = SnapshotSummary("2026-11-02T09:00:00Z", "e" * 64, 7, 1, 3, 0.1, False)
    plan = BatchPlan()
    plan.versions[odd.event_id] = b"v"
    plan.daily[("instagram", "a", 1)] = [odd]
    events = day_summary_records({odd.event_id: (0, 1)}, [(0, 0), (0, 1), (1, 5)], plan, AT)
    assert [(e["partition"], e["first_offset"]) for e in events] == [(1, 5)]
