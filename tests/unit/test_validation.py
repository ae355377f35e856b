"""The consumers' validator (reason codes, never raising) and dead-letter records."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.clock import to_epoch
from services.common.contracts import (
    DLQ_PAYLOAD_TRUNCATE_BYTES,
    FUTURE_TOLERANCE_SECONDS,
    MAX_METRICS_PAYLOAD_BYTES,
)
from services.common.deadletter import dead_letter_record, dlq_topic
from services.common.events import (
    EVENT_MODELS,
    AccountRecord,
    Command,
    MetricsSnapshot,
    ScoreEvent,
    build_metrics_event,
    build_recent_post,
    canonical_json,
    compute_event_id,
    with_event_id,
)
from services.common.validation import (
    REASONS,
    Rejection,
    validate,
    validate_account,
    validate_command,
    validate_metrics,
    validate_score,
)

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "services" / "common" / "schemas"


def example(topic: str, index: int = 0) -> dict[str, Any]:
    schema = json.loads((SCHEMA_DIR / f"{topic}.json").read_text(encoding="utf-8"))
    return copy.deepcopy(schema["examples"][index])


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode("utf-8")


def ms(timestamp: str) -> int:
    return to_epoch(timestamp) * 1000


METRICS = example("obs.metrics.v1")
METRICS_RAW = encode(METRICS)
OBSERVED_MS = ms(METRICS["observed_at"])


def rejection(result: object) -> Rejection:
    assert isinstance(result, Rejection), result
    return result


# --- Accepted ---------------------------------------------------------------------------------


def test_valid_metrics_event_gives_the_model() -> None:
    snapshot = validate_metrics(METRICS_RAW, OBSERVED_MS)
    assert isinstance(snapshot, MetricsSnapshot)
    assert snapshot.to_dict() == METRICS


@pytest.mark.parametrize(
    ("validator", "topic", "model"),
    [
        (validate_account, "obs.accounts.v1", AccountRecord),
        (validate_command, "obs.commands.v1", Command),
        (validate_score, "obs.scores.v1", ScoreEvent),
    ],
)
def test_each_consumed_topic_has_its_validator(validator: Any, topic: str, model: type) -> None:
    event = example(topic)
    assert isinstance(validator(encode(event), None), model)


@pytest.mark.parametrize("topic", sorted(EVENT_MODELS))
def test_generic_validate_accepts_every_example(topic: str) -> None:
    event = example(topic)
    model = EVENT_MODELS[topic]
    record_ms = ms(event[model.TIME_FIELD])
    assert isinstance(validate(model, encode(event), record_ms), model)


# --- Each reason code -------------------------------------------------------------------------


def test_oversized_metrics_are_rejected_before_parsing() -> None:
    result = rejection(validate_metrics(b"{" * (MAX_METRICS_PAYLOAD_BYTES + 1), OBSERVED_MS))
    assert result.reason == "oversized"
    assert str(MAX_METRICS_PAYLOAD_BYTES + 1) in result.detail


def test_metrics_exactly_at_the_size_limit_are_accepted() -> None:
    padded = METRICS_RAW + b" " * (MAX_METRICS_PAYLOAD_BYTES - len(METRICS_RAW))
    assert len(padded) == MAX_METRICS_PAYLOAD_BYTES
    assert isinstance(validate_metrics(padded, OBSERVED_MS), MetricsSnapshot)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b'{"a": 1,}',
        b"\xff\xfe{}",
        b'{"handle": "\xe9"}',  # Latin-1, not UTF-8
        b'{"handle": "\\ud800"}',  # lone surrogate
        b"NaN",
        b'{"x": 1e400}',
        b"{} {}",
    ],
)
def test_malformed_json_or_utf8_is_invalid_json(raw: bytes) -> None:
    assert rejection(validate_metrics(raw, OBSERVED_MS)).reason == "invalid_json"


def test_tombstone_is_invalid_json() -> None:
    assert rejection(validate_account(None, None)).reason == "invalid_json"


@pytest.mark.parametrize("raw", [b"[]", b"[{}]", b"42", b'"event"', b"null", b"true"])
def test_json_that_is_not_an_object_is_rejected(raw: bytes) -> None:
    result = rejection(validate_metrics(raw, OBSERVED_MS))
    assert result.reason == "not_an_object"


@pytest.mark.parametrize("version", [2, 0, -1, 2**63 - 1])
def test_other_schema_version_is_unsupported(version: int) -> None:
    event = with_event_id({**METRICS, "schema_version": version})
    result = rejection(validate_metrics(encode(event), OBSERVED_MS))
    assert result.reason == "unsupported_schema_version"


@pytest.mark.parametrize("version", ["1", True, 1.0, None])
def test_schema_version_of_the_wrong_type_is_a_schema_error(version: object) -> None:
    event = with_event_id({**METRICS, "schema_version": version})
    result = rejection(validate_metrics(encode(event), OBSERVED_MS))
    assert result.reason == "schema"
    assert result.detail.startswith("schema_version:")


def test_schema_detail_names_the_field_path() -> None:
    event = copy.deepcopy(METRICS)
    event["recent_posts"][2]["likes"] = -1
    result = rejection(validate_metrics(encode(with_event_id(event)), OBSERVED_MS))
    assert result.reason == "schema"
    assert result.detail == "recent_posts.2.likes: Input should be greater than or equal to 0"


def test_schema_detail_counts_further_errors_and_stays_short() -> None:
    event = {**METRICS, "followers": "many", "follows": -1, "handle": "X" * 10_000}
    result = rejection(validate_metrics(encode(with_event_id(event)), OBSERVED_MS))
    assert result.reason == "schema"
    assert "(+2 more)" in result.detail
    assert len(result.detail) <= 300


def test_cross_field_rule_is_a_schema_error_on_the_event() -> None:
    event = with_event_id({**METRICS, "followers": None})
    result = rejection(validate_metrics(encode(event), OBSERVED_MS))
    assert result.reason == "schema"
    assert "status ok needs followers" in result.detail


def test_non_normalised_handle_is_rejected_not_fixed() -> None:
    event = with_event_id({**METRICS, "handle": "@GersLeDepartement"})
    result = rejection(validate_metrics(encode(event), OBSERVED_MS))
    assert (result.reason, result.detail.split(":")[0]) == ("schema", "handle")


def test_event_id_that_is_not_the_content_hash_is_a_mismatch() -> None:
    event = {**METRICS, "followers": 15001}  # content changed, id kept
    result = rejection(validate_metrics(encode(event), OBSERVED_MS))
    assert result.reason == "event_id_mismatch"
    assert compute_event_id(event) in result.detail


def test_key_order_and_whitespace_do_not_change_the_id() -> None:
    reordered = dict(sorted(METRICS.items(), reverse=True))
    raw = json.dumps(reordered, indent=4).encode()
    assert isinstance(validate_metrics(raw, OBSERVED_MS), MetricsSnapshot)


def test_event_more_than_five_minutes_after_its_record_is_from_the_future() -> None:
    record_ms = OBSERVED_MS - (FUTURE_TOLERANCE_SECONDS + 1) * 1000
    result = rejection(validate_metrics(METRICS_RAW, record_ms))
    assert result.reason == "future"
    assert result.detail.startswith("observed_at 2021-06-30T06:00:00Z is 301 s after")


def test_event_exactly_five_minutes_ahead_is_accepted() -> None:
    record_ms = OBSERVED_MS - FUTURE_TOLERANCE_SECONDS * 1000
    assert isinstance(validate_metrics(METRICS_RAW, record_ms), MetricsSnapshot)


def test_old_events_are_never_future() -> None:
    assert isinstance(
        validate_metrics(METRICS_RAW, OBSERVED_MS + 365 * 86400 * 1000), MetricsSnapshot
    )


@pytest.mark.parametrize("record_ms", [None, -1])
def test_without_a_record_timestamp_the_future_rule_is_skipped(record_ms: int | None) -> None:
    assert isinstance(validate_metrics(METRICS_RAW, record_ms), MetricsSnapshot)


@pytest.mark.parametrize(
    ("validator", "topic", "time_field"),
    [
        (validate_account, "obs.accounts.v1", "changed_at"),
        (validate_command, "obs.commands.v1", "requested_at"),
    ],
)
def test_future_rule_reads_each_topics_event_time(
    validator: Any, topic: str, time_field: str
) -> None:
    event = example(topic)
    too_early = ms(event[time_field]) - 301_000
    result = rejection(validator(encode(event), too_early))
    assert result.reason == "future" and result.detail.startswith(time_field)


def test_checks_run_in_the_documented_order() -> None:
    # Bad id and from the future: the id is reported, it is checked first.
    event = {**METRICS, "followers": 1}
    assert rejection(validate_metrics(encode(event), 0)).reason == "event_id_mismatch"
    # Unsupported version with schema errors too: the version is reported.
    event = {**METRICS, "schema_version": 2, "followers": -1}
    assert rejection(validate_metrics(encode(event), None)).reason == "unsupported_schema_version"


# --- Never raises, whatever the input -----------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.binary(max_size=2048), st.none() | st.integers())
def test_arbitrary_bytes_give_a_rejection_or_a_model(raw: bytes, record_ms: int | None) -> None:
    for validator in (validate_metrics, validate_account, validate_command, validate_score):
        result = validator(raw, record_ms)
        assert isinstance(
            result, Rejection | MetricsSnapshot | AccountRecord | Command | ScoreEvent
        )
        if isinstance(result, Rejection):
            assert result.reason in REASONS


@given(json_values, st.none() | st.integers(min_value=-(2**63), max_value=2**63))
def test_arbitrary_json_gives_a_rejection_or_a_model(value: object, record_ms: int | None) -> None:
    raw = json.dumps(value).encode("utf-8", errors="surrogatepass")
    for model in EVENT_MODELS.values():
        result = validate(model, raw, record_ms)
        assert isinstance(result, Rejection | model)


@given(
    st.sampled_from(sorted(METRICS)),
    json_values,
    st.booleans(),
)
def test_any_field_replaced_by_any_value_gives_a_rejection_or_a_model(
    field: str, value: object, restamp: bool
) -> None:
    event = {**METRICS, field: value}
    if restamp:
        event = with_event_id(event)
    raw = json.dumps(event).encode("utf-8", errors="surrogatepass")
    result = validate_metrics(raw, OBSERVED_MS)
    assert isinstance(result, Rejection | MetricsSnapshot)


# --- The fast canonical path is exact -----------------------------------------------------------

posts = st.lists(
    st.builds(
        build_recent_post,
        post_id=st.from_regex(r"[0-9A-Za-z_.:-]{1,64}", fullmatch=True),
        published_at=st.datetimes(
            min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
        ),
        likes=st.integers(0, 2**53 - 1),
        comments=st.integers(0, 2**53 - 1),
    ),
    max_size=5,
    unique_by=lambda post: post["id"],
)


@settings(max_examples=200)
@given(
    handle=st.from_regex(r"[a-z0-9._]{1,30}", fullmatch=True),
    account_id=st.none() | st.from_regex(r"[0-9A-Za-z_.:-]{1,64}", fullmatch=True),
    counts=st.tuples(*[st.integers(0, 2**53 - 1)] * 3),
    recent_posts=posts,
)
def test_orjson_writes_the_canonical_json_of_every_valid_metrics_event(
    handle: str, account_id: str | None, counts: tuple[int, int, int], recent_posts: list[Any]
) -> None:
    event = build_metrics_event(
        handle=handle,
        account_id=account_id,
        observed_at="2021-06-30T06:00:00Z",
        status="ok",
        followers=counts[0],
        follows=counts[1],
        media_count=counts[2],
        recent_posts=recent_posts,
        source="sim",
    )
    assert orjson.dumps(event, option=orjson.OPT_SORT_KEYS) == canonical_json(event)
    assert isinstance(validate_metrics(encode(event), None), MetricsSnapshot)


@pytest.mark.parametrize("topic", sorted(EVENT_MODELS))
def test_fast_canonical_path_is_only_claimed_where_examples_agree(topic: str) -> None:
    model = EVENT_MODELS[topic]
    for index in range(len(json.loads((SCHEMA_DIR / f"{topic}.json").read_text())["examples"])):
        event = example(topic, index)
        if model.ORJSON_IS_CANONICAL:
            assert orjson.dumps(event, option=orjson.OPT_SORT_KEYS) == canonical_json(event)


# --- Dead letters -------------------------------------------------------------------------------

NOW = datetime(2021, 7, 1, 6, 0, 0, tzinfo=UTC)
REJECTION = Rejection("schema", "followers: Input should be greater than or equal to 0")


def dead_letter(**overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "topic": "obs.metrics.v1",
        "partition": 7,
        "offset": 123456,
        "key": b"instagram:gersledepartement",
        "record_timestamp_ms": 1625032800000,
        "payload": METRICS_RAW,
        "rejection": REJECTION,
        "now": NOW,
    }
    arguments.update(overrides)
    value = dead_letter_record(**arguments)
    record = json.loads(value)
    assert value == canonical_json(record)
    assert record["event_id"] == compute_event_id(record)
    return record


def test_dlq_topic_appends_dlq() -> None:
    assert dlq_topic("obs.metrics.v1") == "obs.metrics.v1.dlq"
    assert dlq_topic("test-42.obs.accounts.v1") == "test-42.obs.accounts.v1.dlq"
    with pytest.raises(ValueError):
        dlq_topic("obs.metrics.v1.dlq")


def test_dead_letter_record_says_where_from_and_why() -> None:
    record = dead_letter()
    assert {k: v for k, v in record.items() if k != "event_id"} == {
        "schema_version": 1,
        "reason": "schema",
        "detail": "followers: Input should be greater than or equal to 0",
        "topic": "obs.metrics.v1",
        "partition": 7,
        "offset": 123456,
        "key": "instagram:gersledepartement",
        "record_timestamp_ms": 1625032800000,
        "payload_truncated": METRICS_RAW.decode("utf-8"),
        "payload_sha256": hashlib.sha256(METRICS_RAW).hexdigest(),
        "payload_bytes": len(METRICS_RAW),
        "dead_lettered_at": "2021-07-01T06:00:00Z",
    }


def test_dead_letter_truncates_the_payload_but_hashes_all_of_it() -> None:
    payload = "é".encode() * MAX_METRICS_PAYLOAD_BYTES  # 2 bytes per character
    record = dead_letter(payload=payload, rejection=Rejection("oversized", "too big"))
    assert record["payload_bytes"] == len(payload)
    assert record["payload_sha256"] == hashlib.sha256(payload).hexdigest()
    assert record["payload_truncated"] == "é" * (DLQ_PAYLOAD_TRUNCATE_BYTES // 2)


def test_dead_letter_replaces_undecodable_bytes() -> None:
    payload = b"\xff" + b"x" * (DLQ_PAYLOAD_TRUNCATE_BYTES - 2) + "é".encode()  # é cut in two
    record = dead_letter(payload=payload, key=b"\xfe\xff")
    assert (
        record["payload_truncated"] == "\ufffd" + "x" * (DLQ_PAYLOAD_TRUNCATE_BYTES - 2) + "\ufffd"
    )
    assert record["key"] == "\ufffd\ufffd"


def test_dead_letter_of_a_tombstone_without_key_or_timestamp() -> None:
    record = dead_letter(payload=None, key=None, record_timestamp_ms=None)
    assert record["key"] is None and record["record_timestamp_ms"] is None
    assert record["payload_truncated"] is None
    assert record["payload_sha256"] is None and record["payload_bytes"] is None


def test_rejection_of_any_payload_can_be_dead_lettered() -> None:
    for raw in (b"\xff\xfe", b'{"handle": "\\ud800"}', b"[]", METRICS_RAW[:-1]):
        result = rejection(validate_metrics(raw, None))
        record = dead_letter(payload=raw, rejection=result)
        assert record["reason"] == result.reason
