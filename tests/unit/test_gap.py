"""What it takes to pass the next one (services/common/gap.py): each lever's answer, checked
against the methodology recomputed here from the definitions (score_summary + ranking_key),
on generated cases and on hand-checked ones."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services.common.gap import Gap, gaps_to_pass, passes
from services.common.methodology import (
    ENGAGEMENT_FULL,
    SnapshotSummary,
    ranking_key,
    score_summary,
)

T = "2021-06-30T06:00:00Z"
EVENT = "e" * 64
INDICATORS = ["engagement", "reach", "activity", "audience", "ratio"]


def summary(followers: int, follows: int, posts: int, engagement: float | None) -> SnapshotSummary:
    return SnapshotSummary(T, EVENT, followers, follows, posts, engagement, False)


# --- the definitions, written again -----------------------------------------------------------


def value_after(base: SnapshotSummary, lever: str, steps: int) -> int | float:
    """The lever's input after `steps` steps, from the brief's definitions."""
    if lever == "posts":
        return base.posts + steps
    if lever == "engagement":
        assert base.engagement is not None
        return base.engagement + steps / 1000
    return base.followers + -(-base.followers * steps // 100)  # + ceil(followers × k / 100)


def changed(base: SnapshotSummary, lever: str, value: int | float) -> SnapshotSummary:
    """The summary with one input changed, every other held (E too, but for new posts)."""
    if lever == "posts":
        engagement = base.engagement
        if base.followers == 0:
            engagement = None
        elif engagement is None:
            engagement = 0.0  # the first posts come with no interactions
        return replace(base, posts=int(value), engagement=engagement)
    if lever == "engagement":
        return replace(base, engagement=float(value))
    return replace(base, followers=int(value))


def ahead(base: SnapshotSummary, population: int, tid: str, target: tuple[str, float]) -> bool:
    score = score_summary(base, population).score
    return ranking_key(tid, score) < ranking_key(target[0], target[1])


def shrunk(posts: int, engagement: float) -> float:
    return (posts * engagement + 3 * 0.01) / (posts + 3)


def first_step_reaching(base: SnapshotSummary, full: float) -> int:
    """The fewest +1 % steps after which the followers are at least `full`."""
    low, high = 0, 1
    while value_after(base, "followers", high) < full:
        high *= 2
    while low < high:
        middle = (low + high) // 2
        if value_after(base, "followers", middle) >= full:
            high = middle
        else:
            low = middle + 1
    return high


# --- generated cases --------------------------------------------------------------------------


@st.composite
def cases(draw: st.DrawFn) -> tuple[SnapshotSummary, int, str, tuple[str, float]]:
    followers = draw(st.one_of(st.integers(0, 3_000), st.integers(0, 3_000_000)))
    follows = draw(st.integers(0, 20_000))
    posts = draw(st.integers(0, 40))
    engagement = None
    if posts and followers:
        engagement = draw(st.floats(0, 0.12, allow_nan=False, allow_infinity=False))
    population = draw(st.integers(0, 2_000_000))
    base = summary(followers, follows, posts, engagement)
    own = score_summary(base, population).score
    target_score = round(min(100.0, own + draw(st.floats(0, 40))), 4)
    tid, target_id = draw(st.sampled_from([("dep-32", "dep-01"), ("dep-01", "dep-32")]))
    assume(not ahead(base, population, tid, (target_id, target_score)))  # it is behind now
    return base, population, tid, (target_id, target_score)


@settings(max_examples=300, deadline=None)
@given(cases())
def test_every_possible_gap_passes_and_one_step_less_does_not(case):
    base, population, tid, target = case
    gaps = gaps_to_pass(base, population, tid, target[1], target[0])
    assert list(gaps) == INDICATORS
    for gap in gaps.values():
        if not gap.possible:
            continue
        assert gap.steps is not None and gap.steps >= 1
        assert gap.after == value_after(base, gap.lever, gap.steps)
        after = changed(base, gap.lever, gap.after)
        assert gap.score == score_summary(after, population).score
        assert ahead(after, population, tid, target)
        # one step less does not pass; for posts (not monotone) no smaller number of steps does
        smaller = range(gap.steps) if gap.lever == "posts" else [gap.steps - 1]
        for steps in smaller:
            fewer = changed(base, gap.lever, value_after(base, gap.lever, steps)) if steps else base
            assert not ahead(fewer, population, tid, target), (gap, steps)


@settings(max_examples=300, deadline=None)
@given(cases())
def test_a_gap_is_impossible_exactly_when_the_cap_does_not_pass(case):
    base, population, tid, target = case
    gaps = gaps_to_pass(base, population, tid, target[1], target[0])
    for name, gap in gaps.items():
        assert gap.before == (
            base.engagement
            if gap.lever == "engagement"
            else base.posts
            if gap.lever == "posts"
            else base.followers
        )
        if gap.cap is None:  # no lever to pull: no E, or +1 % of no followers
            assert not gap.possible
            assert base.engagement is None if name == "engagement" else base.followers == 0
            continue
        at_cap = changed(base, gap.lever, gap.cap)
        assert gap.possible == ahead(at_cap, population, tid, target), gap
        if not gap.possible:
            assert gap.steps is None and gap.after is None and gap.score is None


@settings(max_examples=200, deadline=None)
@given(cases())
def test_each_cap_is_where_its_indicator_reaches_full_points(case):
    base, population, _tid, _target = case
    gaps = gaps_to_pass(base, population, "dep-32", 100.0, "dep-01")
    assert gaps["activity"].cap == max(base.posts, 30)
    if base.engagement is not None:
        cap = gaps["engagement"].cap
        steps = round((cap - base.engagement) * 1000)
        assert cap == value_after(base, "engagement", steps)
        assert shrunk(base.posts, cap) / ENGAGEMENT_FULL >= 1
        if steps:  # the step before the cap is short of full points
            before = value_after(base, "engagement", steps - 1)
            assert shrunk(base.posts, before) / ENGAGEMENT_FULL < 1
    if base.followers:
        for name, full in (
            ("reach", population / 2),
            ("audience", 1_000_000),
            ("ratio", 100 * max(base.follows, 1)),
        ):
            steps = first_step_reaching(base, full)
            assert gaps[name].cap == value_after(base, "followers", steps), name


# --- hand-checked examples ---------------------------------------------------------------------

# The worked example of ARCHITECTURE.md: score 63.0373.
WORKED = summary(15_000, 300, 20, 9_000 / (20 * 15_000))


def test_the_worked_example_against_a_target_at_64():
    gaps = gaps_to_pass(WORKED, 200_000, "dep-32", 64.0, "dep-01")
    # n = 21: E* = 0.66/24, score 63.7764; n = 22: E* = 0.69/25, activity 73.33: 64.5097
    assert gaps["activity"] == Gap("activity", "posts", True, 2, 20, 22, 64.5097, 30)
    # E = 0.031 gives 63.6170; E = 0.032: E* = 0.67/23, 58.26 points: 64.1967
    engagement = gaps["engagement"]
    assert (engagement.steps, engagement.after, engagement.score) == (2, 0.032, 64.1967)
    # +15 % of the followers (17,250): 64.0416; +14 % (17,100) is short
    for name in ("reach", "audience", "ratio"):
        gap = gaps[name]
        assert (gap.lever, gap.steps, gap.after, gap.score) == ("followers", 15, 17_250, 64.0416)
    assert score_summary(replace(WORKED, followers=17_100), 200_000).score < 64.0
    assert (gaps["reach"].cap, gaps["audience"].cap, gaps["ratio"].cap) == (
        100_050,  # +567 %: the first 1 % step at or above 100,000 followers (R = 0.5)
        1_000_050,
        30_000,  # Q = 100 with 300 follows
    )


def test_the_first_posts_of_an_account_come_with_no_interactions():
    quiet = summary(1_500, 300, 0, None)
    assert score_summary(quiet, 200_000).score == 14.8961
    gaps = gaps_to_pass(quiet, 200_000, "dep-32", 20.0, "dep-01")
    # one post, E = 0: E* = 0.03/4 gives 15 points, activity 3.33: 20.5627
    assert gaps["activity"] == Gap("activity", "posts", True, 1, 0, 1, 20.5627, 30)
    assert gaps["engagement"] == Gap(
        "engagement", "engagement", False, None, None, None, None, None
    )


def test_a_tie_on_the_rounded_score_goes_to_the_smaller_id():
    assert passes("dep-01", 50.0, "dep-32", 50.0)
    assert not passes("dep-32", 50.0, "dep-01", 50.0)
    own = score_summary(WORKED, 200_000).score
    # level with the target already: the smaller id is ahead with no change at all
    assert all(
        gap.steps == 0 and gap.after == gap.before
        for gap in gaps_to_pass(WORKED, 200_000, "dep-01", own, "dep-32").values()
    )
    # the greater id must score strictly more: one post is enough
    assert gaps_to_pass(WORKED, 200_000, "dep-99", own, "dep-32")["activity"].steps == 1


def test_a_target_out_of_reach_of_every_lever_alone_is_impossible():
    small = summary(100, 0, 30, 0.02)  # 30 posts already: activity is at its cap
    gaps = gaps_to_pass(small, 1_000, "dep-32", 99.0, "dep-01")
    assert [gap.possible for gap in gaps.values()] == [False] * 5
    assert gaps["activity"].cap == 30 and gaps["activity"].before == 30


def test_no_follower_lever_from_zero_followers():
    empty = summary(0, 10, 5, None)
    gaps = gaps_to_pass(empty, 1_000, "dep-32", 10.0, "dep-01")
    for name in ("reach", "audience", "ratio", "engagement"):
        assert not gaps[name].possible and gaps[name].cap is None
    # posts still score activity points (2/3 of a point each): 15 posts tie at 10.0, and a
    # tie goes to the smaller id (dep-01): 16 are needed
    assert gaps["activity"] == Gap("activity", "posts", True, 11, 5, 16, 10.6667, 30)


@pytest.mark.parametrize(
    ("population", "expected"),
    [(0, 1_000), (2_000, 1_000), (2_001, 1_010)],  # the reach cap: ceil(0.5 × population)
)
def test_the_reach_cap_follows_the_population(population, expected):
    gap = gaps_to_pass(summary(1_000, 0, 0, None), population, "dep-32", 100.0, "dep-01")["reach"]
    assert gap.cap == expected and not gap.possible
