"""Rank-change diffing: exactly the territories whose rank changed, and nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.events import RankChange
from services.common.rank_diff import apply_changes, diff_tops, rank_change_event

IDS = [f"dep-{n:02d}" for n in range(1, 40)]


def tops(max_size: int = 25) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(IDS), unique=True, max_size=max_size)


def _ranks(top: list[str]) -> dict[str, int]:
    return {tid: rank for rank, tid in enumerate(top, start=1)}


@given(old=tops(), new=tops())
def test_changes_are_exactly_the_territories_whose_rank_differs(old, new):
    changes = diff_tops(old, new)
    before, after = _ranks(old), _ranks(new)
    expected = {tid for tid in set(old) | set(new) if before.get(tid) != after.get(tid)}
    assert {c.id for c in changes} == expected
    assert len(changes) == len(expected)
    for change in changes:
        assert change.from_rank == before.get(change.id)
        assert change.to_rank == after.get(change.id)
        if change.kind == "entered":
            assert change.from_rank is None and change.to_rank is not None
        elif change.kind == "left":
            assert change.to_rank is None and change.from_rank is not None
        elif change.kind == "up":
            assert change.to_rank < change.from_rank
        else:
            assert change.kind == "down" and change.to_rank > change.from_rank


@given(old=tops(), new=tops())
def test_a_subscriber_rebuilds_the_new_list_from_the_old_one_and_the_changes(old, new):
    changes = [c.to_dict() for c in diff_tops(old, new)]
    assert apply_changes(old, changes) == new


@given(top=tops())
def test_an_unchanged_list_gives_no_event(top):
    assert diff_tops(top, top) == []
    event = rank_change_event(
        category="departements", seq=3, at="2021-06-30T06:00:00Z", previous_top=top, top=list(top)
    )
    assert event is None


@given(old=tops(), new=tops())
def test_every_event_is_valid_against_the_contract(old, new):
    scores = {tid: float(i) for i, tid in enumerate(IDS)}
    event = rank_change_event(
        category="departements",
        seq=7,
        at="2021-06-30T06:00:00Z",
        previous_top=old,
        top=new,
        old_scores=scores,
        new_scores=scores,
    )
    if old == new:
        assert event is None
        return
    assert event is not None
    RankChange.model_validate(event)
    assert event["leader"] == (new[0] if new else None)
    assert event["previous_leader"] == (old[0] if old else None)


def test_a_40_place_jump_is_one_up_and_forty_downs_in_one_event():
    old = [f"com-{n:05d}" for n in range(1, 51)]
    jumper = old[44]  # 45th
    new = [*old[:4], jumper, *old[4:44], *old[45:]]
    event = rank_change_event(
        category="petites-villes",
        seq=12,
        at="2021-06-30T06:00:00Z",
        previous_top=old,
        top=new,
        old_scores={jumper: 40.0},
        new_scores={jumper: 70.0},
    )
    assert event is not None
    kinds = [c["kind"] for c in event["changes"]]
    assert kinds.count("up") == 1 and kinds.count("down") == 40 and len(kinds) == 41
    up = next(c for c in event["changes"] if c["kind"] == "up")
    assert (up["id"], up["from_rank"], up["to_rank"]) == (jumper, 45, 5)
    assert (up["old_score"], up["new_score"]) == (40.0, 70.0)


def test_a_full_top_50_replaced_gives_fifty_entered_and_fifty_left():
    old = [f"com-{n:05d}" for n in range(1, 51)]
    new = [f"com-{n:05d}" for n in range(51, 101)]
    changes = diff_tops(old, new, new_scores={tid: 1.0 for tid in new})
    assert [c.kind for c in changes] == ["entered"] * 50 + ["left"] * 50
    assert [c.to_rank for c in changes[:50]] == list(range(1, 51))
    assert [c.from_rank for c in changes[50:]] == list(range(1, 51))
    assert all(c.old_score is None for c in changes[:50])  # unknown outside the old list


def test_scores_come_from_the_right_side():
    changes = diff_tops(
        ["a", "b", "c"],
        ["b", "a", "d"],
        old_scores={"a": 10.0, "b": 9.0, "c": 8.0},
        new_scores={"a": 10.0, "b": 11.0, "c": 5.0, "d": 7.0},
    )
    by_id = {c.id: c for c in changes}
    assert by_id["b"].kind == "up" and (by_id["b"].old_score, by_id["b"].new_score) == (9.0, 11.0)
    assert by_id["a"].kind == "down"
    assert by_id["d"].kind == "entered" and by_id["d"].old_score is None
    assert by_id["c"].kind == "left" and (by_id["c"].old_score, by_id["c"].new_score) == (8.0, 5.0)


def test_apply_changes_refuses_changes_that_do_not_fit():
    with pytest.raises(ValueError):
        apply_changes(["a", "b"], [{"id": "a", "from_rank": 2, "to_rank": 1}])
    with pytest.raises(ValueError):  # a missed event leaves a hole
        apply_changes(["a", "b"], [{"id": "a", "from_rank": 1, "to_rank": None}])


def test_a_repeated_territory_is_refused():
    with pytest.raises(ValueError):
        diff_tops(["a", "a"], ["a"])
