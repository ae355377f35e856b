"""The methodology calculator (services/common/calculator.py) and its form
(services/api/calculator_form.py): totals scored by the rankings' own functions, the worked
example to the digit, and every way a field can be refused, in French."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.api.calculator_form import (
    EXAMPLE,
    FIELDS,
    calculate,
    raw_value_text,
    read_count,
    read_form,
    result_lines,
)
from services.common.calculator import MAX_RECENT_POSTS, score_totals
from services.common.clock import format_timestamp, parse_timestamp
from services.common.methodology import SnapshotSummary, score_snapshot, score_summary

T = "2021-06-30T06:00:00Z"
FIELD = {f.name: f for f in FIELDS}


def example() -> dict[str, int]:
    return {"followers": 15000, "follows": 300, "posts": 20, "interactions": 9000}


def test_the_worked_example_gives_the_contract_figures_to_the_bit():
    score = score_totals(**example(), population=200_000)
    assert score.score == 63.0373
    assert score.indicators_dict() == {
        "engagement": {"value": 0.03, "points": 54.78260869565217},
        "reach": {"value": 0.075, "points": 69.47321609278089},
        "activity": {"value": 0.6666666666666666, "posts": 20, "points": 66.66666666666666},
        "audience": {"value": 15000, "points": 54.402281476392034},
        "ratio": {"value": 50.0, "points": 84.94850021680094},
    }


def _posts(interactions: list[tuple[int, int]]) -> list[dict]:
    moment = parse_timestamp(T)
    return [
        {
            "id": str(i),
            "published_at": format_timestamp(moment - timedelta(hours=i)),
            "likes": likes,
            "comments": comments,
            "likes_hidden": False,
        }
        for i, (likes, comments) in enumerate(interactions)
    ]


@settings(max_examples=300)
@given(
    per_post=st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(0, 10**5)), max_size=MAX_RECENT_POSTS
    ),
    followers=st.integers(0, 10**9),
    follows=st.integers(0, 10**7),
    population=st.integers(0, 10**8),
)
def test_totals_score_exactly_as_the_snapshot_they_sum(per_post, followers, follows, population):
    """However the interactions spread over the posts, the totals give the ranking's score."""
    ranked = score_snapshot(
        observed_at=T,
        event_id="e",
        followers=followers,
        follows=follows,
        recent_posts=_posts(per_post),
        population=population,
    )
    calculated = score_totals(
        followers=followers,
        follows=follows,
        posts=len(per_post),
        interactions=sum(likes + comments for likes, comments in per_post),
        population=population,
    )
    assert calculated == ranked


@given(
    followers=st.integers(0, 10**9),
    follows=st.integers(0, 10**9),
    posts=st.integers(0, MAX_RECENT_POSTS),
    interactions=st.integers(0, 10**12),
    population=st.integers(0, 10**8),
)
def test_totals_score_as_score_summary_of_the_total_over_n_followers(
    followers, follows, posts, interactions, population
):
    if posts == 0:
        interactions = 0
    summary = SnapshotSummary(
        observed_at=T,
        event_id="e",
        followers=followers,
        follows=follows,
        posts=posts,
        engagement=interactions / (posts * followers) if posts and followers else None,
        likes_hidden=False,
    )
    assert score_totals(
        followers=followers,
        follows=follows,
        posts=posts,
        interactions=interactions,
        population=population,
    ) == score_summary(summary, population)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"followers": -1}, "followers"),
        ({"follows": -1}, "follows"),
        ({"posts": -1}, "posts"),
        ({"interactions": -1}, "interactions"),
        ({"posts": MAX_RECENT_POSTS + 1}, "at most 200"),
        ({"posts": 0, "interactions": 1}, "no post"),
        ({"posts": 2.0}, "posts"),
    ],
)
def test_impossible_totals_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        score_totals(**(example() | change), population=200_000)
    with pytest.raises(ValueError, match="population"):
        score_totals(**example(), population=-1)


# --- the form ----------------------------------------------------------------------------------


def test_the_example_form_reads_and_shows_the_worked_example():
    reading = read_form(EXAMPLE)
    assert reading.errors == {}
    assert reading.values == {
        "abonnes": 15000,
        "abonnements": 300,
        "publications": 20,
        "interactions": 9000,
        "population": 200000,
    }
    lines = result_lines(calculate(reading.values))
    assert [line["points_text"] for line in lines] == [
        "54,7826",
        "69,4732",
        "66,6667",
        "54,4023",
        "84,9485",
    ]
    assert [line["weight"] for line in lines] == [5, 4, 3, 2, 1]
    assert calculate(reading.values).score == 63.0373


@pytest.mark.parametrize(
    ("typed", "value"),
    [
        ("15000", 15000),
        ("15 000", 15000),
        ("15\u202f000", 15000),
        ("15\u00a0000", 15000),
        ("  42 ", 42),
        ("+7", 7),
        ("0", 0),
        ("1000000000", 1_000_000_000),
    ],
)
def test_a_count_may_be_grouped_in_the_french_way(typed, value):
    assert read_count(typed, FIELD["abonnes"]) == (value, None)


@pytest.mark.parametrize(
    ("name", "typed", "message"),
    [
        ("abonnes", None, "Indiquez un nombre."),
        ("abonnes", "", "Indiquez un nombre."),
        ("abonnes", "   ", "Indiquez un nombre."),
        ("abonnes", "-5", "Indiquez un nombre positif ou nul."),
        ("abonnes", "abc", "Ce n’est pas un nombre"),
        ("abonnes", "1e5", "Ce n’est pas un nombre"),
        ("abonnes", "12,5", "Indiquez un nombre entier, sans virgule."),
        ("abonnes", "12.5", "Indiquez un nombre entier, sans virgule."),
        ("abonnes", "1000000001", "Nombre trop grand (au plus 1 000 000 000"),
        ("abonnes", "9" * 5000, "Nombre trop grand"),
        ("publications", "201", "au plus 200 : un relevé retient au plus 200 publications"),
        ("population", "100000001", "au plus 100 000 000"),
        ("interactions", "1000000000001", "au plus 1 000 000 000 000"),
    ],
)
def test_an_unusable_field_says_why_in_french(name, typed, message):
    value, error = read_count(typed, FIELD[name])
    assert value is None
    assert error is not None and message in error


def test_every_unusable_field_gets_its_own_message_and_no_values():
    reading = read_form({"abonnes": "-1", "abonnements": "x", "publications": "20"})
    assert set(reading.errors) == {"abonnes", "abonnements", "interactions", "population"}
    assert reading.values is None
    assert reading.typed["abonnes"] == "-1"
    assert reading.typed["population"] == ""


def test_interactions_need_a_post_to_carry_them():
    reading = read_form(EXAMPLE | {"publications": "0"})
    assert list(reading.errors) == ["interactions"]
    assert reading.errors["interactions"].startswith("Sans publication, il n’y a pas")
    assert read_form(EXAMPLE | {"publications": "0", "interactions": "0"}).values is not None


def test_a_huge_typed_value_is_not_shown_back_whole():
    assert len(read_form({"abonnes": "9" * 10_000}).typed["abonnes"]) == 40


def test_raw_values_are_written_in_french_with_four_decimals():
    assert raw_value_text("engagement", 0.03) == "E = 3,0000\u202f% des abonnés par publication"
    assert raw_value_text("reach", 0.075) == "R = 7,5000\u202f% de la population"
    assert raw_value_text("activity", 2 / 3) == "A = 0,6667 publication par jour"
    assert raw_value_text("audience", 15000) == "F = 15\u202f000 abonnés"
    assert raw_value_text("ratio", 50.0) == "Q = 50,0000 abonnés par abonnement"
    assert raw_value_text("engagement", None).startswith("non défini")
    assert raw_value_text("reach", None) == "non définie (population nulle)"
