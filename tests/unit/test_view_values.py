"""The typed codecs of the view's small stored values: round trips, and the bytes the
previous (dict-based) writers produced, so a view written before still reads the same."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from services.common.view.values import (
    AccountLink,
    CommandResult,
    DeadLink,
    EditionRecord,
    PendingRankChange,
    RankState,
    decode_editions,
)

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
scores = st.dictionaries(ids, st.none() | st.floats(0, 100, allow_nan=False), max_size=5)


@given(st.none() | ids, st.booleans())
def test_account_links_round_trip(handle, simulated):
    link = AccountLink(handle, simulated)
    assert AccountLink.decode(link.encode()) == link


@given(st.integers(1, 10**6), ids, scores)
def test_pending_rank_changes_round_trip_in_the_stored_shape(seq, event_id, values):
    pending = PendingRankChange(seq, event_id, values)
    assert PendingRankChange.decode(pending.encode()) == pending
    assert pending.encode() == orjson.dumps({"seq": seq, "event_id": event_id, "scores": values})


@given(st.none() | ids, st.dictionaries(ids, st.integers(0, 40_000), max_size=8))
def test_edition_records_round_trip_in_the_stored_shape(command_id, categories):
    record = EditionRecord("2021-07-03T10:00:00Z", command_id, categories)
    assert EditionRecord.decode(record.encode()) == record
    assert record.encode() == orjson.dumps(
        {"published_at": record.published_at, "command_id": command_id, "categories": categories}
    )
    assert decode_editions({b"2021-06": record.encode()}) == {"2021-06": record}


def test_dead_links_keep_their_stored_shape_with_territories_sorted():
    link = DeadLink("instagram", "ville_x", "2021-06-02T00:00:00Z", ["dep-32", "com-32013"])
    assert link.encode() == orjson.dumps(
        {
            "platform": "instagram",
            "handle": "ville_x",
            "since": "2021-06-02T00:00:00Z",
            "territories": ["com-32013", "dep-32"],
        }
    )
    assert DeadLink.decode(link.encode()).territories == ["com-32013", "dep-32"]


def test_a_command_result_reads_the_record_as_produced():
    record = orjson.dumps(
        {
            "schema_version": 1,
            "command_id": "a" * 64,
            "status": "refused",
            "reason": "unknown territory",
            "at": "2021-07-01T00:00:00Z",
            "event_id": "b" * 64,
        }
    )
    assert CommandResult.decode("a" * 64, record) == CommandResult(
        "a" * 64, "refused", "unknown territory", "2021-07-01T00:00:00Z"
    )


def test_a_command_result_takes_its_id_from_the_hash_field():
    record = orjson.dumps({"status": "done"})
    assert CommandResult.decode("c" * 64, record) == CommandResult("c" * 64, "done", None, None)


def test_rank_state_reads_the_hash_and_an_empty_one_as_nothing_published():
    raw = {
        b"seq": b"7",
        b"event_id": b"e" * 64,
        b"at": b"2021-06-01T00:00:00Z",
        b"top": b'["dep-32","dep-40"]',
        b"scores": b'{"dep-32":50.5,"dep-40":null}',
    }
    state = RankState.decode(raw)
    assert (state.seq, state.top, state.scores) == (
        7,
        ["dep-32", "dep-40"],
        {"dep-32": 50.5, "dep-40": None},
    )
    assert RankState.decode({}) == RankState()
