"""Edition rules: when a month may be published, movement and streaks, parts of ≤ 1,000."""

from __future__ import annotations

from typing import Any

import pytest

from services.common.contracts import CATEGORY_IDS
from services.common.editions import (
    ALREADY_PUBLISHED,
    PreviousEdition,
    RankedEntry,
    auto_publish_candidate,
    edition_parts,
    edition_standings,
    logged_editions,
    publication_decision,
    split_parts,
)
from services.common.events import EditionPart

INDICATORS = {
    "engagement": {"value": 0.03, "points": 54.78260869565217},
    "reach": {"value": 0.075, "points": 69.47321609278089},
    "activity": {"value": 0.6666666666666666, "posts": 20, "points": 66.66666666666666},
    "audience": {"value": 15000, "points": 54.402281476392034},
    "ratio": {"value": 50.0, "points": 84.94850021680094},
}


def decide(edition: str, watermark: str | None, **kw: Any):
    return publication_decision(
        edition,
        watermark=watermark,
        grace_hours=kw.pop("grace_hours", 24),
        published=kw.pop("published", {}),
        months_with_data=kw.pop("months_with_data", {"2021-05", "2021-06"}),
    )


def test_a_month_is_publishable_from_its_end_plus_the_grace_delay():
    # June 2021 ends 2021-06-30T22:00:00Z (Europe/Paris); + 24 h.
    early = decide("2021-06", "2021-07-01T21:59:59Z", published={"2021-05": "x"})
    assert early.action == "refuse" and "cannot be published yet" in early.reason
    assert "2021-07-01T22:00:00Z" in early.reason
    ready = decide("2021-06", "2021-07-01T22:00:00Z", published={"2021-05": "x"})
    assert ready.action == "publish"
    no_grace = decide("2021-06", "2021-06-30T22:00:00Z", published={"2021-05": "x"}, grace_hours=0)
    assert no_grace.action == "publish"


def test_a_month_that_has_not_ended_is_refused():
    decision = decide("2021-07", "2021-07-15T06:00:00Z", months_with_data={"2021-07"})
    assert decision.action == "refuse" and "cannot be published yet" in decision.reason


def test_a_month_without_data_is_refused():
    decision = decide("2020-01", "2021-07-15T06:00:00Z")
    assert decision.action == "refuse" and "has no data" in decision.reason
    assert decide("2021-06", None).action == "refuse"


def test_the_previous_month_first_unless_it_has_no_data():
    blocked = decide("2021-06", "2021-07-15T06:00:00Z")
    assert blocked.action == "refuse" and "2021-05 must be published first" in blocked.reason
    gap = decide(
        "2021-06",
        "2021-07-15T06:00:00Z",
        months_with_data={"2021-04", "2021-06"},
        published={"2021-04": "x"},
    )
    assert gap.action == "publish"  # May has no data: skipped
    # An earlier unpublished month with data still blocks, past a month without data.
    older = decide("2021-06", "2021-07-15T06:00:00Z", months_with_data={"2021-04", "2021-06"})
    assert older.action == "refuse" and "2021-04 must be published first" in older.reason


def test_publishing_again_is_a_no_op_that_says_so():
    decision = decide(
        "2021-05", "2021-07-15T06:00:00Z", published={"2021-05": "2021-06-02T08:00:00Z"}
    )
    assert decision.action == "already_published"
    assert (
        decision.reason.startswith(ALREADY_PUBLISHED) and "2021-06-02T08:00:00Z" in decision.reason
    )


def test_a_malformed_month_is_refused():
    assert decide("2021-13", "2021-07-15T06:00:00Z").action == "refuse"


def entry(tid: str, score: float) -> RankedEntry:
    return RankedEntry(
        tid,
        {
            "score": score,
            "observed_at": "2021-06-15T06:00:00Z",
            "handle": tid.replace("-", "."),
            "indicators": INDICATORS,
        },
        "ok",
    )


def publish_series(rankings: list[list[str]]) -> list[list[dict]]:
    previous: PreviousEdition | None = None
    editions = []
    for ranking in rankings:
        standings = edition_standings(
            [entry(tid, 90.0 - i) for i, tid in enumerate(ranking)], previous
        )
        editions.append(standings)
        leader_streak = standings[0]["streak"] if standings else 0
        previous = PreviousEdition({s["id"]: s["rank"] for s in standings}, leader_streak)
    return editions


def test_a_streak_across_three_editions_broken_by_a_fourth():
    editions = publish_series(
        [["dep-32", "dep-75", "dep-38"]] * 3 + [["dep-75", "dep-32", "dep-38"]]
    )
    assert [e[0]["streak"] for e in editions] == [1, 2, 3, 1]
    assert [e[0]["id"] for e in editions] == ["dep-32"] * 3 + ["dep-75"]
    assert editions[3][1] == editions[3][1] | {"id": "dep-32", "streak": 0, "movement": -1}
    assert editions[3][0]["movement"] == 1
    assert all(s["streak"] == 0 for e in editions for s in e[1:])


def test_movement_is_places_gained_and_null_when_new():
    first, second = publish_series([["a-1", "a-2", "a-3"], ["a-3", "a-4", "a-1"]])
    assert [s["movement"] for s in first] == [None, None, None]
    assert [(s["id"], s["movement"]) for s in second] == [("a-3", 2), ("a-4", None), ("a-1", -2)]


def test_an_empty_previous_edition_starts_the_streak_again():
    editions = publish_series([["dep-32"], [], ["dep-32"]])
    assert editions[2][0]["streak"] == 1


@pytest.mark.parametrize(("size", "parts"), [(0, 1), (1, 1), (1000, 1), (1001, 2), (2500, 3)])
def test_parts_hold_at_most_1000_entries(size, parts):
    chunks = split_parts(list(range(size)))
    assert len(chunks) == parts
    assert all(len(c) <= 1000 for c in chunks)
    assert [x for c in chunks for x in c] == list(range(size))


def test_edition_parts_follow_the_contract_and_number_from_one():
    standings = edition_standings([entry(f"com-{n:05d}", 50.0) for n in range(1, 1203)], None)
    parts = edition_parts(
        category="petites-villes",
        edition="2021-06",
        published_at="2021-07-02T08:00:00Z",
        standings=standings,
    )
    assert [(p["part"], p["parts"], len(p["standings"])) for p in parts] == [
        (1, 2, 1000),
        (2, 2, 202),
    ]
    for part in parts:
        EditionPart.model_validate(part)
    assert parts[1]["standings"][0]["rank"] == 1001


def all_parts(edition: str, published_at: str) -> list[dict]:
    parts = []
    for category in CATEGORY_IDS:
        parts += edition_parts(
            category=category, edition=edition, published_at=published_at, standings=[]
        )
    return parts


def test_logged_editions_are_published_only_when_every_part_of_every_category_is_there():
    complete = all_parts("2021-05", "2021-06-02T08:00:00Z")
    partial = all_parts("2021-06", "2021-07-02T08:00:00Z")[:3]
    logged = logged_editions(complete + partial)
    assert set(logged.published) == {"2021-05"}
    assert logged.frozen == {"2021-05", "2021-06"}
    assert set(logged.published["2021-05"]) == set(CATEGORY_IDS)


def test_auto_publication_requests_the_oldest_due_month():
    kw = {
        "delay_hours": 48,
        "grace_hours": 24,
        "published": {"2021-04"},
        "months_with_data": {"2021-04", "2021-05", "2021-06"},
    }
    assert auto_publish_candidate(watermark="2021-06-02T21:59:59Z", **kw) is None
    assert auto_publish_candidate(watermark="2021-06-02T22:00:00Z", **kw) == "2021-05"
    assert auto_publish_candidate(watermark=None, **kw) is None
