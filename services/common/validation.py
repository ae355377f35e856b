"""Validate one Kafka record value against its topic's contract: a model or a Rejection.

Every consumer calls this before acting on a record; a Rejection goes to `{topic}.dlq`
(services/common/deadletter.py) and the consumer moves on. Pure: no I/O, no clock (the
`future` rule compares with the record timestamp, which is part of the log, so a live run and
a rebuild judge alike). Never raises, whatever the bytes.

Checks, in order, each with its stable reason code (docs/events.md):
`oversized` (metrics only, before parsing), `invalid_json`, `not_an_object`,
`unsupported_schema_version`, `schema`, `event_id_mismatch`, `future`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeVar

import orjson
from pydantic import ValidationError

from services.common.clock import to_epoch
from services.common.contracts import (
    FUTURE_TOLERANCE_SECONDS,
    MAX_METRICS_PAYLOAD_BYTES,
    SCHEMA_VERSION,
)
from services.common.events import (
    EDITION_PATTERN,
    EVENT_ID_PATTERN,
    PLATFORM_ID_PATTERN,
    TERRITORY_ID_PATTERN,
    TIMESTAMP_PATTERN,
    AccountRecord,
    Command,
    DaySummaries,
    Event,
    MetricsSnapshot,
    ScoreEvent,
    compute_event_id,
)
from services.common.handles import HANDLE_PATTERN

EventT = TypeVar("EventT", bound=Event)

OVERSIZED: Final = "oversized"
INVALID_JSON: Final = "invalid_json"
NOT_AN_OBJECT: Final = "not_an_object"
UNSUPPORTED_SCHEMA_VERSION: Final = "unsupported_schema_version"
SCHEMA: Final = "schema"
EVENT_ID_MISMATCH: Final = "event_id_mismatch"
FUTURE: Final = "future"
REASONS: Final = (
    OVERSIZED,
    INVALID_JSON,
    NOT_AN_OBJECT,
    UNSUPPORTED_SCHEMA_VERSION,
    SCHEMA,
    EVENT_ID_MISMATCH,
    FUTURE,
)
MAX_DETAIL_LENGTH: Final = 300
_HEX: Final = frozenset("0123456789abcdef")
# What a pattern means, for details a person can read (the calendar regex is not one).
_PATTERN_NAMES: Final = {
    TIMESTAMP_PATTERN: "should be a real UTC time written YYYY-MM-DDTHH:MM:SSZ",
    HANDLE_PATTERN: "should be a normalised handle: a-z, 0-9, '.', '_', 1 to 30, no @",
    EVENT_ID_PATTERN: "should be 64 lower-case hex digits",
    TERRITORY_ID_PATTERN: "should be a territory id such as dep-32, com-75056, epci-200000172",
    EDITION_PATTERN: "should be an edition month YYYY-MM",
    PLATFORM_ID_PATTERN: "should be 1 to 64 of 0-9, A-Z, a-z, '_', '.', ':', '-'",
}


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record is invalid: `reason` is a short stable code, `detail` a short explanation."""

    reason: str
    detail: str


def validate(
    model_cls: type[EventT],
    raw: bytes | None,
    record_timestamp_ms: int | None,
    *,
    max_bytes: int | None = None,
) -> EventT | Rejection:
    """Validate a record value as `model_cls` (its event time is `model_cls.TIME_FIELD`)."""
    try:
        return _validate(model_cls, raw, record_timestamp_ms, max_bytes)
    except Exception as error:  # the contract: a consumer never crashes on its input
        return Rejection(SCHEMA, _short(f"unexpected {type(error).__name__}: {error}"))


def validate_metrics(
    raw: bytes | None, record_timestamp_ms: int | None
) -> MetricsSnapshot | Rejection:
    """Validate an `obs.metrics.v1` record value (at most 256 KiB)."""
    return validate(MetricsSnapshot, raw, record_timestamp_ms, max_bytes=MAX_METRICS_PAYLOAD_BYTES)


def validate_account(
    raw: bytes | None, record_timestamp_ms: int | None
) -> AccountRecord | Rejection:
    """Validate an `obs.accounts.v1` record value."""
    return validate(AccountRecord, raw, record_timestamp_ms)


def validate_command(raw: bytes | None, record_timestamp_ms: int | None) -> Command | Rejection:
    """Validate an `obs.commands.v1` record value."""
    return validate(Command, raw, record_timestamp_ms)


def validate_score(raw: bytes | None, record_timestamp_ms: int | None) -> ScoreEvent | Rejection:
    """Validate an `obs.scores.v1` record value."""
    return validate(ScoreEvent, raw, record_timestamp_ms)


def validate_day_summaries(
    raw: bytes | None, record_timestamp_ms: int | None
) -> DaySummaries | Rejection:
    """Validate an `obs.day-summaries.v1` record value."""
    return validate(DaySummaries, raw, record_timestamp_ms)


def _validate(
    model_cls: type[EventT],
    raw: bytes | None,
    record_timestamp_ms: int | None,
    max_bytes: int | None,
) -> EventT | Rejection:
    if raw is None:
        return Rejection(INVALID_JSON, "no value (a tombstone)")
    if max_bytes is not None and len(raw) > max_bytes:
        return Rejection(OVERSIZED, f"{len(raw)} bytes; at most {max_bytes}")
    try:
        obj = orjson.loads(raw)  # also refuses invalid UTF-8 and lone surrogates
    except orjson.JSONDecodeError as error:
        return Rejection(INVALID_JSON, _short(str(error)))
    if not isinstance(obj, dict):
        return Rejection(NOT_AN_OBJECT, f"top-level JSON {_json_type(obj)}, not an object")
    version = obj.get("schema_version")
    if type(version) is int and version != SCHEMA_VERSION:
        return Rejection(
            UNSUPPORTED_SCHEMA_VERSION, f"schema_version {version}; this consumer reads 1"
        )
    try:
        event = model_cls.model_validate(obj)
    except ValidationError as error:
        return Rejection(SCHEMA, _describe(error))
    expected_id = _event_id(model_cls, obj)
    if obj["event_id"] != expected_id:
        return Rejection(
            EVENT_ID_MISMATCH, f"event_id {obj['event_id']}, content hashes to {expected_id}"
        )
    if record_timestamp_ms is not None and record_timestamp_ms >= 0:
        event_time = event.event_time()
        ahead_ms = int(datetime.fromisoformat(event_time).timestamp() * 1000) - record_timestamp_ms
        if ahead_ms > FUTURE_TOLERANCE_SECONDS * 1000:
            return Rejection(
                FUTURE,
                f"{model_cls.TIME_FIELD} {event_time} is {ahead_ms / 1000:g} s after the record "
                f"timestamp (tolerance {FUTURE_TOLERANCE_SECONDS} s)",
            )
    return event


def _event_id(model_cls: type[Event], obj: dict[str, Any]) -> str:
    """The canonical id of an event the model accepted."""
    return compute_event_id(obj, orjson_safe=model_cls.ORJSON_IS_CANONICAL)


def _describe(error: ValidationError) -> str:
    """`path: message` of the first error (union branch names dropped), plus how many more."""
    errors = error.errors(include_url=False, include_input=False)
    first = errors[0]
    path = ".".join(
        str(part) for part in first["loc"] if isinstance(part, int) or part.isidentifier()
    )
    message = first["msg"]
    if first["type"] == "string_pattern_mismatch":
        message = _PATTERN_NAMES.get(first.get("ctx", {}).get("pattern", ""), message)
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return _short(f"{path or '(event)'}: {message}{more}")


def _json_type(value: object) -> str:
    names = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _short(text: str) -> str:
    return text if len(text) <= MAX_DETAIL_LENGTH else text[: MAX_DETAIL_LENGTH - 1] + "…"


@dataclass(frozen=True, slots=True)
class MetricsPeek:
    """What a first, cheap reading of an `obs.metrics.v1` record gives (not validated)."""

    platform: str
    handle: str
    status: str
    observed_at: str
    event_id: str
    epoch: int


def peek_metrics(raw: bytes) -> MetricsPeek | None:
    """A first reading of a record: its account, status, time and id, about a tenth of the
    cost of `validate_metrics` (no schema, no event id check). None when the record does not
    even read as a snapshot. For valid records the values are those validation accepts (the
    same bytes through the same parser); rebuilds use it to skip validating records that
    cannot change their result (services/scorer/reduce.py)."""
    if len(raw) > MAX_METRICS_PAYLOAD_BYTES:
        return None
    try:
        obj = orjson.loads(raw)
        platform, handle, status = obj["platform"], obj["handle"], obj["status"]
        observed_at, event_id = obj["observed_at"], obj["event_id"]
        if not all(type(v) is str for v in (platform, handle, status, observed_at, event_id)):
            return None
        if len(event_id) != 64 or not _HEX.issuperset(event_id):
            return None
        epoch = to_epoch(observed_at)  # shape and calendar (ValueError)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    return MetricsPeek(platform, handle, status, observed_at, event_id, epoch)
