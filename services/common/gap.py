"""What it takes to pass the territory just above: for each of the five indicators, the
smallest change of one raw input that would rank a territory ahead of a target, every other
input held fixed (pure: no I/O).

Each indicator has a lever (the raw input it moves) and a step:

| indicator | lever | step | cap (the search stops there) |
|---|---|---|---|
| activity | posts in the window (n) | +1 post, at the account's mean interactions | 30 posts |
| engagement | E | +0.1 percentage point (+0.001) | E* reaches ENGAGEMENT_FULL |
| reach | followers | +1 % of the current followers | R = REACH_FLOOR × REACH_SPAN |
| audience | followers | +1 % of the current followers | 10^6 followers |
| ratio | followers | +1 % of the current followers | followers = 100 × max(follows, 1) |

New posts come at the account's current mean interactions, so E is unchanged; from 0 posts
they come with 0 interactions (E becomes 0.0 when the account has followers). Followers after
k steps are `followers + ceil(followers × k / 100)`, with E held fixed. A changed summary is
scored with `methodology.score_summary`, and passing means ranking strictly ahead of the
target in `methodology.ranking_key` order (the rounded score descending, then the id).

The score is monotone in followers and in E, so those searches are binary; it is not
monotone in posts (the shrinkage can lower E* as posts are added when E is below the prior),
so that search is linear (at most 30 steps). When the target is not passed at the cap, the
lever alone cannot do it: the gap is impossible.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

from services.common.methodology import (
    ACTIVITY_FULL,
    AUDIENCE_DECADES,
    AUDIENCE_FLOOR,
    ENGAGEMENT_FULL,
    ENGAGEMENT_PRIOR,
    ENGAGEMENT_PRIOR_POSTS,
    RATIO_DECADES,
    REACH_FLOOR,
    REACH_SPAN,
    WINDOW_DAYS,
    SnapshotSummary,
    ranking_key,
    score_summary,
)

__all__ = [
    "ACTIVITY_CAP_POSTS",
    "AUDIENCE_CAP_FOLLOWERS",
    "ENGAGEMENT_STEPS_PER_UNIT",
    "INDICATOR_LEVERS",
    "Gap",
    "engagement_after",
    "followers_after",
    "gaps_to_pass",
    "passes",
]

# Posts in the window that give full activity points (A = n / 30 days reaches 1.0 per day).
ACTIVITY_CAP_POSTS: Final = math.ceil(ACTIVITY_FULL * WINDOW_DAYS)
AUDIENCE_CAP_FOLLOWERS: Final = AUDIENCE_FLOOR * 10**AUDIENCE_DECADES  # 1,000,000
RATIO_CAP: Final = 10**RATIO_DECADES  # Q = 100 gives full ratio points
ENGAGEMENT_STEPS_PER_UNIT: Final = 1000  # one step is 0.001 of E: 0.1 percentage point
FOLLOWER_STEP_PERCENT: Final = 1

INDICATOR_LEVERS: Final = {
    "engagement": "engagement",
    "reach": "followers",
    "activity": "posts",
    "audience": "followers",
    "ratio": "followers",
}


@dataclass(frozen=True, slots=True)
class Gap:
    """One indicator's lever: the steps, the input before and after, the score it gives.

    `possible` false: even at the cap (`cap`, the input's value there) the target is not
    passed; `steps`, `after` and `score` are then None."""

    indicator: str
    lever: str  # "posts" | "engagement" | "followers"
    possible: bool
    steps: int | None
    before: int | float | None
    after: int | float | None
    score: float | None
    cap: int | float | None

    def to_dict(self) -> dict[str, Any]:
        """The API's JSON object (without the indicator, which is its key)."""
        return {
            "lever": self.lever,
            "possible": self.possible,
            "steps": self.steps,
            "before": self.before,
            "after": self.after,
            "score": self.score,
            "cap": self.cap,
        }


def passes(territory_id: str, score: float, target_id: str, target_score: float) -> bool:
    """Does a territory with this (rounded) score rank strictly ahead of the target?"""
    return ranking_key(territory_id, score) < ranking_key(target_id, target_score)


def engagement_after(engagement: float, steps: int) -> float:
    """E after `steps` steps of +0.001."""
    return engagement + steps / ENGAGEMENT_STEPS_PER_UNIT


def followers_after(followers: int, steps: int) -> int:
    """Followers after `steps` steps of +1 % of the current followers (rounded up)."""
    return followers + -(-followers * steps * FOLLOWER_STEP_PERCENT // 100)


def _with_posts(summary: SnapshotSummary, posts: int) -> SnapshotSummary:
    engagement = summary.engagement
    if summary.followers == 0:
        engagement = None
    elif engagement is None:  # no posts before: the new ones come with no interactions
        engagement = 0.0
    return replace(summary, posts=posts, engagement=engagement)


def _shrunk_is_full(posts: int, engagement: float) -> bool:
    shrunk = (posts * engagement + ENGAGEMENT_PRIOR_POSTS * ENGAGEMENT_PRIOR) / (
        posts + ENGAGEMENT_PRIOR_POSTS
    )
    return shrunk / ENGAGEMENT_FULL >= 1


def _engagement_cap_steps(posts: int, engagement: float) -> int:
    """The fewest steps of E after which E* gives full engagement points."""
    needed = (ENGAGEMENT_FULL * (posts + ENGAGEMENT_PRIOR_POSTS)) / posts - (
        ENGAGEMENT_PRIOR_POSTS * ENGAGEMENT_PRIOR / posts
    )
    steps = max(0, math.ceil((needed - engagement) * ENGAGEMENT_STEPS_PER_UNIT))
    # The estimate is within a step or two of the exact grid point: settle it exactly.
    while steps > 0 and _shrunk_is_full(posts, engagement_after(engagement, steps - 1)):
        steps -= 1
    while not _shrunk_is_full(posts, engagement_after(engagement, steps)):
        steps += 1
    return steps


def _follower_cap_steps(followers: int, cap: int) -> int:
    """The fewest steps after which followers reach `cap` (0 when they already do)."""
    if followers >= cap:
        return 0
    # ceil(f k / 100) >= m  <=>  f k > 100 (m - 1)
    steps = 100 * (cap - followers - 1) // (followers * FOLLOWER_STEP_PERCENT) + 1
    while steps > 1 and followers_after(followers, steps - 1) >= cap:
        steps -= 1
    while followers_after(followers, steps) < cap:
        steps += 1
    return steps


def _first_linear(cap_steps: int, passing: Callable[[int], bool]) -> int | None:
    for steps in range(1, cap_steps + 1):
        if passing(steps):
            return steps
    return None


def _first_binary(cap_steps: int, passing: Callable[[int], bool]) -> int | None:
    if cap_steps < 1 or not passing(cap_steps):
        return None
    low, high = 1, cap_steps  # passing(high); the answer is in [low, high]
    while low < high:
        middle = (low + high) // 2
        if passing(middle):
            high = middle
        else:
            low = middle + 1
    return high


def gaps_to_pass(
    summary: SnapshotSummary,
    population: int,
    territory_id: str,
    target_score: float,
    target_id: str,
) -> dict[str, Gap]:
    """For each indicator, the smallest change of its lever alone that puts the territory
    strictly ahead of the target (`target_score` rounded, as ranked), or impossible.

    A territory already ahead of the target needs 0 steps of every lever."""

    def score_of(changed: SnapshotSummary) -> float:
        return score_summary(changed, population).score

    def ahead(changed: SnapshotSummary) -> bool:
        return passes(territory_id, score_of(changed), target_id, target_score)

    current_ahead = ahead(summary)
    gaps: dict[str, Gap] = {}

    def found(
        indicator: str,
        lever: str,
        before: int | float | None,
        cap: int | float | None,
        steps: int | None,
        change: Callable[[int], tuple[int | float, SnapshotSummary]] | None,
    ) -> None:
        if current_ahead:
            steps, after, score = 0, before, score_of(summary)
        elif steps is None or change is None:
            gaps[indicator] = Gap(indicator, lever, False, None, before, None, None, cap)
            return
        else:
            after, changed = change(steps)
            score = score_of(changed)
        gaps[indicator] = Gap(indicator, lever, True, steps, before, after, score, cap)

    # Engagement: E + 0.001 k, up to full points; impossible without E (no posts, followers).
    e = summary.engagement
    if e is None:
        found("engagement", "engagement", None, None, None, None)
    else:

        def with_engagement(steps: int) -> tuple[float, SnapshotSummary]:
            value = engagement_after(e, steps)
            return value, replace(summary, engagement=value)

        cap_steps = _engagement_cap_steps(summary.posts, e)
        steps = _first_binary(cap_steps, lambda k: ahead(with_engagement(k)[1]))
        found("engagement", "engagement", e, engagement_after(e, cap_steps), steps, with_engagement)

    # Activity: +1 post at a time, up to 30 in the window (linear: not monotone).
    n = summary.posts
    cap_posts = max(n, ACTIVITY_CAP_POSTS)

    def with_posts(steps: int) -> tuple[int, SnapshotSummary]:
        return n + steps, _with_posts(summary, n + steps)

    steps = _first_linear(cap_posts - n, lambda k: ahead(with_posts(k)[1]))
    found("activity", "posts", n, cap_posts, steps, with_posts)

    # Reach, audience, ratio: +1 % of the followers at a time, each up to its own cap.
    followers = summary.followers

    def with_followers(steps: int) -> tuple[int, SnapshotSummary]:
        value = followers_after(followers, steps)
        return value, replace(summary, followers=value)

    caps = {
        "reach": math.ceil(REACH_FLOOR * REACH_SPAN * population),
        "audience": AUDIENCE_CAP_FOLLOWERS,
        "ratio": RATIO_CAP * max(summary.follows, 1),
    }
    for indicator, cap in caps.items():
        if followers == 0:  # +1 % of nothing is nothing
            found(indicator, "followers", 0, None, None, None)
            continue
        cap_steps = _follower_cap_steps(followers, cap)
        steps = _first_binary(cap_steps, lambda k: ahead(with_followers(k)[1]))
        cap_value = followers_after(followers, cap_steps)
        found(indicator, "followers", followers, cap_value, steps, with_followers)
    return {name: gaps[name] for name in INDICATOR_LEVERS}
