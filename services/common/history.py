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

The scorer folds a batch's points here before writing them (`fold_stored`, `fold_account`,
`territory_series`, `index_entries`): a series with nothing stored yet (every one of a
rebuild's fresh generation) is stored as it is sent, its entries merged into each index in
one pass; the scripts fold point by point only into a series already stored.
"""

from __future__ import annotations

import struct
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Final

from services.common.clock import PARIS
from services.common.methodology import (
    SnapshotSummary,
    engagement_of,
    interactions_of,
    score_value,
)

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
    units = round(score * SCORE_SCALE)
    return 0 if units < 0 else SCORE_MAX if units > SCORE_MAX else units


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
        moment = time.gmtime(epoch_of(self.day, self.second))
        return SnapshotSummary(
            observed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", moment),
            event_id="history",
            followers=followers,
            follows=self.follows,
            posts=n,
            engagement=engagement_of(self.interactions, n, followers),
            likes_hidden=False,
        )

    def point(self, population: int) -> Point:
        """The territory's point for this account's day."""
        score = score_value(self.summary(), population)
        return Point(self.day, self.second, score, self.followers, self.posts)


RAW_BYTES: Final = 18


def raw_of_summary(summary: SnapshotSummary, epoch: int) -> RawPoint:
    """An account's point from one `ok` snapshot's summary."""
    day, second = day_of_epoch(epoch)
    n, followers = summary.posts, summary.followers
    return RawPoint(day, second, followers, summary.follows, n, interactions_of(summary))


# The stored forms as structs (a 3-byte field is packed as its high byte and low 2 bytes): a
# rebuild encodes every day of every account, twice.
_RAW_STRUCT: Final = struct.Struct(">HBHIBII")
_POINT_STRUCT: Final = struct.Struct(">HBHIBBH")
_POINT_OF_RAW: Final = struct.Struct(">10sBH")


def pack_raw(
    day: int, second: int, followers: int, follows: int, posts: int, interactions: int
) -> bytes:
    """An account's point's 18 stored bytes from its fields."""
    return _RAW_STRUCT.pack(
        day,
        second >> 16,
        second & 0xFFFF,
        followers if followers < U32_MAX else U32_MAX,
        posts if posts < POSTS_MAX else POSTS_MAX,
        follows if follows < U32_MAX else U32_MAX,
        interactions if interactions < U32_MAX else U32_MAX,
    )


def encode_raw(point: RawPoint) -> bytes:
    return pack_raw(
        point.day, point.second, point.followers, point.follows, point.posts, point.interactions
    )


def encode_raw_summary(summary: SnapshotSummary, epoch: int) -> bytes:
    """`encode_raw(raw_of_summary(summary, epoch))`, without the intermediate point (a
    rebuild encodes every day of every account)."""
    day, second = day_of_epoch(epoch)
    return pack_raw(
        day, second, summary.followers, summary.follows, summary.posts, interactions_of(summary)
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
    return [by_bytes[raw] for raw in fold_stored(by_bytes, window)]


def fold_stored(points: Iterable[bytes], window: Window) -> list[bytes]:
    """Stored points (a territory's 13 bytes or an account's 18: the day first, the greater
    bytes the later point) as the history keeps them under `window`, by day ascending: each
    day's last from the window's first day, each older kept week's last, nothing older. It is
    what the scripts store for these points alone, so a series folded here is written as it
    is (services/common/view/scripts/scorer.py)."""
    days: dict[int, bytes] = {}
    for point in points:
        day = point[0] << 8 | point[1]
        held = days.get(day)
        if held is None or point > held:
            days[day] = point
    first_day, oldest_week = window.first_day, window.oldest_week
    weeks: dict[int, bytes] = {}
    out: list[bytes] = []
    for day, point in days.items():
        week = (day + 3) // 7  # week_of, inlined: a rebuild folds every point
        if week < oldest_week:
            continue
        if day >= first_day:
            out.append(point)
        else:
            held = weeks.get(week)
            if held is None or point > held:
                weeks[week] = point
    out += weeks.values()
    out.sort()  # one point per day: the bytes' order is the days'
    return out


@dataclass(frozen=True, slots=True)
class FoldedAccount:
    """An account's points under a window: `series`, as stored (`fold_stored`); `kept`, for
    each of its points, the index of the given point it is; `ties`, for a point of `series`
    whose day (a weekly day: week) holds several given points with the same greatest day,
    second, followers and posts, their indexes. A territory's point there is one of those
    (its bytes are the same 10, then its score), so only they need a score
    (`territory_series`)."""

    series: list[bytes]
    kept: list[int]
    ties: dict[int, list[int]]


def fold_account(raws: Sequence[bytes], window: Window) -> FoldedAccount:
    """An account's points (`encode_raw`, any order) folded under `window`."""
    first_day, oldest_week = window.first_day, window.oldest_week
    heads: dict[int, bytes] = {}  # per day, or -1 - a weekly week: its greatest first 10 bytes
    best: dict[int, int] = {}  # the index of its greatest point
    tied: dict[int, list[int]] = {}
    for i, raw in enumerate(raws):
        day = raw[0] << 8 | raw[1]
        week = (day + 3) // 7  # week_of, inlined: a rebuild folds every point
        if week < oldest_week:
            continue
        bucket = day if day >= first_day else -1 - week
        head = raw[:10]
        held = heads.get(bucket)
        if held is None or head > held:
            heads[bucket] = head
            best[bucket] = i
            tied.pop(bucket, None)
        elif head == held:
            tied.setdefault(bucket, [best[bucket]]).append(i)
            if raw > raws[best[bucket]]:
                best[bucket] = i
    order = sorted(heads, key=heads.__getitem__)  # the heads start with distinct days
    kept = [best[bucket] for bucket in order]
    ties = {at: tied[bucket] for at, bucket in enumerate(order) if bucket in tied} if tied else {}
    return FoldedAccount([raws[i] for i in kept], kept, ties)


def territory_series(
    raws: Sequence[bytes], folded: FoldedAccount, score: Callable[[int], float]
) -> list[bytes]:
    """A territory's points from its account's, folded (`fold_account`), as `fold_stored`
    gives them for every point: `score(i)` is the territory's score of `raws[i]`."""
    ties = folded.ties
    if not ties:
        return [point_of_raw(raws[i], score(i)) for i in folded.kept]
    out: list[bytes] = []
    for at, i in enumerate(folded.kept):
        tied = ties.get(at)
        if tied is None:
            out.append(point_of_raw(raws[i], score(i)))
        else:
            out.append(max(point_of_raw(raws[j], score(j)) for j in tied))
    return out


def epoch_of(day: int, second: int) -> int:
    """The UTC epoch of a second of a Paris day."""
    return _midnight(day) + second


@lru_cache(maxsize=1 << 12)
def _midnight(day: int) -> int:
    value = date_of(day)
    return int(datetime(value.year, value.month, value.day, tzinfo=PARIS).timestamp())


def split_series(value: bytes) -> tuple[bytes, bytes]:
    """A territory's stored history: (the account link it was derived from, its points).
    The value is `<link length, 1 byte><link><points>`."""
    size = value[0]
    return value[1 : 1 + size], value[1 + size :]


def encode_point(point: Point) -> bytes:
    return pack_point(
        point.day, point.second, point.followers, point.posts, score_units(point.score)
    )


def pack_point(day: int, second: int, followers: int, posts: int, units: int) -> bytes:
    """A territory's point's 13 stored bytes from its fields (`units`: `score_units`)."""
    return _POINT_STRUCT.pack(
        day,
        second >> 16,
        second & 0xFFFF,
        followers if followers < U32_MAX else U32_MAX,
        posts if posts < POSTS_MAX else POSTS_MAX,
        units >> 16,
        units & 0xFFFF,
    )


def point_of_raw(raw: bytes, score: float) -> bytes:
    """A territory's stored point from its account's (`encode_raw`) and the territory's
    score: the first 10 bytes (day, second, followers, posts) are the same."""
    units = score_units(score)
    return _POINT_OF_RAW.pack(raw, units >> 16, units & 0xFFFF)


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


def index_entries(
    series: Iterable[tuple[Sequence[bytes], int]], window: Window
) -> tuple[dict[int, bytes], dict[int, bytes]]:
    """The rank indexes' entries of territories' folded series (`fold_stored`; with each
    territory's ordinal) when each is written whole: per day, the sorted entries of its
    daily points; per week, of each territory's last point of the week (a daily week's
    too). These are what HISTORY_APPLY's point-by-point path leaves for the same points."""
    days: dict[int, list[bytes]] = defaultdict(list)
    weeks: dict[int, list[bytes]] = defaultdict(list)
    first_day = window.first_day
    for points, ordinal in series:
        last_week, last_entry = -1, b""
        for point in points:
            day = point[0] << 8 | point[1]
            units = point[10] << 16 | point[11] << 8 | point[12]
            entry = ((SCORE_MAX - units) << 16 | ordinal).to_bytes(ENTRY_BYTES, "big")
            if day >= first_day:
                days[day].append(entry)
            week = (day + 3) // 7
            if week != last_week:  # by day ascending: a week's last point ends its run
                if last_entry:
                    weeks[last_week].append(last_entry)
                last_week = week
            last_entry = entry
        if last_entry:
            weeks[last_week].append(last_entry)
    return _sorted_entries(days), _sorted_entries(weeks)


def _sorted_entries(entries: dict[int, list[bytes]]) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for at in sorted(entries):
        held = entries[at]
        held.sort()
        out[at] = b"".join(held)
    return out


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
