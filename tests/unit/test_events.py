"""Event contracts: schema files, their examples, models, canonical ids and builders agree."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import fastjsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from services.common.contracts import CATEGORY_IDS, MAX_RECENT_POSTS, TOPICS
from services.common.events import (
    EVENT_MODELS,
    TERRITORY_ID_PATTERN,
    TIMESTAMP_PATTERN,
    AccountRecord,
    Category,
    Command,
    EditionPart,
    MetricsSnapshot,
    RankChange,
    build_account_record,
    build_command,
    build_metrics_event,
    build_recent_post,
    canonical_json,
    command_signature,
    compute_event_id,
    signature_matches,
    with_event_id,
)
from services.common.handles import HANDLE_PATTERN
from tests.signing import COMMAND_KEY

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "services" / "common" / "schemas"


def load_schema(topic: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{topic}.json").read_text(encoding="utf-8"))


SCHEMAS = {topic.name: load_schema(topic.name) for topic in TOPICS}
VALIDATORS = {topic: fastjsonschema.compile(schema) for topic, schema in SCHEMAS.items()}
EXAMPLES = [
    pytest.param(topic, example, id=f"{topic}-{index}")
    for topic, schema in SCHEMAS.items()
    for index, example in enumerate(schema["examples"])
]


def first_example(topic: str) -> dict[str, Any]:
    return copy.deepcopy(SCHEMAS[topic]["examples"][0])


# --- The schema files -----------------------------------------------------------------------


def test_one_schema_file_per_topic() -> None:
    assert sorted(path.name for path in SCHEMA_DIR.glob("*.json")) == sorted(
        f"{topic.name}.json" for topic in TOPICS
    )
    assert set(EVENT_MODELS) == {topic.name for topic in TOPICS}


@pytest.mark.parametrize("topic", sorted(SCHEMAS))
def test_schema_documents_its_topic(topic: str) -> None:
    schema = SCHEMAS[topic]
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["topic"] == topic
    assert schema["version"] == 1
    assert schema["producers"] and schema["consumers"] and schema["key"]
    assert len(schema["examples"]) >= 1
    assert schema["additionalProperties"] is False


def test_schema_patterns_are_the_models_patterns() -> None:
    definitions = SCHEMAS["obs.metrics.v1"]["definitions"]
    assert definitions["timestamp"]["pattern"] == TIMESTAMP_PATTERN
    assert definitions["handle"]["pattern"] == HANDLE_PATTERN
    assert SCHEMAS["obs.accounts.v1"]["definitions"]["territory_id"]["pattern"] == (
        TERRITORY_ID_PATTERN
    )
    assert SCHEMAS["obs.scores.v1"]["definitions"]["category"]["enum"] == list(CATEGORY_IDS)


def test_category_type_lists_the_contract_categories() -> None:
    assert get_args(Category) == CATEGORY_IDS


@pytest.mark.parametrize(("topic", "example"), EXAMPLES)
def test_example_is_valid_under_schema_and_model_and_round_trips(
    topic: str, example: dict[str, Any]
) -> None:
    VALIDATORS[topic](example)
    event = EVENT_MODELS[topic].model_validate(example)
    assert event.to_dict() == example
    assert canonical_json(event.to_dict()) == canonical_json(example)
    assert EVENT_MODELS[topic].model_validate_json(json.dumps(example)).to_dict() == example


@pytest.mark.parametrize(("topic", "example"), EXAMPLES)
def test_example_event_id_is_the_canonical_hash(topic: str, example: dict[str, Any]) -> None:
    assert example["event_id"] == compute_event_id(example)


# --- Invalid messages: rejected by schema and model alike -----------------------------------

Mutation = Callable[[dict[str, Any]], object]


def put(path: str, value: object) -> Mutation:
    """Set a dotted path (`recent_posts.0.likes`) in the event."""

    def mutate(event: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = event
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def drop(field: str) -> Mutation:
    return lambda event: event.pop(field)


def apply(*mutations: Mutation) -> Mutation:
    def mutate(event: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(event)

    return mutate


post = build_recent_post(post_id="1", published_at="2021-06-01T00:00:00Z", likes=1, comments=1)

INVALID: list[tuple[str, str, Mutation]] = [
    # obs.metrics.v1 (example 0 is an ok snapshot with three posts, example 2 a not_found)
    ("obs.metrics.v1", "followers as a string", put("followers", "15000")),
    ("obs.metrics.v1", "negative followers", put("followers", -1)),
    ("obs.metrics.v1", "bool as followers", put("followers", True)),
    ("obs.metrics.v1", "fractional followers", put("followers", 1.5)),
    ("obs.metrics.v1", "count too big for JSON consumers", put("follows", 2**53)),
    ("obs.metrics.v1", "negative likes", put("recent_posts.0.likes", -3)),
    ("obs.metrics.v1", "bool as comments", put("recent_posts.0.comments", False)),
    ("obs.metrics.v1", "likes_hidden as int", put("recent_posts.0.likes_hidden", 0)),
    ("obs.metrics.v1", "missing observed_at", drop("observed_at")),
    ("obs.metrics.v1", "missing handle", drop("handle")),
    ("obs.metrics.v1", "missing account_id", drop("account_id")),
    ("obs.metrics.v1", "missing source", drop("source")),
    ("obs.metrics.v1", "missing event_id", drop("event_id")),
    ("obs.metrics.v1", "missing post field", lambda e: e["recent_posts"][0].pop("comments")),
    ("obs.metrics.v1", "schema_version 2", put("schema_version", 2)),
    ("obs.metrics.v1", "schema_version as string", put("schema_version", "1")),
    ("obs.metrics.v1", "schema_version as bool", put("schema_version", True)),
    ("obs.metrics.v1", "offset timestamp", put("observed_at", "2021-06-30T08:00:00+02:00")),
    ("obs.metrics.v1", "space timestamp", put("observed_at", "2021-06-30 06:00:00Z")),
    ("obs.metrics.v1", "fractional seconds", put("observed_at", "2021-06-30T06:00:00.5Z")),
    ("obs.metrics.v1", "lower-case z", put("observed_at", "2021-06-30T06:00:00z")),
    ("obs.metrics.v1", "date only", put("observed_at", "2021-06-30")),
    ("obs.metrics.v1", "epoch number", put("observed_at", 1625032800)),
    ("obs.metrics.v1", "30 February", put("observed_at", "2021-02-30T06:00:00Z")),
    ("obs.metrics.v1", "29 February of 2021", put("observed_at", "2021-02-29T06:00:00Z")),
    ("obs.metrics.v1", "hour 24", put("observed_at", "2021-06-30T24:00:00Z")),
    ("obs.metrics.v1", "non-ASCII digits", put("observed_at", "٢٠٢١-06-30T06:00:00Z")),
    ("obs.metrics.v1", "bad post time", put("recent_posts.0.published_at", "yesterday")),
    ("obs.metrics.v1", "handle with capital", put("handle", "GersLeDepartement")),
    ("obs.metrics.v1", "handle with @", put("handle", "@gersledepartement")),
    ("obs.metrics.v1", "handle with space", put("handle", "haut savoie_dep74")),
    ("obs.metrics.v1", "handle with newline", put("handle", "gers\n")),
    ("obs.metrics.v1", "empty handle", put("handle", "")),
    ("obs.metrics.v1", "handle too long", put("handle", "a" * 31)),
    ("obs.metrics.v1", "other platform", put("platform", "facebook")),
    ("obs.metrics.v1", "status in capitals", put("status", "OK")),
    ("obs.metrics.v1", "unknown source", put("source", "scraper")),
    ("obs.metrics.v1", "unknown field", put("engagement", 0.05)),
    ("obs.metrics.v1", "unknown post field", put("recent_posts.0.shares", 3)),
    ("obs.metrics.v1", "event_id not hex", put("event_id", "Z" * 64)),
    ("obs.metrics.v1", "ok without followers", put("followers", None)),
    ("obs.metrics.v1", "ok without recent_posts", drop("recent_posts")),
    ("obs.metrics.v1", "recent_posts null", put("recent_posts", None)),
    (
        "obs.metrics.v1",
        "too many posts",
        put(
            "recent_posts",
            [
                build_recent_post(
                    post_id=str(i), published_at="2021-06-01T00:00:00Z", likes=1, comments=1
                )
                for i in range(MAX_RECENT_POSTS + 1)
            ],
        ),
    ),
    ("obs.metrics.v1", "likes_hidden with likes", put("recent_posts.0.likes_hidden", True)),
    ("obs.metrics.v1", "likes_hidden not set", put("recent_posts.1.likes_hidden", False)),
    (
        "obs.metrics.v1",
        "not_found with metrics",
        apply(put("status", "not_found"), put("recent_posts", [])),
    ),
    (
        "obs.metrics.v1",
        "error with posts",
        apply(
            put("status", "error"),
            put("followers", None),
            put("follows", None),
            put("media_count", None),
        ),
    ),
    ("obs.metrics.v1", "empty account_id", put("account_id", "")),
    ("obs.metrics.v1", "empty object", lambda e: e.clear()),
    # obs.accounts.v1
    ("obs.accounts.v1", "handle with capital", put("handle", "Gersledepartement")),
    ("obs.accounts.v1", "territory code alone", put("id", "32")),
    ("obs.accounts.v1", "unknown territory kind", put("id", "canton-3201")),
    ("obs.accounts.v1", "lower-case Corsica", put("id", "dep-2a")),
    ("obs.accounts.v1", "simulated as string", put("simulated", "false")),
    ("obs.accounts.v1", "simulated as int", put("simulated", 0)),
    ("obs.accounts.v1", "missing simulated", drop("simulated")),
    ("obs.accounts.v1", "bad changed_at", put("changed_at", "2021-01-01T00:00Z")),
    ("obs.accounts.v1", "schema_version 0", put("schema_version", 0)),
    # obs.scores.v1
    ("obs.scores.v1", "ranked without score", put("score", None)),
    ("obs.scores.v1", "score over 100", put("score", 100.5)),
    ("obs.scores.v1", "score as string", put("score", "63.0373")),
    ("obs.scores.v1", "unknown category", put("category", "villages")),
    ("obs.scores.v1", "methodology_version 2", put("methodology_version", 2)),
    ("obs.scores.v1", "status unknown", put("status", "ranking")),
    ("obs.scores.v1", "negative indicator value", put("indicators.reach.value", -0.1)),
    ("obs.scores.v1", "indicator missing points", lambda e: e["indicators"]["ratio"].pop("points")),
    ("obs.scores.v1", "posts as float", put("indicators.activity.posts", 20.5)),
    # obs.rank-changes.v1
    ("obs.rank-changes.v1", "seq 0", put("seq", 0)),
    ("obs.rank-changes.v1", "seq as bool", put("seq", True)),
    ("obs.rank-changes.v1", "territory twice in top", put("top.1", "dep-32")),
    ("obs.rank-changes.v1", "unknown change kind", put("changes.0.kind", "sideways")),
    ("obs.rank-changes.v1", "up without from_rank", put("changes.0.from_rank", None)),
    ("obs.rank-changes.v1", "rank 0", put("changes.0.to_rank", 0)),
    ("obs.rank-changes.v1", "bad at", put("at", "2021-07-01T06:00:00")),
    # obs.dead-links.v1
    ("obs.dead-links.v1", "suspect is not published", put("status", "suspect")),
    ("obs.dead-links.v1", "territory twice", put("territories", ["epci-243200417"] * 2)),
    ("obs.dead-links.v1", "handle with @", put("handle", "@latenareze")),
    ("obs.dead-links.v1", "missing since", drop("since")),
    # obs.editions.v1
    ("obs.editions.v1", "part 0", put("part", 0)),
    ("obs.editions.v1", "month 13", put("edition", "2021-13")),
    ("obs.editions.v1", "edition as date", put("edition", "2021-06-01")),
    ("obs.editions.v1", "unknown link status", put("standings.0.link_status", "broken")),
    ("obs.editions.v1", "negative streak", put("standings.0.streak", -1)),
    ("obs.editions.v1", "extra entry field", put("standings.0.name", "Gers")),
    ("obs.editions.v1", "movement as float", put("standings.0.movement", 1.5)),
    # obs.commands.v1
    ("obs.commands.v1", "args of the other command", put("args", {"id": "dep-32", "handle": None})),
    ("obs.commands.v1", "unknown command", put("command", "delete_everything")),
    ("obs.commands.v1", "unknown requester", put("requested_by", "cron")),
    ("obs.commands.v1", "extra argument", put("args.force", True)),
    ("obs.commands.v1", "bad edition", put("args.edition", "June 2021")),
    ("obs.commands.v1", "null signature", put("signature", None)),
    ("obs.commands.v1", "upper-case signature", put("signature", "AB" * 32)),
    ("obs.commands.v1", "short signature", put("signature", "ab" * 31)),
    # obs.command-results.v1
    ("obs.command-results.v1", "refused without reason", put("status", "refused")),
    ("obs.command-results.v1", "short command_id", put("command_id", "abc")),
    ("obs.command-results.v1", "unknown status", put("status", "pending")),
    ("obs.command-results.v1", "empty reason", put("reason", "")),
]


@pytest.mark.parametrize(
    ("topic", "mutation"), [pytest.param(t, m, id=f"{t}: {name}") for t, name, m in INVALID]
)
def test_invalid_message_is_rejected_by_schema_and_model(topic: str, mutation: Mutation) -> None:
    event = first_example(topic)
    original_id = event["event_id"]
    mutation(event)
    if event.get("event_id") == original_id:
        event = with_event_id(event)  # the id is right: only the mutated field is wrong
    with pytest.raises(fastjsonschema.JsonSchemaException):
        VALIDATORS[topic](event)
    with pytest.raises(ValidationError):
        EVENT_MODELS[topic].model_validate(event)


def test_command_examples_are_signed_with_the_documented_example_key() -> None:
    schema = SCHEMAS["obs.commands.v1"]
    key = SecretStr(schema["example_command_key"])
    for example in schema["examples"]:
        assert example["signature"] == command_signature(example, key)
        assert signature_matches(example, [key])


def test_a_command_without_signature_is_valid_for_the_publisher_to_refuse() -> None:
    unsigned = with_event_id(
        {k: v for k, v in first_example("obs.commands.v1").items() if k != "signature"}
    )
    VALIDATORS["obs.commands.v1"](unsigned)
    assert Command.model_validate(unsigned).to_dict() == unsigned


def test_not_found_snapshot_may_carry_an_empty_post_list_or_none() -> None:
    omitted = SCHEMAS["obs.metrics.v1"]["examples"][2]
    assert omitted["status"] == "not_found" and "recent_posts" not in omitted
    empty = with_event_id({**omitted, "recent_posts": []})
    for event in (omitted, empty):
        VALIDATORS["obs.metrics.v1"](event)
        assert MetricsSnapshot.model_validate(event).recent_posts == []


def test_not_found_snapshot_with_posts_is_rejected_by_both() -> None:
    event = with_event_id({**SCHEMAS["obs.metrics.v1"]["examples"][2], "recent_posts": [post]})
    with pytest.raises(fastjsonschema.JsonSchemaException):
        VALIDATORS["obs.metrics.v1"](event)
    with pytest.raises(ValidationError):
        MetricsSnapshot.model_validate(event)


# --- Rules only the model can check (documented in docs/events.md) --------------------------

MODEL_ONLY: list[tuple[str, str, Mutation]] = [
    ("obs.metrics.v1", "count written 1.0", put("followers", 15000.0)),
    ("obs.metrics.v1", "schema_version written 1.0", put("schema_version", 1.0)),
    ("obs.metrics.v1", "post id repeated", put("recent_posts.1.id", "17895695668004550")),
    ("obs.rank-changes.v1", "up to a worse rank", put("changes.0.to_rank", 5)),
    ("obs.rank-changes.v1", "leader not first of top", put("leader", "dep-75")),
    ("obs.rank-changes.v1", "territory changed twice", put("changes.1.id", "dep-38")),
    ("obs.editions.v1", "part beyond parts", put("part", 2)),
]


@pytest.mark.parametrize(
    ("topic", "mutation"), [pytest.param(t, m, id=f"{t}: {name}") for t, name, m in MODEL_ONLY]
)
def test_rule_json_schema_cannot_express_is_enforced_by_the_model(
    topic: str, mutation: Mutation
) -> None:
    event = first_example(topic)
    mutation(event)
    event = with_event_id(event)
    VALIDATORS[topic](event)  # JSON Schema lets it through: 1.0 is an integer there
    with pytest.raises(ValidationError):
        EVENT_MODELS[topic].model_validate(event)


# --- Canonical JSON and event ids -----------------------------------------------------------


def test_canonical_json_is_sorted_compact_utf8() -> None:
    obj = {"b": 1, "a": {"d": [1, 2], "c": "Ténarèze"}, "e": None, "f": 0.5}
    assert canonical_json(obj) == '{"a":{"c":"Ténarèze","d":[1,2]},"b":1,"e":null,"f":0.5}'.encode()
    assert canonical_json(obj) == json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def test_event_id_ignores_the_event_id_field() -> None:
    event = first_example("obs.accounts.v1")
    assert compute_event_id(event) == compute_event_id({**event, "event_id": "x"})
    assert compute_event_id(event) == compute_event_id(
        {k: v for k, v in event.items() if k != "event_id"}
    )


def test_identical_content_identical_id_any_difference_another() -> None:
    event = first_example("obs.metrics.v1")
    reordered = dict(reversed(list(event.items())))
    assert compute_event_id(reordered) == compute_event_id(event)
    changed = copy.deepcopy(event)
    changed["recent_posts"][0]["comments"] += 1
    assert compute_event_id(changed) != compute_event_id(event)


def test_with_event_id_returns_a_new_dict_and_leaves_the_input_alone() -> None:
    content = {"schema_version": 1, "x": 1}
    stamped = with_event_id(content)
    assert content == {"schema_version": 1, "x": 1}
    assert stamped["event_id"] == compute_event_id(content)
    assert with_event_id({**stamped, "event_id": "stale"}) == stamped


# --- Builders and keys ----------------------------------------------------------------------


def test_build_metrics_event_omits_posts_when_not_ok() -> None:
    event = build_metrics_event(
        handle="latenareze", observed_at="2021-06-30T06:05:00Z", status="not_found", source="graph"
    )
    assert event == SCHEMAS["obs.metrics.v1"]["examples"][2]


def test_build_recent_post_sets_likes_hidden_by_the_rule() -> None:
    assert build_recent_post(post_id="1", published_at="2021-06-01T00:00:00Z", likes=0, comments=3)[
        "likes_hidden"
    ]
    for likes, comments in ((0, 0), (5, 3), (5, 0)):
        built = build_recent_post(
            post_id="1", published_at="2021-06-01T00:00:00Z", likes=likes, comments=comments
        )
        assert built["likes_hidden"] is False


def test_builders_refuse_invalid_content() -> None:
    with pytest.raises(ValidationError):
        build_metrics_event(
            handle="@Gers", observed_at="2021-06-30T06:00:00Z", status="error", source="graph"
        )
    with pytest.raises(ValidationError):
        build_account_record(territory_id="32", handle="gers", changed_at="2021-06-30T06:00:00Z")
    with pytest.raises(ValidationError):
        build_command(
            command="set_account",
            args={"edition": "2021-06"},
            requested_by="cli",
            requested_at="2021-06-30T06:00:00Z",
            key=COMMAND_KEY,
        )


def test_builders_accept_aware_datetimes() -> None:
    record = build_account_record(
        territory_id="dep-32",
        handle="gersledepartement",
        changed_at=datetime(2021, 1, 1, tzinfo=UTC),
    )
    assert record == SCHEMAS["obs.accounts.v1"]["examples"][0]


def test_record_keys_follow_the_topic_table() -> None:
    assert MetricsSnapshot.model_validate(first_example("obs.metrics.v1")).record_key() == (
        "instagram:gersledepartement"
    )
    assert AccountRecord.model_validate(first_example("obs.accounts.v1")).record_key() == "dep-32"
    assert RankChange.model_validate(first_example("obs.rank-changes.v1")).record_key() == (
        "departements"
    )
    assert EditionPart.model_validate(first_example("obs.editions.v1")).record_key() == (
        "departements:2021-06:1"
    )
    command = first_example("obs.commands.v1")
    assert Command.model_validate(command).record_key() == command["event_id"]
    for topic in SCHEMAS:
        event = EVENT_MODELS[topic].model_validate(first_example(topic))
        assert event.record_key()
        assert event.event_time() == first_example(topic)[EVENT_MODELS[topic].TIME_FIELD]


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(min_value=-1e-3, max_value=1e-3)
    | st.text()
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@given(st.dictionaries(st.text(), JSON_VALUES, max_size=8))
def test_canonical_json_is_the_contract_json_dumps_byte_for_byte(obj) -> None:
    expected = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        expected_bytes = expected.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: no UTF-8 form, no canonical JSON either
        return
    assert canonical_json(obj) == expected_bytes
