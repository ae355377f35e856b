"""The consumer lag's arithmetic (services/common/kafka/lag.py), pure."""

from __future__ import annotations

from services.common.kafka.lag import partition_lag


def test_lag_is_end_offset_minus_committed_offset():
    assert partition_lag({("t", 0): 10, ("t", 1): 7}, {("t", 0): 4, ("t", 1): 7}, {}) == {
        ("t", 0): 6,
        ("t", 1): 0,
    }


def test_a_partition_never_committed_owes_its_records_from_its_first_offset():
    # Nothing committed (0): the group reads from the first offset retention left.
    assert partition_lag({("t", 0): 30}, {}, {("t", 0): 25}) == {("t", 0): 5}
    assert partition_lag({("t", 0): 30}, {("t", 0): 0}, {}) == {("t", 0): 30}


def test_lag_is_never_negative_when_the_end_offset_is_reported_short():
    # Tansu reports the base offset of the last batch + 1 for batched topics (obs.scores.v1).
    assert partition_lag({("t", 0): 21}, {("t", 0): 30}, {}) == {("t", 0): 0}
