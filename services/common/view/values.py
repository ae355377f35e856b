"""The typed codecs of the view's small stored values (docs/redis.md).

Each stored value has one codec here or in `entries` (the binary standings entries, month
summaries and account links): a frozen dataclass with `encode` and a `decode` class method, so
a reader gets a typed value and a writer cannot write a field the readers do not know. Adding a
field to a stored value means: the dataclass here, its encode/decode, docs/redis.md, and a
layout bump in `layout` when old values could not be read by the new decoder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import orjson

from services.common.view.entries import decode_account_link, encode_account_link
from services.common.watermark import K

Scores = dict[str, float | None]


@dataclass(frozen=True, slots=True)
class AccountLink:
    """A territory's account as the scorer last applied it from `obs.accounts.v1`
    (`obs:{meta}:accounts`, binary: services.common.view.entries.encode_account_link)."""

    handle: str | None
    simulated: bool

    def encode(self) -> bytes:
        return encode_account_link(self.handle, self.simulated)

    @classmethod
    def decode(cls, raw: bytes | str) -> AccountLink:
        handle, simulated = decode_account_link(raw)
        return cls(handle, simulated)


@dataclass(slots=True)
class RankState:
    """A category's last published list as recorded (`rc:state` HASH; seq 0: nothing
    published yet)."""

    seq: int = 0
    event_id: str | None = None
    at: str | None = None
    top: list[str] = field(default_factory=list)
    scores: Scores = field(default_factory=dict)

    @classmethod
    def decode(cls, raw: Mapping[bytes, bytes]) -> RankState:
        if not raw:
            return cls()
        return cls(
            seq=int(raw[b"seq"]),
            event_id=raw[b"event_id"].decode(),
            at=raw[b"at"].decode(),
            top=orjson.loads(raw[b"top"]),
            scores=orjson.loads(raw[b"scores"]),
        )


@dataclass(frozen=True, slots=True)
class PendingRankChange:
    """The write-ahead copy of a rank-change event being produced (`rc:pending`, JSON): what
    the event's record cannot carry, every score of its list."""

    seq: int
    event_id: str
    scores: Scores

    def encode(self) -> bytes:
        return orjson.dumps({"seq": self.seq, "event_id": self.event_id, "scores": self.scores})

    @classmethod
    def decode(cls, raw: bytes | str) -> PendingRankChange:
        value = orjson.loads(raw)
        return cls(int(value["seq"]), str(value["event_id"]), dict(value["scores"]))


@dataclass(frozen=True, slots=True)
class EditionRecord:
    """A published month in the editions index (`obs:{meta}:editions`, JSON): when, by which
    command (None: automatic), and how many territories each category ranked."""

    published_at: str
    command_id: str | None
    categories: dict[str, int]

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "published_at": self.published_at,
                "command_id": self.command_id,
                "categories": self.categories,
            }
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> EditionRecord:
        value = orjson.loads(raw)
        return cls(
            str(value["published_at"]),
            value.get("command_id"),
            {str(c): int(n) for c, n in value.get("categories", {}).items()},
        )


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The publisher's answer to a command (`obs:{meta}:command-results`: the
    `obs.command-results.v1` record as produced)."""

    command_id: str
    status: Literal["done", "refused"]
    reason: str | None
    at: str | None

    @classmethod
    def decode(cls, command_id: str, raw: bytes | str) -> CommandResult:
        """The result stored under `command_id` (the hash field is the id: a record without
        its own `command_id` still decodes)."""
        value = cast(dict[str, Any], orjson.loads(raw))
        return cls(
            command_id,
            value["status"],
            value.get("reason"),
            value.get("at"),
        )


def decode_editions(raw: Mapping[bytes, bytes]) -> dict[str, EditionRecord]:
    """The editions index as read with HGETALL: month -> its record."""
    return {month.decode(): EditionRecord.decode(value) for month, value in raw.items()}


@dataclass(frozen=True, slots=True)
class DeadLink:
    """A dead account in the dead-links index (`obs:{meta}:dead-links`, JSON): since when it
    is dead and which territories it serves."""

    platform: str
    handle: str
    since: str | None
    territories: list[str]

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "platform": self.platform,
                "handle": self.handle,
                "since": self.since,
                "territories": sorted(self.territories),
            }
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> DeadLink:
        value = orjson.loads(raw)
        return cls(
            str(value["platform"]),
            str(value["handle"]),
            value.get("since"),
            [str(t) for t in value.get("territories", [])],
        )


def decode_watermark(members: Sequence[Any]) -> int | None:
    """The watermark from its sorted set as read with `ZRANGE key 0 -1 WITHSCORES` (at most K
    accounts with their newest epoch): the K-th newest, None while fewer than K are known."""
    return int(min(float(score) for _, score in members)) if len(members) >= K else None
