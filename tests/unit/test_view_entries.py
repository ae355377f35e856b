"""The stored form of entries and account summaries: compact, exact, and ordered as the
contract's compare-and-set (later observed_at wins, then the greater event_id)."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from services.common.clock import from_epoch, parse_timestamp
from services.common.events import MAX_COUNT
from services.common.methodology import SnapshotSummary
from services.common.view.entries import (
    VERSION_BYTES,
    decode_account_link,
    decode_entry,
    decode_summary,
    encode_account_link,
    encode_entry,
    encode_summary,
    entry_version,
    version_epoch,
    version_event_id,
)

# Years 0001-9999 are what the contract's timestamp pattern allows.
EPOCHS = st.integers(min_value=-62_135_596_800, max_value=253_402_300_799)
EVENT_IDS = st.binary(min_size=32, max_size=32).map(bytes.hex)


@given(EPOCHS, EVENT_IDS, EPOCHS, EVENT_IDS)
def test_version_bytes_order_is_the_contract_order(a, x, b, y) -> None:
    assert (entry_version(a, x) < entry_version(b, y)) == ((a, x) < (b, y))
    assert (entry_version(a, x) == entry_version(b, y)) == ((a, x) == (b, y))


@given(EPOCHS, EVENT_IDS)
def test_version_round_trip(epoch, event_id) -> None:
    version = entry_version(epoch, event_id)
    assert len(version) == VERSION_BYTES
    assert version_epoch(version) == epoch
    assert version_event_id(version) == event_id


def test_entry_and_summary_round_trip_exactly() -> None:
    event_id = hashlib.sha256(b"x").hexdigest()
    observed_at = "2026-11-26T14:00:00Z"
    summary = SnapshotSummary(
        observed_at=observed_at,
        event_id=event_id,
        followers=120_345,
        follows=312,
        posts=27,
        engagement=0.012345678901234567,
        likes_hidden=True,
    )
    version = entry_version(int(parse_timestamp(observed_at).timestamp()), event_id)
    raw = encode_entry(version, "gersledepartement", False, summary)
    entry = decode_entry(raw)
    assert entry.version == version and entry.handle == "gersledepartement"
    assert entry.simulated is False
    assert entry.summary == summary
    assert decode_summary(encode_summary(version, summary)) == summary
    assert from_epoch(version_epoch(version)) == observed_at
    # The version is the only copy of observed_at and event_id (37 bytes, not 75 as text);
    # then a flags byte, three 32-bit counts, E as a double, and the handle.
    assert len(raw) == VERSION_BYTES + 1 + 3 * 4 + 8 + len("gersledepartement")
    assert len(encode_summary(version, summary)) == VERSION_BYTES + 1 + 3 * 4 + 8


COUNTS = st.integers(min_value=0, max_value=MAX_COUNT)
HANDLES = st.none() | st.text(min_size=1, max_size=40)


@given(
    EPOCHS,
    EVENT_IDS,
    COUNTS,
    COUNTS,
    COUNTS,
    st.floats(0, 1e6),
    st.booleans(),
    HANDLES,
    st.booleans(),
)
def test_any_summary_and_entry_round_trip_exactly(
    epoch, event_id, followers, follows, posts, engagement, hidden, handle, simulated
) -> None:
    has_e = posts > 0 and followers > 0
    summary = SnapshotSummary(
        observed_at=from_epoch(epoch),
        event_id=event_id,
        followers=followers,
        follows=follows,
        posts=posts,
        engagement=engagement if has_e else None,
        likes_hidden=hidden,
    )
    version = entry_version(epoch, event_id)
    entry = decode_entry(encode_entry(version, handle, simulated, summary))
    assert (entry.version, entry.handle, entry.simulated) == (version, handle, simulated)
    assert entry.summary == summary
    assert decode_summary(encode_summary(version, summary)) == summary


@given(HANDLES, st.booleans())
def test_account_link_round_trip(handle, simulated) -> None:
    assert decode_account_link(encode_account_link(handle, simulated)) == (handle, simulated)
