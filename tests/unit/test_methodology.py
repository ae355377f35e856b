"""Methodology v1 (ARCHITECTURE.md): the worked example, every edge case, and properties."""

from __future__ import annotations

import itertools
import math
from datetime import timedelta
from fractions import Fraction

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.clock import format_timestamp, parse_timestamp
from services.common.methodology import (
    ACTIVE_SECONDS,
    METHODOLOGY_VERSION,
    POINT_CURVES,
    WEIGHTS,
    Indicator,
    Score,
    SnapshotSummary,
    active_since,
    follower_growth,
    is_active,
    is_newer,
    rank,
    ranking_key,
    score_snapshot,
    score_summary,
    score_value,
    summarise_snapshot,
    window_start,
)

T = "2021-06-30T06:00:00Z"
T_MOMENT = parse_timestamp(T)


def at(**delta: float) -> str:
    """The contract timestamp of T shifted by a timedelta."""
    return format_timestamp(T_MOMENT + timedelta(**delta))


def post(published_at: str, likes: int = 0, comments: int = 0, hidden: bool = False) -> dict:
    return {
        "id": "1789",
        "published_at": published_at,
        "likes": likes,
        "comments": comments,
        "likes_hidden": hidden,
    }


def summarise(posts: list[dict], followers: int = 15000, follows: int = 300) -> SnapshotSummary:
    return summarise_snapshot(
        observed_at=T, event_id="e1", followers=followers, follows=follows, recent_posts=posts
    )


def summary(
    followers: int = 15000,
    follows: int = 300,
    posts: int = 20,
    engagement: float | None = 0.03,
    likes_hidden: bool = False,
) -> SnapshotSummary:
    if not (posts and followers):
        engagement = None  # the contract: null without posts or followers
    return SnapshotSummary(T, "e1", followers, follows, posts, engagement, likes_hidden)


# --- The worked example -----------------------------------------------------------------------

# The `indicators` object of ARCHITECTURE.md's standings example, verbatim.
WORKED_EXAMPLE_INDICATORS = orjson.loads(
    """{"engagement": {"value": 0.03, "points": 54.78260869565217},
        "reach": {"value": 0.075, "points": 69.47321609278089},
        "activity": {"value": 0.6666666666666666, "posts": 20, "points": 66.66666666666666},
        "audience": {"value": 15000, "points": 54.402281476392034},
        "ratio": {"value": 50.0, "points": 84.94850021680094}}"""
)

EVEN = [450] * 20
UNEVEN = [3000, 1, 2, 997, 500, 500, 250, 250, 125, 125, 1000, 750, 250, 400, 100, 50, 50, 300,
          200, 150]  # fmt: skip


def worked_example_posts(interactions: list[int]) -> list[dict]:
    # Spread over the window, newest first as the Graph API returns them; likes and comments
    # split unevenly so that only their sum matters.
    return [
        post(at(hours=-(i * 30 + 1)), likes=total - total // 10, comments=total // 10)
        for i, total in enumerate(interactions)
    ]


@pytest.mark.parametrize("interactions", [EVEN, UNEVEN, UNEVEN[::-1]])
def test_worked_example_reproduces_the_contract_figures_exactly(interactions: list[int]) -> None:
    assert sum(interactions) == 9000
    score = score_snapshot(
        observed_at=T,
        event_id="e1",
        followers=15000,
        follows=300,
        recent_posts=worked_example_posts(interactions),
        population=200_000,
    )
    indicators = score.indicators_dict()
    assert indicators == WORKED_EXAMPLE_INDICATORS
    # == alone would accept 15000.0 for 15000 and True for 1: compare the JSON text as well
    assert orjson.dumps(indicators) == orjson.dumps(WORKED_EXAMPLE_INDICATORS)
    assert [round(getattr(score, name).points, 4) for name in WEIGHTS] == [
        54.7826,
        69.4732,
        66.6667,
        54.4023,
        84.9485,
    ]
    assert score.score == 63.0373
    assert score.likes_hidden is False


def test_indicators_dict_has_the_contract_keys_in_order() -> None:
    indicators = score_summary(summary(), 200_000).indicators_dict()
    assert list(indicators) == ["engagement", "reach", "activity", "audience", "ratio"]
    assert list(indicators["activity"]) == ["value", "posts", "points"]
    for name in ("engagement", "reach", "audience", "ratio"):
        assert list(indicators[name]) == ["value", "points"]


def test_score_is_the_weighted_mean_of_unrounded_points_rounded_to_4_places() -> None:
    score = score_summary(summary(), 200_000)
    points = [getattr(score, name).points for name in WEIGHTS]
    weighted = sum(w * p for w, p in zip(WEIGHTS.values(), points, strict=True)) / 15
    assert score.unrounded == pytest.approx(weighted, rel=1e-15)
    assert score.score == round(score.unrounded, 4)


def test_weights_and_version_are_the_contracts() -> None:
    assert dict(WEIGHTS) == {"engagement": 5, "reach": 4, "activity": 3, "audience": 2, "ratio": 1}
    assert set(POINT_CURVES) == set(WEIGHTS)
    assert METHODOLOGY_VERSION == 1


# --- Hand-computed example with hidden likes -----------------------------------------------------


def test_small_hand_computed_example_with_hidden_likes() -> None:
    # 200 followers, 400 follows, population 1,000; three posts in the window, one with its likes
    # hidden (Instagram says 0 likes; its 4 comments count, nothing else):
    #   interactions 12 + 4 + 6 = 22; E = 22 / (3 * 200) = 0.036667
    #   E* = (3 * 0.036667 + 3 * 0.01) / 6 = 0.023333 -> 100 * 0.023333 / 0.05 = 46.6667
    #   R = 0.2 -> 100 * log10(200) / log10(500) = 85.2559
    #   A = 3 / 30 = 0.1 -> 10;  F = 200 -> 100 * log10(2) / 4 = 7.5257;  Q = 0.5 -> 0
    #   score = (5 * 46.6667 + 4 * 85.2559 + 3 * 10 + 2 * 7.5257 + 0) / 15 = 41.2939
    posts = [
        post(at(days=-1), likes=10, comments=2),
        post(at(days=-2), likes=0, comments=4, hidden=True),
        post(at(days=-3), likes=6, comments=0),
    ]
    s = summarise(posts, followers=200, follows=400)
    assert (s.posts, s.likes_hidden) == (3, True)
    score = score_summary(s, 1000)
    assert score.engagement.value == pytest.approx(0.036667, abs=5e-7)
    assert score.engagement.points == pytest.approx(46.6667, abs=5e-5)
    assert score.reach.value == 0.2
    assert score.reach.points == pytest.approx(85.2559, abs=5e-5)
    assert (score.activity.value, score.activity.posts, score.activity.points) == (0.1, 3, 10.0)
    assert score.audience.points == pytest.approx(7.5257, abs=5e-5)
    assert (score.ratio.value, score.ratio.points) == (0.5, 0.0)
    assert score.score == 41.2939
    assert score.likes_hidden is True


def test_hidden_likes_count_comments_only_whatever_the_likes_field_says() -> None:
    hidden = summarise([post(at(days=-1), likes=999, comments=30, hidden=True)], followers=1000)
    assert hidden.engagement == 30 / 1000
    assert hidden.likes_hidden is True


def test_hidden_likes_outside_the_window_do_not_flag_partial_data() -> None:
    s = summarise([post(at(days=-40), comments=3, hidden=True), post(at(days=-1), likes=5)])
    assert (s.posts, s.likes_hidden) == (1, False)


# --- Edge cases ----------------------------------------------------------------------------------


def test_no_post_in_the_window_gives_null_engagement_and_zero_activity() -> None:
    score = score_summary(summarise([post(at(days=-31), likes=100)]), 200_000)
    assert score.engagement.value is None
    assert score.engagement.points == 0.0
    assert (score.activity.value, score.activity.posts, score.activity.points) == (0.0, 0, 0.0)
    rest = 4 * score.reach.points + 2 * score.audience.points + 1 * score.ratio.points
    assert score.unrounded == rest / 15


def test_zero_followers_nulls_engagement_and_zeroes_reach_audience_and_ratio() -> None:
    s = summarise([post(at(days=-1), likes=3, comments=1)], followers=0, follows=50)
    assert (s.posts, s.engagement) == (1, None)
    score = score_summary(s, 200_000)
    assert score.engagement == Indicator(None, 0.0)
    assert (score.reach.value, score.reach.points) == (0.0, 0.0)
    assert (score.audience.value, score.audience.points) == (0, 0.0)
    assert (score.ratio.value, score.ratio.points) == (0.0, 0.0)
    assert score.unrounded == 3 * score.activity.points / 15


def test_zero_population_gives_null_reach_and_zero_points() -> None:
    score = score_summary(summary(), 0)
    assert (score.reach.value, score.reach.points) == (None, 0.0)
    assert score.indicators_dict()["reach"] == {"value": None, "points": 0.0}


def test_zero_follows_divides_by_one() -> None:
    score = score_summary(summary(followers=5000, follows=0), 200_000)
    assert score.ratio.value == 5000.0
    assert score.ratio.points == 100.0


def test_window_excludes_exactly_t_minus_720_hours_and_includes_exactly_t() -> None:
    assert window_start(T) == at(hours=-720) == "2021-05-31T06:00:00Z"
    assert summarise([post(at(hours=-720), likes=1)]).posts == 0
    assert summarise([post(at(hours=-720, seconds=1), likes=1)]).posts == 1
    assert summarise([post(T, likes=1)]).posts == 1


def test_posts_after_t_are_ignored() -> None:
    s = summarise([post(at(seconds=1), likes=10**6, hidden=False), post(at(days=-1), likes=150)])
    assert (s.posts, s.engagement) == (1, 150 / 15000)


def test_reach_above_the_cap_scores_100() -> None:
    assert score_summary(summary(followers=15000), 1000).reach.points == 100.0  # R = 15
    assert score_summary(summary(followers=500), 1000).reach.points == 100.0  # R = 0.5, the cap
    assert score_summary(summary(followers=1), 1000).reach.points == 0.0  # R = 0.001, the floor
    assert score_summary(summary(followers=1), 10**6).reach.points == 0.0  # below the floor


def test_audience_below_100_followers_scores_0_and_caps_at_a_million() -> None:
    for followers in (1, 50, 99, 100):
        assert score_summary(summary(followers=followers), 1000).audience.points == 0.0
    assert score_summary(summary(followers=10**6), 1000).audience.points == 100.0
    assert score_summary(summary(followers=10**8), 1000).audience.points == 100.0


def test_ratio_below_1_scores_0_and_caps_at_100() -> None:
    assert score_summary(summary(followers=299, follows=300), 1000).ratio.points == 0.0
    assert score_summary(summary(followers=300, follows=300), 1000).ratio.points == 0.0
    assert score_summary(summary(followers=30000, follows=300), 1000).ratio.points == 100.0


def test_activity_caps_at_one_post_a_day() -> None:
    assert score_summary(summary(posts=30), 1000).activity.points == 100.0
    assert score_summary(summary(posts=200), 1000).activity.points == 100.0
    assert score_summary(summary(posts=200), 1000).activity.value == 200 / 30


def test_engagement_of_one_post_is_shrunk_toward_one_percent() -> None:
    s = summary(posts=1, engagement=0.1)  # E* = (0.1 + 0.03) / 4 = 0.0325
    assert score_summary(s, 1000).engagement.points == pytest.approx(65.0, rel=1e-12)
    assert score_summary(summary(posts=1, engagement=0.2), 1000).engagement.points == 100.0
    assert score_summary(summary(posts=1, engagement=0.0), 1000).engagement.points == 15.0


def test_malformed_input_is_refused() -> None:
    with pytest.raises(ValueError):
        summarise([post("2021-06-29", likes=1)])
    with pytest.raises(ValueError):
        summarise([post(at(days=-1), likes=-1)])
    with pytest.raises(ValueError):
        summarise([post(at(days=-1), likes=1.0)])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        summarise([{**post(at(days=-1)), "likes_hidden": 1}])
    with pytest.raises(ValueError):
        summarise_snapshot(
            observed_at="2021-06-30 06:00:00", event_id="e", followers=1, follows=1, recent_posts=[]
        )
    with pytest.raises(ValueError):
        summarise([], followers=-1)
    with pytest.raises(ValueError):
        score_summary(summary(), -1)
    with pytest.raises(ValueError):  # engagement must be null without posts
        SnapshotSummary(T, "e1", 100, 1, 0, 0.01, False)
    with pytest.raises(ValueError):
        summary(posts=3, engagement=None)
    with pytest.raises(ValueError):
        summary(posts=3, engagement=math.inf)


# --- Properties ----------------------------------------------------------------------------------

counts = st.integers(min_value=0, max_value=10**9)


@st.composite
def summaries(draw: st.DrawFn) -> SnapshotSummary:
    followers = draw(counts)
    posts = draw(st.integers(min_value=0, max_value=200))
    engagement = (
        draw(st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False))
        if posts and followers
        else None
    )
    return SnapshotSummary(
        observed_at=draw(st.sampled_from([T, "1999-12-31T23:59:59Z", "2038-01-19T03:14:08Z"])),
        event_id=draw(st.text(min_size=1, max_size=64)),
        followers=followers,
        follows=draw(counts),
        posts=posts,
        engagement=engagement,
        likes_hidden=draw(st.booleans()),
    )


@st.composite
def window_posts(draw: st.DrawFn) -> list[dict]:
    """Posts spread over the window and around it (before, at both bounds, after t)."""
    offsets = st.integers(min_value=-720 * 3600 - 86400, max_value=86400)
    return draw(
        st.lists(
            st.builds(
                lambda seconds, likes, comments, hidden: post(
                    at(seconds=seconds), likes, comments, hidden
                ),
                st.one_of(offsets, st.sampled_from([-720 * 3600, -720 * 3600 + 1, 0, 1])),
                st.integers(min_value=0, max_value=10**7),
                st.integers(min_value=0, max_value=10**6),
                st.booleans(),
            ),
            max_size=60,
        )
    )


@given(summaries(), counts)
def test_every_points_value_and_the_score_lie_in_0_100(s: SnapshotSummary, population: int) -> None:
    score = score_summary(s, population)
    for name in WEIGHTS:
        assert 0.0 <= getattr(score, name).points <= 100.0
    assert 0.0 <= score.unrounded <= 100.0
    assert 0.0 <= score.score <= 100.0
    assert score.score == round(score.unrounded, 4)


@given(summaries(), counts)
def test_the_value_alone_is_the_scores(s: SnapshotSummary, population: int) -> None:
    # A rebuild scores every day of the history with it: the same float, to the last bit.
    assert score_value(s, population) == score_summary(s, population).score


@given(window_posts(), st.integers(min_value=1, max_value=10**8), st.randoms())
def test_engagement_is_the_exact_mean_whatever_the_post_order(
    posts: list[dict], followers: int, random: object
) -> None:
    s = summarise(posts, followers=followers)
    start, end = at(hours=-720), T
    inside = [p for p in posts if start < p["published_at"] <= end]
    assert s.posts == len(inside)
    assert s.likes_hidden == any(p["likes_hidden"] for p in inside)
    total = sum(p["comments"] + (0 if p["likes_hidden"] else p["likes"]) for p in inside)
    if inside:
        exact = sum(Fraction(p["comments"] + (0 if p["likes_hidden"] else p["likes"]), followers)
                    for p in inside) / len(inside)  # fmt: skip
        assert s.engagement == float(exact) == total / (len(inside) * followers)
    else:
        assert s.engagement is None
    shuffled = list(posts)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    again = summarise(shuffled, followers=followers)
    assert again == s
    assert score_summary(again, 12345) == score_summary(s, 12345)  # bit-identical floats


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=10**9),
       st.integers(min_value=0, max_value=10**7), counts)  # fmt: skip
def test_audience_points_never_decrease_with_followers(
    a: int, b: int, follows: int, population: int
) -> None:
    low, high = sorted((a, b))
    points_low = score_summary(summary(followers=low, follows=follows), population).audience
    points_high = score_summary(summary(followers=high, follows=follows), population).audience
    assert points_low.points <= points_high.points


@given(st.integers(min_value=1, max_value=10**9), st.integers(min_value=1, max_value=10**9),
       counts)  # fmt: skip
def test_reach_points_never_increase_with_population(a: int, b: int, followers: int) -> None:
    small, large = sorted((a, b))
    s = summary(followers=followers)
    assert score_summary(s, small).reach.points >= score_summary(s, large).reach.points


@given(st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=200))
def test_activity_points_never_decrease_with_posts(a: int, b: int) -> None:
    fewer, more = sorted((a, b))
    points_fewer = score_summary(summary(posts=fewer, engagement=0.01 if fewer else None), 10)
    points_more = score_summary(summary(posts=more, engagement=0.01 if more else None), 10)
    assert points_fewer.activity.points <= points_more.activity.points


engagement_rates = st.floats(min_value=0, max_value=10.0, allow_nan=False, allow_infinity=False)


@given(engagement_rates, engagement_rates, st.integers(min_value=1, max_value=200))
def test_engagement_points_never_decrease_with_the_rate(a: float, b: float, n: int) -> None:
    low, high = sorted((a, b))
    points_low = score_summary(summary(posts=n, engagement=low), 1000).engagement.points
    points_high = score_summary(summary(posts=n, engagement=high), 1000).engagement.points
    assert points_low <= points_high


# --- The compact summary -------------------------------------------------------------------------


@given(summaries())
def test_summary_json_round_trips_exactly(s: SnapshotSummary) -> None:
    raw = s.to_json()
    back = SnapshotSummary.from_json(raw)
    assert back == s
    assert type(back.engagement) is type(s.engagement)
    assert back.to_json() == raw
    assert SnapshotSummary.from_json(raw.decode()) == s


def test_summary_json_is_compact_and_versioned() -> None:
    raw = summarise(worked_example_posts(EVEN)).to_json()
    assert raw == (
        b'{"v":1,"t":"2021-06-30T06:00:00Z","id":"e1","fr":15000,"fg":300,"n":20,'
        b'"e":0.03,"h":false}'
    )


@pytest.mark.parametrize(
    "raw",
    [
        b'{"v":2,"t":"2021-06-30T06:00:00Z","id":"e1","fr":1,"fg":1,"n":1,"e":0.1,"h":false}',
        b'{"v":true,"t":"2021-06-30T06:00:00Z","id":"e1","fr":1,"fg":1,"n":1,"e":0.1,"h":false}',
        b'{"v":1,"t":"2021-06-30T06:00:00Z","id":"e1","fr":1,"fg":1,"n":1,"e":0.1}',
        b'{"v":1,"t":"2021-06-30T06:00:00Z","id":"e1","fr":1.0,"fg":1,"n":1,"e":0.1,"h":false}',
        b'{"v":1,"t":"2021-06-30T06:00:00Z","id":"e1","fr":1,"fg":1,"n":1,"e":0.1,"h":0}',
        b'{"v":1,"t":"2021-06-30","id":"e1","fr":1,"fg":1,"n":1,"e":0.1,"h":false}',
        b'{"v":1,"t":"2021-06-30T06:00:00Z","id":"e1","fr":1,"fg":1,"n":0,"e":0.1,"h":false}',
        b"[1]",
        b"not json",
    ],
)
def test_summary_json_refuses_anything_else(raw: bytes) -> None:
    with pytest.raises(ValueError):
        SnapshotSummary.from_json(raw)


# --- Ranking -------------------------------------------------------------------------------------


def test_rank_gives_distinct_ranks_and_breaks_ties_by_id_as_strings() -> None:
    entries = [("dep-32", 61.2), ("dep-2B", 63.0373), ("dep-2A", 63.0373), ("dep-04", 61.2),
               ("dep-75", 70.0), ("dep-100", 61.2)]  # fmt: skip
    assert rank(entries) == [
        (1, "dep-75", 70.0),
        (2, "dep-2A", 63.0373),
        (3, "dep-2B", 63.0373),
        (4, "dep-04", 61.2),
        (5, "dep-100", 61.2),
        (6, "dep-32", 61.2),
    ]


def test_rank_of_nothing_is_empty_and_a_duplicate_id_is_refused() -> None:
    assert rank([]) == []
    with pytest.raises(ValueError):
        rank([("dep-32", 1.0), ("dep-32", 2.0)])


@given(
    st.dictionaries(
        st.text(alphabet="abcdep-0123456789AB", min_size=1, max_size=8),
        st.sampled_from([0.0, 12.5, 63.0373, 63.0374, 100.0]),
    )
)
def test_rank_is_a_total_order_on_score_then_id(scores: dict[str, float]) -> None:
    ranked = rank(scores.items())
    assert [r for r, _, _ in ranked] == list(range(1, len(scores) + 1))
    assert {tid: s for _, tid, s in ranked} == scores
    for (_, id1, s1), (_, id2, s2) in itertools.pairwise(ranked):
        assert s1 > s2 or (s1 == s2 and id1 < id2)
        assert ranking_key(id1, s1) < ranking_key(id2, s2)


# --- Compare-and-set order, eligibility, growth --------------------------------------------------


def test_is_newer_prefers_later_observed_at_then_greater_event_id() -> None:
    assert is_newer(at(seconds=1), "0", T, "f")
    assert not is_newer(T, "f", at(seconds=1), "0")
    assert is_newer(T, "b", T, "a")
    assert not is_newer(T, "a", T, "b")
    assert not is_newer(T, "a", T, "a")  # the same event again changes nothing
    assert is_newer(T, "a", None, None)  # nothing applied yet


@given(st.sampled_from([T, at(seconds=1), at(days=-3)]), st.text(min_size=1),
       st.sampled_from([T, at(seconds=1), at(days=-3)]), st.text(min_size=1))  # fmt: skip
def test_is_newer_is_a_strict_order(ta: str, ea: str, tb: str, eb: str) -> None:
    if (ta, ea) == (tb, eb):
        assert not is_newer(ta, ea, tb, eb)
    else:
        assert is_newer(ta, ea, tb, eb) != is_newer(tb, eb, ta, ea)
    if ta != tb:
        assert is_newer(ta, ea, tb, eb) == (parse_timestamp(ta) > parse_timestamp(tb))


def test_is_active_up_to_exactly_30_days_behind_the_watermark() -> None:
    assert ACTIVE_SECONDS == 30 * 86400
    assert active_since(T) == at(days=-30)
    assert is_active(T, T)
    assert is_active(at(days=-30), T)
    assert not is_active(at(days=-30, seconds=-1), T)
    assert is_active(at(seconds=1), T)  # a snapshot newer than a stale watermark is active
    with pytest.raises(ValueError):
        is_active("yesterday", T)


def test_follower_growth_is_relative_and_null_without_a_reference() -> None:
    assert follower_growth(15000, None) is None
    assert follower_growth(15000, 0) is None
    assert follower_growth(0, 0) is None
    assert follower_growth(15000, 12000) == 0.25
    assert follower_growth(9000, 12000) == -0.25
    assert follower_growth(12000, 12000) == 0.0


def test_score_is_frozen() -> None:
    score = score_summary(summary(), 1000)
    assert isinstance(score, Score)
    with pytest.raises(AttributeError):
        score.score = 1.0  # type: ignore[misc]
