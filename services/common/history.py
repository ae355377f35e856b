"""Daily history of a territory (pure: no I/O; docs/decisions.md §44).

A day is a Europe/Paris calendar day. A territory's point for a day is its last `ok`
snapshot observed that day: its score, followers and posts in the window. "Last" is by
`observed_at`, then, between two snapshots of the same second, by the greater followers,
then posts, so that the point is a function of the set of snapshots, whatever order they
arrive in: a late snapshot moves its day's point, a rebuild finds the same one.

The history keeps daily points for the ISO weeks that hold the last 90 days, then one point
per ISO week (the week's last point) for two years (104 weeks); the reference day is the
watermark's day. A point's rank is computed among the category's points of the same day (a
weekly point: among the category's weekly points of the same week), when it is read.

Stored form (services/common/view/keys.py `history_key`, docs/redis.md): a territory's points,
13 bytes each, by day ascending: day (2 bytes, days since 1970-01-01 of the Paris calendar
date), second of that Paris day (3), followers (4), posts (1), score × 10⁴ (3), all
big-endian; an account's points (`RawPoint`, 18 bytes): day, second, followers, posts, then
follows (4) and interactions (4). Comparing the bytes is the "last" order; the two orders
agree (the same snapshot wins in an account's points and in its territories') except between
two snapshots of one second with the same followers and posts (docs/decisions.md §44). Rank
indexes hold, per (category, day) and (category, week), 5-byte entries sorted ascending:
10⁶ − score × 10⁴ (3 bytes), then the territory's ordinal in its category (2 bytes; ids
ascending), which is the standings' order (score descending, id ascending).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Final

from services.common.clock import PARIS
from services.common.methodology import SnapshotSummary, score_summary

DAILY_DAYS: Final = 90
WEEKS_KEPT: Final = 104  # two years of weekly points
POINT_BYTES: Final = 13
ENTRY_BYTES: Final = 5
SCORE_SCALE: Final = 10_000
SCORE_MAX: Final = 100 * SCORE_SCALE
U32_MAX: Final = 2**32 - 1
POSTS_MAX: Final = 255
EPOCH_DAY: Final = date(1970, 1, 1)


@dataclass(frozen=True, slots=True, order=True)
class Point:
    """A territory's point for a day (`day`: days since 1970-01-01, Paris calendar)."""

    day: int
    second: int  # seconds since the Paris midnight that starts the day
    score: float  # rounded to 4 decimals, as the standings give it
    followers: int
    posts: int

    @property
    def week(self) -> int:
        return week_of(self.day)

    @property
    def date(self) -> date:
        return date_of(self.day)


@dataclass(frozen=True, slots=True)
class Window:
    """What the history keeps under a reference day: daily points from `first_day`, one
    point per week from week `oldest_week`, nothing older. No reference day keeps all."""

    first_day: int
    oldest_week: int

    @classmethod
    def of(cls, reference_day: int | None) -> Window:
        if reference_day is None:
            return cls(first_day=0, oldest_week=0)
        first_week = week_of(reference_day - DAILY_DAYS + 1)
        return cls(first_day=monday_of(first_week), oldest_week=first_week - WEEKS_KEPT)

    def is_daily(self, day: int) -> bool:
        return day >= self.first_day

    def keeps(self, day: int) -> bool:
        return week_of(day) >= self.oldest_week


def day_of_epoch(epoch: int) -> tuple[int, int]:
    """(day, second of that day) of a UTC epoch, in the Paris calendar. Paris days start
    and its clock changes on whole UTC hours, so an hour's start decides (cached: a rebuild
    asks for every snapshot)."""
    hour = epoch // 3600
    day, second = _hour_start(hour)
    return day, second + epoch - hour * 3600


@lru_cache(maxsize=1 << 16)
def _hour_start(hour: int) -> tuple[int, int]:
    epoch = hour * 3600
    local = datetime.fromtimestamp(epoch, tz=UTC).astimezone(PARIS)
    midnight = datetime(local.year, local.month, local.day, tzinfo=PARIS)
    return (local.date() - EPOCH_DAY).days, epoch - int(midnight.timestamp())


def date_of(day: int) -> date:
    return EPOCH_DAY + timedelta(days=day)


def day_number(value: date) -> int:
    return (value - EPOCH_DAY).days


def week_of(day: int) -> int:
    """The ISO week a day belongs to, numbered from the week of 1970-01-01 (a Thursday;
    weeks start on Monday, day 4 is the first Monday)."""
    return (day + 3) // 7


def monday_of(week: int) -> int:
    return week * 7 - 3


def iso_week_label(week: int) -> str:
    """`YYYY-Www` of a week number."""
    year, number, _ = date_of(monday_of(week)).isocalendar()
    return f"{year:04d}-W{number:02d}"


def score_units(score: float) -> int:
    """A rounded score as an integer of 10⁻⁴ points (exact: scores have 4 decimals)."""
    return min(SCORE_MAX, max(0, round(score * SCORE_SCALE)))


@dataclass(frozen=True, slots=True)
class RawPoint:
    """An account's point for a day: what a territory's point is computed from (its score
    needs the territory's population). `interactions` is the window's likes and comments
    (likes hidden: comments only), so E = interactions / (posts × followers) exactly as
    services.common.methodology.summarise_snapshot divides it."""

    day: int
    second: int
    followers: int
    follows: int
    posts: int
    interactions: int

    def summary(self) -> SnapshotSummary:
        """The summary a territory's score is computed from (methodology v1)."""
        n, followers = self.posts, self.followers
        moment = datetime.fromtimestamp(epoch_of(self.day, self.second), tz=UTC)
        return SnapshotSummary(
            observed_at=moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            event_id="history",
            followers=followers,
            follows=self.follows,
            posts=n,
            engagement=self.interactions / (n * followers) if n and followers else None,
            likes_hidden=False,
        )

    def point(self, population: int) -> Point:
        """The territory's point for this account's day."""
        score = score_summary(self.summary(), population).score
        return Point(self.day, self.second, score, self.followers, self.posts)


RAW_BYTES: Final = 18


def raw_of_summary(summary: SnapshotSummary, epoch: int) -> RawPoint:
    """An account's point from one `ok` snapshot's summary."""
    day, second = day_of_epoch(epoch)
    n, followers = summary.posts, summary.followers
    interactions = 0 if summary.engagement is None else round(summary.engagement * n * followers)
    return RawPoint(day, second, followers, summary.follows, n, interactions)


def encode_raw(point: RawPoint) -> bytes:
    return (
        point.day.to_bytes(2, "big")
        + point.second.to_bytes(3, "big")
        + min(point.followers, U32_MAX).to_bytes(4, "big")
        + bytes((min(point.posts, POSTS_MAX),))
        + min(point.follows, U32_MAX).to_bytes(4, "big")
        + min(point.interactions, U32_MAX).to_bytes(4, "big")
    )


def decode_raws(raw: bytes) -> list[RawPoint]:
    return [
        RawPoint(
            day=int.from_bytes(raw[at : at + 2], "big"),
            second=int.from_bytes(raw[at + 2 : at + 5], "big"),
            followers=int.from_bytes(raw[at + 5 : at + 9], "big"),
            posts=raw[at + 9],
            follows=int.from_bytes(raw[at + 10 : at + 14], "big"),
            interactions=int.from_bytes(raw[at + 14 : at + 18], "big"),
        )
        for at in range(0, len(raw) - RAW_BYTES + 1, RAW_BYTES)
    ]


def fold_raws(points: Iterable[RawPoint], window: Window) -> list[RawPoint]:
    """An account's points under a window (as `fold`, by the stored bytes' order)."""
    by_bytes = {encode_raw(p): p for p in points}
    days: dict[int, bytes] = {}
    for raw in by_bytes:
        day = int.from_bytes(raw[:2], "big")
        if day not in days or raw > days[day]:
            days[day] = raw
    weeks: dict[int, bytes] = {}
    out: list[RawPoint] = []
    for day, raw in days.items():
        if not window.keeps(day):
            continue
        if window.is_daily(day):
            out.append(by_bytes[raw])
        elif week_of(day) not in weeks or raw > weeks[week_of(day)]:
            weeks[week_of(day)] = raw
    out += [by_bytes[raw] for raw in weeks.values()]
    return sorted(out, key=lambda p: p.day)


def epoch_of(day: int, second: int) -> int:
    """The UTC epoch of a second of a Paris day."""
    value = date_of(day)
    midnight = datetime(value.year, value.month, value.day, tzinfo=PARIS)
    return int(midnight.timestamp()) + second


def split_series(value: bytes) -> tuple[bytes, bytes]:
    """A territory's stored history: (the account link it was derived from, its points).
    The value is `<link length, 1 byte><link><points>`."""
    size = value[0]
    return value[1 : 1 + size], value[1 + size :]


def encode_point(point: Point) -> bytes:
    return (
        point.day.to_bytes(2, "big")
        + point.second.to_bytes(3, "big")
        + min(point.followers, U32_MAX).to_bytes(4, "big")
        + bytes((min(point.posts, POSTS_MAX),))
        + score_units(point.score).to_bytes(3, "big")
    )


def decode_point(raw: bytes, at: int = 0) -> Point:
    return Point(
        day=int.from_bytes(raw[at : at + 2], "big"),
        second=int.from_bytes(raw[at + 2 : at + 5], "big"),
        followers=int.from_bytes(raw[at + 5 : at + 9], "big"),
        posts=raw[at + 9],
        score=int.from_bytes(raw[at + 10 : at + 13], "big") / SCORE_SCALE,
    )


def decode_points(raw: bytes) -> list[Point]:
    return [decode_point(raw, at) for at in range(0, len(raw) - POINT_BYTES + 1, POINT_BYTES)]


def encode_points(points: Iterable[Point]) -> bytes:
    return b"".join(encode_point(p) for p in sorted(points, key=lambda p: p.day))


def later(a: Point, b: Point) -> Point:
    """The later of two points (day, second, then followers, posts, score: the stored bytes'
    order)."""
    return a if encode_point(a) > encode_point(b) else b


def merge(points: Iterable[Point]) -> dict[int, Point]:
    """Each day's last point of a set of points."""
    out: dict[int, Point] = {}
    for point in points:
        held = out.get(point.day)
        out[point.day] = point if held is None else later(held, point)
    return out


@dataclass(frozen=True, slots=True)
class Shown:
    """A point as the history shows it: a day of the daily window or a week before it."""

    point: Point
    weekly: bool

    @property
    def period(self) -> str:
        return "week" if self.weekly else "day"


def fold(points: Iterable[Point], window: Window) -> list[Shown]:
    """The points the history keeps under `window`, oldest first: daily ones from the
    window's first day, each older week's last point, nothing before the oldest week."""
    days = merge(points)
    weeks: dict[int, Point] = {}
    daily: list[Point] = []
    for point in days.values():
        if not window.keeps(point.day):
            continue
        if window.is_daily(point.day):
            daily.append(point)
        else:
            held = weeks.get(point.week)
            weeks[point.week] = point if held is None else later(held, point)
    shown = [Shown(p, True) for p in weeks.values()] + [Shown(p, False) for p in daily]
    return sorted(shown, key=lambda s: s.point.day)


def index_entry(score: float, ordinal: int) -> bytes:
    """A point's entry in a rank index: ascending order is the standings' order."""
    return (SCORE_MAX - score_units(score)).to_bytes(3, "big") + ordinal.to_bytes(2, "big")


def rank_in(index: bytes, entry: bytes) -> int:
    """1 + the number of entries of a sorted index that come before `entry`."""
    low, high = 0, len(index) // ENTRY_BYTES
    while low < high:
        mid = (low + high) // 2
        if index[mid * ENTRY_BYTES : (mid + 1) * ENTRY_BYTES] < entry:
            low = mid + 1
        else:
            high = mid
    return low + 1


def ordinals(ids: Sequence[str]) -> dict[str, int]:
    """Each territory's ordinal in its category: its position among the ids, ascending."""
    ordered = sorted(ids)
    if len(ordered) > 0xFFFF:
        raise ValueError(f"a category of {len(ordered)} territories: ordinals take 2 bytes")
    return {tid: i for i, tid in enumerate(ordered)}


@dataclass(frozen=True, slots=True)
class RankedPoint:
    """A shown point with its rank among the category's points of its day (or week)."""

    shown: Shown
    rank: int | None
    ranked: int | None  # how many territories had a point that day (or week)

    @property
    def observed_at(self) -> str:
        """The point's snapshot time, as a contract timestamp (UTC)."""
        point = self.shown.point
        moment = datetime.fromtimestamp(epoch_of(point.day, point.second), tz=UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def rank_changes(
    points: Sequence[RankedPoint], *, places: int = 3
) -> list[tuple[RankedPoint, RankedPoint]]:
    """Consecutive daily points whose rank moved by at least `places`."""
    out: list[tuple[RankedPoint, RankedPoint]] = []
    daily = [p for p in points if not p.shown.weekly and p.rank is not None]
    for before, after in pairwise(daily):
        assert before.rank is not None and after.rank is not None
        if abs(before.rank - after.rank) >= places:
            out.append((before, after))
    return out
