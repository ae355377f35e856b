"""The methodology calculator (the `/methodologie` page): an account's totals scored by the very
functions that score the rankings.

A reader knows five figures — followers, follows, the posts of the last 30 days, the likes and
comments they received in all — and the territory's population. `score_totals` turns them into
the snapshot a collector would have seen (the posts in the window, the interactions on the
first of them), then calls `summarise_snapshot` and `score_summary` of
services/common/methodology.py: no formula is written twice. The engagement `E` is the mean of
the per-post ratios `(likes + comments) / followers`; the summary computes it for every
snapshot as the exact integer total divided once by `n × followers`, which is that mean,
correctly rounded and independent of how the interactions spread over the posts: the totals
give the ranking's float to the bit.
"""

from __future__ import annotations

from typing import Final

from services.common.contracts import MAX_RECENT_POSTS
from services.common.methodology import Score, score_summary, summarise_snapshot

__all__ = ["CALCULATOR_OBSERVED_AT", "MAX_RECENT_POSTS", "score_totals"]

# Any contract timestamp: the synthetic posts are published at the snapshot's own time,
# inside its window whatever it is.
CALCULATOR_OBSERVED_AT: Final = "2000-01-01T00:00:00Z"
_EVENT_ID: Final = "calculator"


def _count(name: str, value: object) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{name}: not an integer >= 0: {value!r}")
    return value


def score_totals(
    *, followers: int, follows: int, posts: int, interactions: int, population: int
) -> Score:
    """Score an account with `posts` posts in the window and `interactions` likes and
    comments on them in all (methodology v1, through `summarise_snapshot` and
    `score_summary`). ValueError on a negative count, more posts than a snapshot keeps, or
    interactions without any post."""
    _count("interactions", interactions)
    if _count("posts", posts) > MAX_RECENT_POSTS:
        raise ValueError(f"posts: a snapshot keeps at most {MAX_RECENT_POSTS} posts: {posts}")
    if posts == 0 and interactions:
        raise ValueError("interactions: there is no post to carry them (posts = 0)")
    recent_posts = [
        {
            "published_at": CALCULATOR_OBSERVED_AT,
            "likes": interactions if index == 0 else 0,
            "comments": 0,
            "likes_hidden": False,
        }
        for index in range(posts)
    ]
    summary = summarise_snapshot(
        observed_at=CALCULATOR_OBSERVED_AT,
        event_id=_EVENT_ID,
        followers=followers,
        follows=follows,
        recent_posts=recent_posts,
    )
    return score_summary(summary, population)
