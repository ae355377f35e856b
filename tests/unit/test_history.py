"""The daily history's pure core: Paris days, stored forms, the window, folding, ranks."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime

from hypothesis import given
from hypothesis import strategies as st

from services.common.clock import PARIS
from services.common.history import (
    EPOCH_DAY,
    Point,
    RawPoint,
    Window,
    day_of_epoch,
    decode_point,
    decode_points,
    decode_raws,
    encode_point,
    encode_raw,
    encode_raw_summary,
    epoch_of,
    fold,
    fold_account,
    fold_raws,
    fold_stored,
    index_entries,
    index_entry,
    iso_week_label,
    monday_of,
    ordinals,
    pack_raw,
    point_of_raw,
    rank_in,
    raw_of_summary,
    territory_series,
    week_of,
)


def reference_day(epoch: int) -> tuple[int, int]:
    local = datetime.fromtimestamp(epoch, tz=UTC).astimezone(PARIS)
    midnight = datetime(local.year, local.month, local.day, tzinfo=PARIS)
    return (local.date() - EPOCH_DAY).days, epoch - int(midnight.timestamp())


@given(st.integers(min_value=0, max_value=4_000_000_000))
def test_paris_day_and_second_of_any_epoch(epoch: int):
    day, second = day_of_epoch(epoch)
    assert (day, second) == reference_day(epoch)
    assert epoch_of(day, second) == epoch


def test_days_around_the_clock_changes_have_23_and_25_hours():
    spring = datetime(2026, 3, 29, tzinfo=PARIS)  # 23 hours
    autumn = datetime(2026, 10, 25, tzinfo=PARIS)  # 25 hours
    for start, hours in ((spring, 23), (autumn, 25)):
        first = int(start.timestamp())
        day = day_of_epoch(first)[0]
        assert day_of_epoch(first + hours * 3600 - 1) == (day, hours * 3600 - 1)
        assert day_of_epoch(first + hours * 3600) == (day + 1, 0)


def test_iso_weeks_start_on_monday():
    monday = (date(2026, 12, 7) - EPOCH_DAY).days
    assert date(2026, 12, 7).isoweekday() == 1
    assert week_of(monday) == week_of(monday + 6) == week_of(monday - 1) + 1
    assert monday_of(week_of(monday + 3)) == monday
    assert iso_week_label(week_of(monday)) == "2026-W50"


@given(
    st.integers(0, 40_000),
    st.integers(0, 90_000),
    st.integers(0, 1_000_000),
    st.integers(0, 2**32 - 1),
    st.integers(0, 255),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)
def test_stored_forms_round_trip(day, second, units, followers, posts, follows, interactions):
    point = Point(day, second, units / 10_000, followers, posts)
    assert len(encode_point(point)) == 13
    assert decode_points(encode_point(point)) == [point]
    raw = RawPoint(day, second, followers, follows, posts, interactions)
    assert len(encode_raw(raw)) == 18
    assert decode_raws(encode_raw(raw)) == [raw]


def test_the_window_keeps_whole_weeks_of_days_then_104_weeks():
    reference = (date(2026, 12, 9) - EPOCH_DAY).days  # a Wednesday
    window = Window.of(reference)
    assert date(2026, 12, 9).isoweekday() == 3
    assert EPOCH_DAY.toordinal() + window.first_day == date(2026, 9, 7).toordinal()  # a Monday
    assert reference - window.first_day + 1 == 94  # the weeks holding the last 90 days
    assert window.keeps(monday_of(window.oldest_week)) and not window.keeps(window.first_day - 735)
    assert Window.of(None) == Window(0, 0)


def test_fold_keeps_days_then_each_weeks_last_point_whatever_the_order():
    rng = random.Random(4)
    reference = 20_800
    points = [
        Point(day, rng.randint(0, 86_399), rng.randint(0, 10**6) / 10**4, rng.randint(0, 9), 1)
        for day in range(reference - 900, reference + 1)
        for _ in range(rng.randint(0, 2))
    ]
    window = Window.of(reference)
    shown = fold(points, window)
    assert fold(list(reversed(points)), window) == shown
    daily = [s.point for s in shown if not s.weekly]
    weekly = [s.point for s in shown if s.weekly]
    assert all(p.day >= window.first_day for p in daily)
    assert len({p.week for p in weekly}) == len(weekly)
    assert all(window.oldest_week <= p.week < week_of(window.first_day) for p in weekly)
    for p in weekly:  # the week's last: no later point that week
        assert all(
            (q.day, encode_point(q)) <= (p.day, encode_point(p)) for q in points if q.week == p.week
        )
    raws = [RawPoint(p.day, p.second, p.followers, 3, p.posts, 7) for p in points]
    assert [r.day for r in fold_raws(raws, window)] == [s.point.day for s in shown]


def test_a_rank_is_one_plus_the_entries_before_in_the_standings_order():
    table = ordinals(["dep-75", "dep-01", "dep-32"])
    assert table == {"dep-01": 0, "dep-32": 1, "dep-75": 2}
    scores = {"dep-01": 40.0, "dep-32": 63.0373, "dep-75": 40.0}
    index = b"".join(sorted(index_entry(scores[t], table[t]) for t in scores))
    ranks = {t: rank_in(index, index_entry(scores[t], table[t])) for t in scores}
    assert ranks == {"dep-32": 1, "dep-01": 2, "dep-75": 3}  # ties by id ascending


def _point_bytes(rng: random.Random, day: int) -> bytes:
    # few distinct seconds, followers and posts: ties on the first 10 bytes are frequent
    return encode_point(
        Point(day, rng.choice([0, 7, 86_399]), rng.randint(0, 30) / 10, rng.randint(0, 2), 1)
    )


@given(st.integers(0, 10_000), st.sampled_from([None, 20_100, 20_500, 20_800]))
def test_fold_stored_keeps_what_fold_keeps(seed: int, reference: int | None):
    rng = random.Random(seed)
    points = [
        _point_bytes(rng, day)
        for day in rng.sample(range(19_800, 20_810), rng.randint(0, 40))
        for _ in range(rng.randint(1, 3))
    ]
    window = Window.of(reference)
    kept = fold_stored(points, window)
    assert kept == [encode_point(s.point) for s in fold(map(decode_point, points), window)]
    assert fold_stored(list(reversed(points)), window) == kept  # whatever the order
    assert fold_stored(kept, window) == kept  # a folded series is folded


@given(st.integers(0, 10_000), st.sampled_from([None, 20_100, 20_500]))
def test_a_territorys_series_from_its_accounts_folded_points_is_fold_stored_of_all(
    seed: int, reference: int | None
):
    """Only the points with the greatest day, second, followers and posts of their day (or
    week) are scored; the series is what folding every scored point gives."""
    rng = random.Random(seed)
    raws = [
        pack_raw(
            day,
            rng.choice([5, 86_000]),
            rng.randint(100, 102),
            rng.randint(0, 9),
            rng.randint(0, 1),
            rng.randint(0, 50),
        )
        for day in rng.sample(range(19_900, 20_510), rng.randint(0, 30))
        for _ in range(rng.randint(1, 3))
    ]
    window = Window.of(reference)
    scores = [rng.randint(0, 10**6) / 10**4 for _ in raws]
    asked: list[int] = []

    def score(i: int) -> float:
        asked.append(i)
        return scores[i]

    folded = fold_account(raws, window)
    assert folded.series == fold_stored(raws, window)
    assert [raws[i] for i in folded.kept] == folded.series
    series = territory_series(raws, folded, score)
    assert series == fold_stored(
        [point_of_raw(r, s) for r, s in zip(raws, scores, strict=True)], window
    )
    assert len(set(asked)) == len(asked) <= len(raws)


def test_points_encoded_at_once_are_the_points_encoded_field_by_field():
    summary = RawPoint(20_500, 4_000, 15_000, 300, 20, 9_000).summary()
    epoch = epoch_of(20_500, 4_000)
    assert encode_raw_summary(summary, epoch) == encode_raw(raw_of_summary(summary, epoch))
    raw = RawPoint(20_500, 86_399, 2**40, 300, 999, 9_000)  # clamped: followers, posts
    point = Point(20_500, 86_399, 63.0373, 2**40, 999)
    assert point_of_raw(encode_raw(raw), 63.0373) == encode_point(point)
    assert decode_point(encode_point(point)) == Point(20_500, 86_399, 63.0373, 2**32 - 1, 255)


@given(st.integers(0, 10_000))
def test_index_entries_of_whole_series_are_each_days_and_each_weeks_last_sorted(seed: int):
    rng = random.Random(seed)
    window = Window.of(20_500)
    series = {
        ordinal: fold_stored([_point_bytes(rng, d) for d in range(19_900, 20_510)], window)
        for ordinal in rng.sample(range(500), 5)
    }
    days, weeks = index_entries(((s, o) for o, s in series.items()), window)
    want_days: dict[int, list[bytes]] = {}
    want_weeks: dict[int, list[bytes]] = {}
    for ordinal, points in series.items():
        for point in map(decode_point, points):
            entry = index_entry(point.score, ordinal)
            if point.day >= window.first_day:
                want_days.setdefault(point.day, []).append(entry)
            want_weeks[point.week] = [
                *[e for e in want_weeks.get(point.week, []) if e[3:] != entry[3:]],
                entry,
            ]
    assert days == {d: b"".join(sorted(e)) for d, e in sorted(want_days.items())}
    assert weeks == {w: b"".join(sorted(e)) for w, e in sorted(want_weeks.items())}
    assert list(days) == sorted(days) and min(days) == window.first_day
