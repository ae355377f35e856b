"""Methodology v1 (ARCHITECTURE.md): how one `ok` snapshot and a population become a score.

Scoring is split in two pure steps because several territories, with different populations,
can share one Instagram account:

1. `summarise_snapshot` reduces a snapshot to a `SnapshotSummary` (what any territory's score
   needs from it; one per account, stored compactly by the stream processor);
2. `score_summary` turns a summary and a population into a `Score`.

Both are deterministic to the bit: the engagement mean is computed from the exact integer sum
of interactions with a single correctly rounded division, so it does not depend on the order
of the posts, and every other step is a fixed sequence of IEEE operations. Timestamps have the
contract's fixed-width form (`2021-06-30T06:00:00Z`), whose string order is time order; the
window test and the compare-and-set order use plain string comparison, as a Redis Lua script
would.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Final

import orjson

from services.common.clock import format_timestamp, parse_timestamp
from services.common.contracts import METHODOLOGY_VERSION

__all__ = [
    "ACTIVE_SECONDS",
    "GAIN_PERIODS_DAYS",
    "METHODOLOGY_VERSION",
    "POINT_CURVES",
    "WEIGHTS",
    "WINDOW_HOURS",
    "FollowerGain",
    "Indicator",
    "Score",
    "SnapshotSummary",
    "active_since",
    "follower_gains",
    "follower_growth",
    "is_active",
    "is_newer",
    "rank",
    "ranking_key",
    "score_snapshot",
    "score_summary",
    "summarise_snapshot",
    "window_start",
]

# --- The contract's constants -----------------------------------------------------------------

WINDOW_HOURS: Final = 720  # posts published in (t - 720 h, t]
WINDOW_DAYS: Final = 30  # activity is posts per day over the window
ACTIVE_SECONDS: Final = 30 * 86400  # ranked while age <= 30 days against the watermark

ENGAGEMENT_PRIOR: Final = 0.01  # E* shrinks E toward this rate...
ENGAGEMENT_PRIOR_POSTS: Final = 3  # ...as if this many posts had it
ENGAGEMENT_FULL: Final = 0.05  # E* giving 100 points
REACH_FLOOR: Final = 0.001  # R giving 0 points
REACH_SPAN: Final = 500  # R = REACH_FLOOR * REACH_SPAN (0.5) gives 100 points
ACTIVITY_FULL: Final = 1.0  # posts per day giving 100 points
AUDIENCE_FLOOR: Final = 100  # followers giving 0 points
AUDIENCE_DECADES: Final = 4  # 100 -> 1,000,000 followers spans 0 -> 100 points
RATIO_DECADES: Final = 2  # Q = 1 -> 100 spans 0 -> 100 points

_LOG10_REACH_SPAN: Final = math.log10(REACH_SPAN)

WEIGHTS: Final[Mapping[str, int]] = MappingProxyType(
    {"engagement": 5, "reach": 4, "activity": 3, "audience": 2, "ratio": 1}
)
_W_ENGAGEMENT, _W_REACH, _W_ACTIVITY, _W_AUDIENCE, _W_RATIO = WEIGHTS.values()
_WEIGHT_TOTAL: Final = sum(WEIGHTS.values())  # 15

POINT_CURVES: Final[Mapping[str, Mapping[str, str | float | int]]] = MappingProxyType(
    {
        "engagement": MappingProxyType(
            {
                "points": "100*min(1, E*/full), E* = (n*E + prior_posts*prior)/(n + prior_posts)",
                "prior": ENGAGEMENT_PRIOR,
                "prior_posts": ENGAGEMENT_PRIOR_POSTS,
                "full": ENGAGEMENT_FULL,
            }
        ),
        "reach": MappingProxyType(
            {
                "points": "100*clamp(log10(R/floor)/log10(span))",
                "floor": REACH_FLOOR,
                "span": REACH_SPAN,
            }
        ),
        "activity": MappingProxyType(
            {"points": "100*min(1, A/full), A = n/days", "full": ACTIVITY_FULL, "days": WINDOW_DAYS}
        ),
        "audience": MappingProxyType(
            {
                "points": "100*clamp(log10(F/floor)/decades)",
                "floor": AUDIENCE_FLOOR,
                "decades": AUDIENCE_DECADES,
            }
        ),
        "ratio": MappingProxyType(
            {
                "points": "100*clamp(log10(Q)/decades), Q = followers/max(follows, 1)",
                "decades": RATIO_DECADES,
            }
        ),
    }
)

# The contract's timestamp shape; fixed width, so string order is time order. Calendar values
# are checked by clock.parse_timestamp where a timestamp is parsed, and by the event schema.
_TIMESTAMP_SHAPE: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_WINDOW: Final = timedelta(hours=WINDOW_HOURS)
_ACTIVE: Final = timedelta(seconds=ACTIVE_SECONDS)


def _check_shape(name: str, text: object) -> str:
    if type(text) is not str or not _TIMESTAMP_SHAPE.fullmatch(text):
        raise ValueError(f"{name}: not a contract timestamp (YYYY-MM-DDTHH:MM:SSZ): {text!r}")
    return text


def _check_count(name: str, value: object) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{name}: not an integer >= 0: {value!r}")
    return value


@lru_cache(maxsize=4096)
def window_start(observed_at: str) -> str:
    """The window's excluded lower bound `t - 720 h` (also the follower-growth reference)."""
    return format_timestamp(parse_timestamp(observed_at) - _WINDOW)


@lru_cache(maxsize=64)
def active_since(watermark: str) -> str:
    """The oldest `observed_at` still active (ranked) under this watermark: watermark - 30 days."""
    return format_timestamp(parse_timestamp(watermark) - _ACTIVE)


# --- Step 1: one snapshot -> its summary ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapshotSummary:
    """What a territory's score needs from one `ok` snapshot (shared by its territories)."""

    observed_at: str  # contract timestamp t
    event_id: str
    followers: int
    follows: int
    posts: int  # n: posts with published_at in (t - 720 h, t]
    engagement: float | None  # E; None when n = 0 or followers = 0
    likes_hidden: bool  # partial data: some post in the window had its likes hidden

    def __post_init__(self) -> None:
        _check_shape("observed_at", self.observed_at)
        if type(self.event_id) is not str or not self.event_id:
            raise ValueError(f"event_id: not a non-empty string: {self.event_id!r}")
        _check_count("followers", self.followers)
        _check_count("follows", self.follows)
        _check_count("posts", self.posts)
        if type(self.likes_hidden) is not bool:
            raise ValueError(f"likes_hidden: not a boolean: {self.likes_hidden!r}")
        if self.posts == 0 or self.followers == 0:
            if self.engagement is not None:
                raise ValueError("engagement must be null when posts = 0 or followers = 0")
        elif (
            type(self.engagement) is not float
            or not math.isfinite(self.engagement)
            or self.engagement < 0
        ):
            raise ValueError(f"engagement: not a finite float >= 0: {self.engagement!r}")

    def to_json(self) -> bytes:
        """Compact JSON (short keys, `v` = methodology version); floats round-trip exactly."""
        return orjson.dumps(
            {
                "v": METHODOLOGY_VERSION,
                "t": self.observed_at,
                "id": self.event_id,
                "fr": self.followers,
                "fg": self.follows,
                "n": self.posts,
                "e": self.engagement,
                "h": self.likes_hidden,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> SnapshotSummary:
        """Inverse of `to_json`; ValueError on anything else (another version included)."""
        data: Any = orjson.loads(raw)
        if not isinstance(data, dict) or data.keys() != _SUMMARY_KEYS:
            raise ValueError(f"not a snapshot summary: {raw!r}")
        if type(data["v"]) is not int or data["v"] != METHODOLOGY_VERSION:
            raise ValueError(f"snapshot summary of another methodology version: {data['v']!r}")
        return cls(
            observed_at=data["t"],
            event_id=data["id"],
            followers=data["fr"],
            follows=data["fg"],
            posts=data["n"],
            engagement=data["e"],
            likes_hidden=data["h"],
        )


_SUMMARY_KEYS: Final = frozenset({"v", "t", "id", "fr", "fg", "n", "e", "h"})


def summarise_snapshot(
    *,
    observed_at: str,
    event_id: str,
    followers: int,
    follows: int,
    recent_posts: Iterable[Mapping[str, Any]],
) -> SnapshotSummary:
    """Reduce one `ok` snapshot to its summary: the window's post count, E and the hidden flag."""
    start = window_start(observed_at)  # also validates observed_at
    _check_count("followers", followers)
    n = 0
    interactions = 0  # exact integer sum: E is then one correctly rounded division
    hidden = False
    shaped = _TIMESTAMP_SHAPE.fullmatch
    # The checks are inlined: this loop is the hot path of the scorer.
    for post in recent_posts:
        published = post["published_at"]
        if type(published) is not str or shaped(published) is None:
            _check_shape("published_at", published)
        if not start < published <= observed_at:
            continue
        comments = post["comments"]
        likes = post["likes"]
        likes_hidden = post["likes_hidden"]
        if type(comments) is not int or comments < 0:
            _check_count("comments", comments)
        if type(likes) is not int or likes < 0:
            _check_count("likes", likes)
        if type(likes_hidden) is not bool:
            raise ValueError(f"likes_hidden: not a boolean: {likes_hidden!r}")
        n += 1
        if likes_hidden:
            hidden = True  # Instagram reports 0 for hidden likes: count the comments only
            interactions += comments
        else:
            interactions += likes + comments
    engagement = engagement_of(interactions, n, followers)
    return SnapshotSummary(
        observed_at=observed_at,
        event_id=event_id,
        followers=followers,
        follows=follows,
        posts=n,
        engagement=engagement,
        likes_hidden=hidden,
    )


def engagement_of(interactions: int, posts: int, followers: int) -> float | None:
    """E from the window's interactions (likes + comments, comments only where likes are
    hidden): the mean over posts of interactions / followers is interactions / (posts ×
    followers), exactly, as one correctly rounded division; none without a post or a
    follower. The one place E is computed (summaries, the history's stored points, the day
    summaries' records)."""
    return interactions / (posts * followers) if posts and followers else None


def interactions_of(summary: SnapshotSummary) -> int:
    """The window's interactions of a summary (`engagement_of`'s inverse: E × posts ×
    followers, exact well below 10¹⁵ interactions)."""
    if summary.engagement is None:
        return 0
    return round(summary.engagement * summary.posts * summary.followers)


# --- Step 2: summary + population -> score -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Indicator:
    """One indicator: its raw value (before shrinkage), its points (0-100), n for activity."""

    value: float | int | None
    points: float
    posts: int | None = None


@dataclass(frozen=True, slots=True)
class Score:
    """A territory's score on one snapshot, with the breakdown of its five indicators."""

    score: float  # round(unrounded, 4): stored, compared and returned
    unrounded: float
    engagement: Indicator
    reach: Indicator
    activity: Indicator
    audience: Indicator
    ratio: Indicator
    likes_hidden: bool

    def indicators_dict(self) -> dict[str, dict[str, float | int | None]]:
        """The ARCHITECTURE `indicators` JSON object (unrounded values and points)."""
        return {
            "engagement": {"value": self.engagement.value, "points": self.engagement.points},
            "reach": {"value": self.reach.value, "points": self.reach.points},
            "activity": {
                "value": self.activity.value,
                "posts": self.activity.posts,
                "points": self.activity.points,
            },
            "audience": {"value": self.audience.value, "points": self.audience.points},
            "ratio": {"value": self.ratio.value, "points": self.ratio.points},
        }


def _points(
    summary: SnapshotSummary, population: int
) -> tuple[float | None, float, tuple[float, float, float, float, float]]:
    """The indicators' raw values that are not the summary's own (reach, ratio) and the five
    points (engagement, reach, activity, audience, ratio) of methodology v1."""
    _check_count("population", population)
    n = summary.posts
    followers = summary.followers

    e = summary.engagement
    if e is None:
        engagement_points = 0.0
    else:
        shrunk = (n * e + ENGAGEMENT_PRIOR_POSTS * ENGAGEMENT_PRIOR) / (n + ENGAGEMENT_PRIOR_POSTS)
        engagement_points = 100 * min(1.0, shrunk / ENGAGEMENT_FULL)

    reach = followers / population if population else None
    if not reach:  # None (population 0) or 0 (no followers)
        reach_points = 0.0
    else:
        decades = math.log10(reach / REACH_FLOOR) / _LOG10_REACH_SPAN
        reach_points = 100 * min(1.0, max(0.0, decades))  # clamped to [0, 1]

    activity_points = 100 * min(1.0, n / WINDOW_DAYS / ACTIVITY_FULL)

    if followers == 0:
        audience_points = 0.0
    else:
        decades = math.log10(followers / AUDIENCE_FLOOR) / AUDIENCE_DECADES
        audience_points = 100 * min(1.0, max(0.0, decades))

    ratio = followers / max(summary.follows, 1)
    decades = 0.0 if ratio == 0 else math.log10(ratio) / RATIO_DECADES
    ratio_points = 100 * min(1.0, max(0.0, decades))
    points = (engagement_points, reach_points, activity_points, audience_points, ratio_points)
    return reach, ratio, points


def _weighted(
    engagement_points: float,
    reach_points: float,
    activity_points: float,
    audience_points: float,
    ratio_points: float,
) -> float:
    """The unrounded score: the weighted mean of the five points."""
    return (
        _W_ENGAGEMENT * engagement_points
        + _W_REACH * reach_points
        + _W_ACTIVITY * activity_points
        + _W_AUDIENCE * audience_points
        + _W_RATIO * ratio_points
    ) / _WEIGHT_TOTAL


def score_summary(summary: SnapshotSummary, population: int) -> Score:
    """Score a snapshot summary for a territory of this population (methodology v1)."""
    reach, ratio, points = _points(summary, population)
    engagement_points, reach_points, activity_points, audience_points, ratio_points = points
    unrounded = _weighted(*points)
    n = summary.posts
    return Score(
        score=round(unrounded, 4),
        unrounded=unrounded,
        engagement=Indicator(summary.engagement, engagement_points),
        reach=Indicator(reach, reach_points),
        activity=Indicator(n / WINDOW_DAYS, activity_points, n),
        audience=Indicator(summary.followers, audience_points),
        ratio=Indicator(ratio, ratio_points),
        likes_hidden=summary.likes_hidden,
    )


def score_value(summary: SnapshotSummary, population: int) -> float:
    """`score_summary(summary, population).score` without the breakdown (a rebuild scores
    every day of every territory's history)."""
    _, _, points = _points(summary, population)
    return round(_weighted(*points), 4)


def score_snapshot(
    *,
    observed_at: str,
    event_id: str,
    followers: int,
    follows: int,
    recent_posts: Iterable[Mapping[str, Any]],
    population: int,
) -> Score:
    """Summarise one `ok` snapshot and score it for one population (both steps at once)."""
    summary = summarise_snapshot(
        observed_at=observed_at,
        event_id=event_id,
        followers=followers,
        follows=follows,
        recent_posts=recent_posts,
    )
    return score_summary(summary, population)


# --- Ranking, compare-and-set order, eligibility, informational items ---------------------------


def ranking_key(territory_id: str, score: float) -> tuple[float, str]:
    """Sort key of the ranking: score descending, then territory id ascending (as strings)."""
    return (-score, territory_id)


def rank(entries: Iterable[tuple[str, float]]) -> list[tuple[int, str, float]]:
    """Rank (territory id, score) pairs: distinct ranks 1..N, ties broken by id ascending."""
    ordered = sorted(entries, key=lambda entry: ranking_key(entry[0], entry[1]))
    ids = {territory_id for territory_id, _ in ordered}
    if len(ids) != len(ordered):
        raise ValueError("a territory appears twice in the entries to rank")
    return [(position, tid, score) for position, (tid, score) in enumerate(ordered, start=1)]


def is_newer(
    a_observed_at: str, a_event_id: str, b_observed_at: str | None, b_event_id: str | None
) -> bool:
    """Does snapshot a replace snapshot b? Later observed_at wins; equal: greater event_id wins.

    b_observed_at None means nothing is applied yet (a wins). Equal pairs are not newer, so
    re-applying the same event is a no-op.
    """
    _check_shape("a_observed_at", a_observed_at)
    if b_observed_at is None:
        return True
    _check_shape("b_observed_at", b_observed_at)
    return (a_observed_at, a_event_id) > (b_observed_at, b_event_id or "")


def is_active(observed_at: str, watermark: str) -> bool:
    """Is a territory whose latest `ok` snapshot is this one ranked (age <= 30 days)?"""
    return _check_shape("observed_at", observed_at) >= active_since(watermark)


def follower_growth(followers: int, previous_followers: int | None) -> float | None:
    """Relative follower growth (0.05 = +5 %) against the reference snapshot; None without one.

    The reference is the account's latest `ok` snapshot observed at or before
    `window_start(t)`; None as well when it had 0 followers (no relative growth from zero).
    """
    _check_count("followers", followers)
    if previous_followers is None:
        return None
    _check_count("previous_followers", previous_followers)
    if previous_followers == 0:
        return None
    return (followers - previous_followers) / previous_followers


# Follower gains over fixed periods (informational, not scored): shown on a territory's page.
GAIN_PERIODS_DAYS: Final = (7, 30, 90, 365)
GAIN_MIN_TOLERANCE_DAYS: Final = 3


@dataclass(frozen=True, slots=True)
class FollowerGain:
    """Followers gained over `days` days, against the snapshot observed at `since`."""

    days: int
    since: str
    followers_then: int
    gain: int
    gain_pct: float | None  # 100 × gain / followers_then; None when that was 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "since": self.since,
            "followers_then": self.followers_then,
            "gain": self.gain,
            "gain_pct": self.gain_pct,
        }


def follower_gains(
    observed_at: str,
    followers: int,
    earlier: Iterable[tuple[str, int]],
    periods: Iterable[int] = GAIN_PERIODS_DAYS,
) -> list[FollowerGain | None]:
    """Followers gained over each period D (days), in the order of `periods`.

    Against the newest of the `earlier` (observed_at, followers) snapshots observed at or
    before `t - D` days and no older than `t - D - max(3, D/4)` days; None when none is."""
    _check_shape("observed_at", observed_at)
    _check_count("followers", followers)
    snapshots = sorted(
        {(_check_shape("observed_at", t), _check_count("followers", f)) for t, f in earlier}
    )
    moment = parse_timestamp(observed_at)
    gains: list[FollowerGain | None] = []
    for days in periods:
        latest = format_timestamp(moment - timedelta(days=days))
        oldest = format_timestamp(
            moment - timedelta(days=days + max(GAIN_MIN_TOLERANCE_DAYS, days / 4))
        )
        chosen = None
        for snapshot in snapshots:  # ascending: the last one in range is the newest
            if oldest <= snapshot[0] <= latest:
                chosen = snapshot
        if chosen is None:
            gains.append(None)
            continue
        since, then = chosen
        gain = followers - then
        gains.append(FollowerGain(days, since, then, gain, 100 * gain / then if then else None))
    return gains
