"""How one territory's entry is stored in a standings view (the scorer writes, the API reads).

`<version><packed summary><handle>`: the compare-and-set version first (37 bytes, see
`entry_version`), then the snapshot summary packed in binary (flags, counts, E) and the
handle. The indicator breakdown is not stored: readers recompute it from the summary and the
territory's population with the pure methodology, which keeps each entry near 75 bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

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


# The summary after the version, packed (little-endian): a flags byte, then followers, follows
# and n as unsigned 32-bit integers (64-bit when one does not fit: flag WIDE), then E as a
# double when it exists (flag ENGAGEMENT). An entry appends its handle's UTF-8 bytes.
# About 21 bytes where the JSON array took 45: the summary is stored five times per territory
# with two edition months open (docs/redis.md, Memory).
LIKES_HIDDEN: Final = 0x01
ENGAGEMENT: Final = 0x02
WIDE: Final = 0x04
SIMULATED: Final = 0x08
HANDLE: Final = 0x10
_COUNTS = {False: struct.Struct("<3I"), True: struct.Struct("<3Q")}
_DOUBLE = struct.Struct("<d")
_U32_MAX: Final = 2**32 - 1


def _pack_summary(summary: SnapshotSummary, flags: int) -> bytes:
    counts = (summary.followers, summary.follows, summary.posts)
    wide = max(counts) > _U32_MAX
    flags |= (LIKES_HIDDEN if summary.likes_hidden else 0) | (WIDE if wide else 0)
    if summary.engagement is None:
        return bytes((flags,)) + _COUNTS[wide].pack(*counts)
    engagement = _DOUBLE.pack(summary.engagement)
    return bytes((flags | ENGAGEMENT,)) + _COUNTS[wide].pack(*counts) + engagement


def _unpack_summary(version: bytes, raw: bytes) -> tuple[SnapshotSummary, int, int]:
    """The summary packed at `raw[VERSION_BYTES:]`, its flags and where it ends."""
    flags = raw[VERSION_BYTES]
    counts = _COUNTS[bool(flags & WIDE)]
    at = VERSION_BYTES + 1
    followers, follows, posts = counts.unpack_from(raw, at)
    at += counts.size
    engagement = None
    if flags & ENGAGEMENT:
        (engagement,) = _DOUBLE.unpack_from(raw, at)
        at += _DOUBLE.size
    summary = SnapshotSummary(
        observed_at=from_epoch(version_epoch(version)),
        event_id=version_event_id(version),
        followers=followers,
        follows=follows,
        posts=posts,
        engagement=engagement,
        likes_hidden=bool(flags & LIKES_HIDDEN),
    )
    return summary, flags, at


def encode_entry(
    version: bytes, handle: str | None, simulated: bool, summary: SnapshotSummary
) -> bytes:
    """The stored form of an entry: `<version><packed summary><handle UTF-8>`."""
    flags = (SIMULATED if simulated else 0) | (HANDLE if handle is not None else 0)
    return version + _pack_summary(summary, flags) + (handle or "").encode()


def encode_summary(version: bytes, summary: SnapshotSummary) -> bytes:
    """The stored form of an account's summary: `<version><packed summary>`."""
    return version + _pack_summary(summary, 0)


def decode_summary(raw: bytes) -> SnapshotSummary:
    """Inverse of `encode_summary`."""
    return _unpack_summary(raw[:VERSION_BYTES], raw)[0]


def decode_entry(raw: bytes) -> StoredEntry:
    """Inverse of `encode_entry`."""
    version = raw[:VERSION_BYTES]
    summary, flags, at = _unpack_summary(version, raw)
    handle = raw[at:].decode() if flags & HANDLE else None
    return StoredEntry(version, handle, bool(flags & SIMULATED), summary)


# An account's summaries are one value (its field in a bucket hash, services.common.view.keys
# `summaries_key`): for each edition month, `<length><month><version><packed summary>`, the
# month as 3 bytes (year * 12 + month - 1, big-endian), months in ascending order. The scorer's
# compare-and-set script rewrites it (services/common/view/scripts/scorer.py, ACCOUNT_CAS).
MONTH_CODE_BYTES: Final = 3


def month_code(edition: str) -> bytes:
    """`YYYY-MM` as 3 bytes that order as the months do."""
    year, month = int(edition[:4]), int(edition[5:7])
    return (year * 12 + month - 1).to_bytes(MONTH_CODE_BYTES, "big")


def month_of_code(code: bytes) -> str:
    """Inverse of `month_code`."""
    year, month = divmod(int.from_bytes(code, "big"), 12)
    return f"{year:04d}-{month + 1:02d}"


def encode_month_summary(edition: str, version: bytes, summary: SnapshotSummary) -> bytes:
    """One month of an account's summaries, as the script receives it (without its length):
    `<month><version><packed summary>`."""
    return month_code(edition) + encode_summary(version, summary)


def decode_month_summaries(raw: bytes) -> dict[str, SnapshotSummary]:
    """An account's stored summaries: edition month -> summary."""
    out: dict[str, SnapshotSummary] = {}
    at = 0
    while at < len(raw):
        size = raw[at]
        body = raw[at + 1 : at + 1 + size]
        out[month_of_code(body[:MONTH_CODE_BYTES])] = decode_summary(body[MONTH_CODE_BYTES:])
        at += 1 + size
    return out


def encode_account_link(handle: str | None, simulated: bool) -> bytes:
    """A territory's account in the scorer's mapping (`obs:{meta}:accounts`): a flags byte
    (SIMULATED, HANDLE) then the handle's UTF-8 bytes."""
    flags = (SIMULATED if simulated else 0) | (HANDLE if handle is not None else 0)
    return bytes((flags,)) + (handle or "").encode()


def decode_account_link(raw: bytes | str) -> tuple[str | None, bool]:
    """Inverse of `encode_account_link`: (handle, simulated)."""
    data = raw.encode() if isinstance(raw, str) else raw
    flags = data[0]
    return (data[1:].decode() if flags & HANDLE else None), bool(flags & SIMULATED)
