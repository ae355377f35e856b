"""How one territory's entry is stored in a standings view (the scorer writes, the API reads).

`<version><JSON array>`: the compare-and-set version first (37 bytes, see `entry_version`),
then the handle, the simulated flag and the snapshot summary. The indicator breakdown is not
stored: readers recompute it from the summary and the territory's population with the pure
methodology, which keeps each entry under 100 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from services.common.clock import from_epoch
from services.common.methodology import Score, SnapshotSummary, score_summary


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """A territory's entry: its version, account and the summary it is scored on."""

    version: bytes
    handle: str | None
    simulated: bool
    summary: SnapshotSummary

    def score(self, population: int) -> Score:
        """The methodology v1 score and breakdown of this entry for a population."""
        return score_summary(self.summary, population)


VERSION_BYTES: Final = 37
EPOCH_BYTES: Final = 5
EPOCH_OFFSET: Final = 1 << 39  # years 0000-9999 all fit, as non-negative numbers


def entry_version(observed_epoch: int, event_id: str) -> bytes:
    """The compare-and-set version: the observed_at epoch (offset, 5 bytes big-endian), then
    the 32 bytes of the event id. Byte order is the contract's order: the later `observed_at`
    wins, then the greater `event_id` (its hex digits order as its bytes do)."""
    return (observed_epoch + EPOCH_OFFSET).to_bytes(EPOCH_BYTES, "big") + bytes.fromhex(event_id)


def version_epoch(version: bytes) -> int:
    """The observed_at epoch of a version."""
    return int.from_bytes(version[:EPOCH_BYTES], "big") - EPOCH_OFFSET


def version_event_id(version: bytes) -> str:
    """The event id of a version."""
    return version[EPOCH_BYTES:VERSION_BYTES].hex()


def _summary_fields(summary: SnapshotSummary) -> list[object]:
    return [
        summary.followers,
        summary.follows,
        summary.posts,
        summary.engagement,
        summary.likes_hidden,
    ]


def _summary_of(version: bytes, fields: list[Any]) -> SnapshotSummary:
    followers, follows, posts, engagement, likes_hidden = fields
    return SnapshotSummary(
        observed_at=from_epoch(version_epoch(version)),
        event_id=version_event_id(version),
        followers=followers,
        follows=follows,
        posts=posts,
        engagement=engagement,
        likes_hidden=likes_hidden,
    )


def encode_entry(
    version: bytes, handle: str | None, simulated: bool, summary: SnapshotSummary
) -> bytes:
    """The stored form of an entry: `<version>[handle, simulated, <summary fields>]`."""
    return version + orjson.dumps([handle, simulated, *_summary_fields(summary)])


def encode_summary(version: bytes, summary: SnapshotSummary) -> bytes:
    """The stored form of an account's summary: `<version>[followers, follows, n, E, hidden]`."""
    return version + orjson.dumps(_summary_fields(summary))


def decode_summary(raw: bytes) -> SnapshotSummary:
    """Inverse of `encode_summary`."""
    version = raw[:VERSION_BYTES]
    return _summary_of(version, orjson.loads(raw[VERSION_BYTES:]))


def decode_entry(raw: bytes) -> StoredEntry:
    """Inverse of `encode_entry`."""
    version = raw[:VERSION_BYTES]
    handle, simulated, *fields = orjson.loads(raw[VERSION_BYTES:])
    return StoredEntry(version, handle, simulated, _summary_of(version, fields))


def encode_account_link(handle: str | None, simulated: bool) -> bytes:
    """A territory's account in the scorer's mapping (`obs:{meta}:accounts`):
    `[handle, simulated]`."""
    return orjson.dumps([handle, simulated])


def decode_account_link(raw: bytes | str) -> tuple[str | None, bool]:
    """Inverse of `encode_account_link`: (handle, simulated)."""
    handle, simulated = orjson.loads(raw)
    return handle, bool(simulated)
