"""How one territory's entry is stored in a standings view (the scorer writes, the API reads).

`<version>|<JSON array>`: the compare-and-set version first (`%010d:<event_id>`, so that the
scripts compare it as a string), then the handle, the simulated flag and the snapshot summary.
The indicator breakdown is not stored: readers recompute it from the summary and the
territory's population with the pure methodology, which keeps each entry around 150 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from services.common.clock import from_epoch
from services.common.methodology import Score, SnapshotSummary, score_summary


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """A territory's entry: its version, account and the summary it is scored on."""

    version: str
    handle: str | None
    simulated: bool
    summary: SnapshotSummary

    def score(self, population: int) -> Score:
        """The methodology v1 score and breakdown of this entry for a population."""
        return score_summary(self.summary, population)


def entry_version(observed_epoch: int, event_id: str) -> str:
    """`%010d:<event_id>`: string order is the contract's compare-and-set order."""
    return f"{observed_epoch:010d}:{event_id}"


def _summary_fields(summary: SnapshotSummary) -> list[object]:
    return [
        summary.followers,
        summary.follows,
        summary.posts,
        summary.engagement,
        summary.likes_hidden,
    ]


def _summary_of(version: str, fields: list[Any]) -> SnapshotSummary:
    epoch, _, event_id = version.partition(":")
    followers, follows, posts, engagement, likes_hidden = fields
    return SnapshotSummary(
        observed_at=from_epoch(int(epoch)),
        event_id=event_id,
        followers=followers,
        follows=follows,
        posts=posts,
        engagement=engagement,
        likes_hidden=likes_hidden,
    )


def encode_entry(
    version: str, handle: str | None, simulated: bool, summary: SnapshotSummary
) -> bytes:
    """The stored form of an entry: `<version>|[handle, simulated, <summary fields>]`."""
    return version.encode() + b"|" + orjson.dumps([handle, simulated, *_summary_fields(summary)])


def encode_summary(version: str, summary: SnapshotSummary) -> bytes:
    """The stored form of an account's summary: `<version>|[followers, follows, n, E, hidden]`."""
    return version.encode() + b"|" + orjson.dumps(_summary_fields(summary))


def decode_summary(raw: bytes) -> SnapshotSummary:
    """Inverse of `encode_summary`."""
    version, _, body = raw.partition(b"|")
    return _summary_of(version.decode(), orjson.loads(body))


def decode_entry(raw: bytes) -> StoredEntry:
    """Inverse of `encode_entry`."""
    version, _, body = raw.partition(b"|")
    handle, simulated, *fields = orjson.loads(body)
    return StoredEntry(version.decode(), handle, simulated, _summary_of(version.decode(), fields))
