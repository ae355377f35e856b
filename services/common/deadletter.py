"""Dead-letter records: what a consumer writes to `{topic}.dlq` for a record it rejected.

Pure: the consumer passes the record's coordinates, the Rejection and its clock. The record
keeps enough to find, understand and replay the original (topic, partition, offset, key, a
truncated copy and the hash of the whole payload) without ever being too big itself.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Final

from services.common.clock import format_timestamp
from services.common.contracts import DLQ_PAYLOAD_TRUNCATE_BYTES, SCHEMA_VERSION
from services.common.events import canonical_json, with_event_id
from services.common.validation import Rejection

DLQ_SUFFIX: Final = ".dlq"


def dlq_topic(topic: str) -> str:
    """The dead-letter topic of `topic` (`obs.metrics.v1` -> `obs.metrics.v1.dlq`)."""
    if topic.endswith(DLQ_SUFFIX):
        raise ValueError(f"{topic} is already a dead-letter topic; it has none of its own")
    return f"{topic}{DLQ_SUFFIX}"


def dead_letter_record(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    record_timestamp_ms: int | None,
    payload: bytes | None,
    rejection: Rejection,
    now: datetime,
) -> bytes:
    """The JSON value (canonical, with its event_id) to write to `dlq_topic(topic)`."""
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "reason": rejection.reason,
        "detail": _text(rejection.detail),
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": None if key is None else key.decode("utf-8", errors="replace"),
        "record_timestamp_ms": record_timestamp_ms,
        **_payload_fields(payload),
        "dead_lettered_at": format_timestamp(now),
    }
    return canonical_json(with_event_id(record))


def _payload_fields(payload: bytes | None) -> dict[str, Any]:
    """A truncated, replacement-decoded copy, the hash and size; all null for a tombstone."""
    if payload is None:
        return {"payload_truncated": None, "payload_sha256": None, "payload_bytes": None}
    return {
        "payload_truncated": payload[:DLQ_PAYLOAD_TRUNCATE_BYTES].decode("utf-8", errors="replace"),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "payload_bytes": len(payload),
    }


def _text(text: str) -> str:
    """Text that always encodes as UTF-8 (lone surrogates replaced)."""
    return text.encode("utf-8", errors="replace").decode("utf-8")
