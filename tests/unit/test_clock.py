"""Contract timestamps: the fast epoch of a timestamp is the parsed one's, and refuses the same."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.clock import format_timestamp, parse_timestamp, to_epoch


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23)))
def test_to_epoch_is_the_parsed_timestamps(moment: datetime) -> None:
    text = format_timestamp(moment.replace(tzinfo=UTC))
    assert to_epoch(text) == int(parse_timestamp(text).timestamp())


@given(st.text(alphabet="0123456789-:TZ٣ ", min_size=19, max_size=21))
def test_to_epoch_refuses_what_parsing_refuses(text: str) -> None:
    try:
        expected: int | None = int(parse_timestamp(text).timestamp())
    except ValueError:
        expected = None
    if expected is None:
        with pytest.raises(ValueError):
            to_epoch(text)
    else:
        assert to_epoch(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-30T10:00:00Z",
        "2026-06-01T24:00:00Z",
        "2026-06-01T10:60:00Z",
        "2026-06-01T10:00:60Z",
        "2026-06-01T10:00:00+00:00",
        "2026-06-01 10:00:00Z",
        "2026-06-01T10:00:0٣Z",
    ],
)
def test_to_epoch_refuses_impossible_times(text: str) -> None:
    with pytest.raises(ValueError):
        to_epoch(text)
