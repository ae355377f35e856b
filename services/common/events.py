"""Event contracts: one strict pydantic model per topic, the canonical event id, the
commands' signature (HMAC over the same canonical form), builders.

Models accept exactly what ARCHITECTURE.md's "Events" section and `schemas/<topic>.json`
allow: integers that are ints (never bools, floats or strings), timestamps in the one form
`YYYY-MM-DDTHH:MM:SSZ`, normalised handles, no unknown field. Validating never repairs an
event. A handful of cross-field rules that JSON Schema cannot express (unique post ids, `up`
means a better rank, part within parts, ...) live only here; docs/events.md lists them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar, Final, Literal, Self

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict

from services.common.clock import format_timestamp
from services.common.contracts import (
    MAX_RECENT_POSTS,
    METHODOLOGY_VERSION,
    PLATFORM_INSTAGRAM,
    SCHEMA_VERSION,
    TOPIC_ACCOUNTS,
    TOPIC_COMMAND_RESULTS,
    TOPIC_COMMANDS,
    TOPIC_DAY_SUMMARIES,
    TOPIC_DEAD_LINKS,
    TOPIC_EDITIONS,
    TOPIC_METRICS,
    TOPIC_RANK_CHANGES,
    TOPIC_SCORES,
)
from services.common.handles import HANDLE_PATTERN

# --- Patterns shared with the JSON Schemas (ECMA-262 and Rust regex compatible) --------------
# `[0-9]` rather than `\d`: both regex engines would let other Unicode digits through `\d`.
# Calendar-exact (month lengths, leap years), years 1000-9999, so that a timestamp the schema
# accepts is one every consumer can parse; no Python validator per timestamp (hot path).
_DAY_OF_MONTH: Final = (
    r"(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-8])"
)
_LEAP_YEAR: Final = r"[1-9][0-9](?:0[48]|[2468][048]|[13579][26])|(?:[2468][048]|[13579][26])00"
DATE_PATTERN: Final = rf"(?:[1-9][0-9]{{3}}-(?:{_DAY_OF_MONTH})|(?:{_LEAP_YEAR})-02-29)"
TIMESTAMP_PATTERN: Final = rf"^{DATE_PATTERN}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z$"
EDITION_PATTERN: Final = r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])$"
EVENT_ID_PATTERN: Final = r"^[0-9a-f]{64}$"
SIGNATURE_PATTERN: Final = r"^[0-9a-f]{64}$"  # HMAC-SHA256, lowercase hex
TERRITORY_ID_PATTERN: Final = (
    r"^(reg-[0-9]{2}|dep-([0-9]{2}|2[AB]|97[0-9])|com-([0-9]{2}|2[AB])[0-9]{3}|epci-[0-9]{9})$"
)
# Platform ids (account and media ids): Instagram's are digits; simulators may use more.
PLATFORM_ID_PATTERN: Final = r"^[0-9A-Za-z_.:-]{1,64}$"
# Counts stay exact for every JSON consumer (JavaScript numbers are doubles).
MAX_COUNT: Final = 2**53 - 1
MAX_REASON_LENGTH: Final = 500
MAX_LIST_ENTRIES: Final = 1000


Timestamp = Annotated[str, StringConstraints(pattern=TIMESTAMP_PATTERN)]
Edition = Annotated[str, StringConstraints(pattern=EDITION_PATTERN)]
EventId = Annotated[str, StringConstraints(pattern=EVENT_ID_PATTERN)]
Signature = Annotated[str, StringConstraints(pattern=SIGNATURE_PATTERN)]
Handle = Annotated[str, StringConstraints(pattern=HANDLE_PATTERN)]
TerritoryId = Annotated[str, StringConstraints(pattern=TERRITORY_ID_PATTERN)]
PlatformId = Annotated[str, StringConstraints(pattern=PLATFORM_ID_PATTERN)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Rank = Annotated[int, Field(ge=1, le=MAX_COUNT)]
SchemaVersion = Annotated[int, Field(ge=SCHEMA_VERSION, le=SCHEMA_VERSION)]
MethodologyVersion = Annotated[int, Field(ge=METHODOLOGY_VERSION, le=METHODOLOGY_VERSION)]
# A number keeps its JSON form (63 stays an int, 63.0 a float) so ids survive a round trip.
Score = (
    Annotated[int, Field(ge=0, le=100)] | Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
)
Magnitude = Annotated[int, Field(ge=0)] | Annotated[float, Field(ge=0, allow_inf_nan=False)]
Platform = Literal["instagram"]
Category = Literal[
    "regions",
    "departements",
    "metropoles",
    "communautes-agglomeration",
    "communautes-communes",
    "grandes-villes",
    "villes-moyennes",
    "petites-villes",
]
SnapshotStatus = Literal["ok", "not_found", "error"]
SnapshotSource = Literal["graph", "csv", "sim"]
LinkStatus = Literal["ok", "suspect", "dead"]


class _Strict(BaseModel):
    """Strict, closed, immutable: the settings every contract model shares."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Event(_Strict):
    """Fields every event carries; subclasses name their topic and their event-time field."""

    TOPIC: ClassVar[str]
    TIME_FIELD: ClassVar[str]
    # True when every valid event holds only pattern-restricted ASCII strings, ints below 2**53,
    # bools and nulls: orjson then writes the canonical JSON byte for byte, ten times faster
    # than json.dumps (tests/unit/test_validation.py checks the equivalence).
    ORJSON_IS_CANONICAL: ClassVar[bool] = False

    event_id: EventId
    schema_version: SchemaVersion

    def to_dict(self) -> dict[str, Any]:
        """The event as the JSON object it was read from (fields absent on input stay absent)."""
        return self.model_dump(mode="json", exclude_unset=True)

    def event_time(self) -> str:
        """The event's own time (the field the `future` rule compares with the record time)."""
        return str(getattr(self, self.TIME_FIELD))

    def record_key(self) -> str:
        """The Kafka record key of this event on its topic."""
        raise NotImplementedError


# --- obs.metrics.v1 -----------------------------------------------------------------------


@with_config(ConfigDict(strict=True, extra="forbid"))
class RecentPost(TypedDict):
    """One post of a snapshot's 30-day window (a validated dict: the hot path skips a model)."""

    id: PlatformId
    published_at: Timestamp
    likes: Count
    comments: Count
    likes_hidden: bool


class MetricsSnapshot(Event):
    """One observation of one account (`ok`, `not_found` or `error`)."""

    TOPIC: ClassVar[str] = TOPIC_METRICS
    TIME_FIELD: ClassVar[str] = "observed_at"
    ORJSON_IS_CANONICAL: ClassVar[bool] = True

    platform: Platform
    handle: Handle
    account_id: PlatformId | None
    observed_at: Timestamp
    status: SnapshotStatus
    followers: Count | None
    follows: Count | None
    media_count: Count | None
    recent_posts: list[RecentPost] = Field(default_factory=list, max_length=MAX_RECENT_POSTS)
    source: SnapshotSource

    @model_validator(mode="after")
    def _status_decides_what_is_carried(self) -> Self:
        counts = (self.followers, self.follows, self.media_count)
        if self.status == "ok":
            if any(count is None for count in counts):
                raise ValueError("status ok needs followers, follows and media_count")
            if "recent_posts" not in self.model_fields_set:
                raise ValueError("status ok needs recent_posts (an empty list when none)")
        else:
            if any(count is not None for count in counts):
                raise ValueError(f"status {self.status} carries null followers/follows/media_count")
            if self.recent_posts:
                raise ValueError(f"status {self.status} carries no recent_posts")
        for index, post in enumerate(self.recent_posts):
            if post["likes_hidden"] != (post["likes"] == 0 and post["comments"] > 0):
                raise ValueError(
                    f"recent_posts.{index}.likes_hidden must be true exactly when likes is 0 "
                    "and comments > 0"
                )
        post_ids = {post["id"] for post in self.recent_posts}
        if len(post_ids) != len(self.recent_posts):
            raise ValueError("recent_posts repeats a post id")
        return self

    def record_key(self) -> str:
        """`platform:handle`."""
        return f"{self.platform}:{self.handle}"


# --- obs.accounts.v1 ----------------------------------------------------------------------


class AccountRecord(Event):
    """Which handle a territory uses from `changed_at` on (null: no account)."""

    TOPIC: ClassVar[str] = TOPIC_ACCOUNTS
    TIME_FIELD: ClassVar[str] = "changed_at"
    ORJSON_IS_CANONICAL: ClassVar[bool] = True

    id: TerritoryId
    platform: Platform
    handle: Handle | None
    simulated: bool
    changed_at: Timestamp

    def record_key(self) -> str:
        """The territory id (the topic is compacted: the latest record per territory wins)."""
        return self.id


# --- obs.scores.v1 ------------------------------------------------------------------------


class Indicator(_Strict):
    """An indicator's raw value (null when undefined) and its points."""

    value: Magnitude | None
    points: Score


class ActivityIndicator(Indicator):
    """Activity also carries `posts`, the number of posts in the window."""

    posts: Count


class Indicators(_Strict):
    """The five indicators of methodology v1."""

    engagement: Indicator
    reach: Indicator
    activity: ActivityIndicator
    audience: Indicator
    ratio: Indicator


class ScoreEvent(Event):
    """A territory's score from one snapshot (`ranked`) or its fall out of ranking (`inactive`)."""

    TOPIC: ClassVar[str] = TOPIC_SCORES
    TIME_FIELD: ClassVar[str] = "observed_at"

    id: TerritoryId
    category: Category
    platform: Platform
    handle: Handle
    observed_at: Timestamp
    methodology_version: MethodologyVersion
    status: Literal["ranked", "inactive"]
    score: Score | None
    indicators: Indicators | None

    @model_validator(mode="after")
    def _ranked_has_a_score(self) -> Self:
        if self.status == "ranked" and (self.score is None or self.indicators is None):
            raise ValueError("status ranked needs score and indicators")
        return self

    def record_key(self) -> str:
        """The territory id."""
        return self.id


# --- obs.rank-changes.v1 ------------------------------------------------------------------


class RankChangeEntry(_Strict):
    """One territory whose rank in the published list changed."""

    id: TerritoryId
    kind: Literal["entered", "left", "up", "down"]
    from_rank: Rank | None
    to_rank: Rank | None
    old_score: Score | None
    new_score: Score | None

    @model_validator(mode="after")
    def _ranks_match_kind(self) -> Self:
        entered, left = self.from_rank is None, self.to_rank is None
        if self.kind == "entered" and not (entered and not left):
            raise ValueError("entered: from_rank is null and to_rank is a rank")
        if self.kind == "left" and not (left and not entered):
            raise ValueError("left: to_rank is null and from_rank is a rank")
        if self.kind in ("up", "down"):
            if self.from_rank is None or self.to_rank is None:
                raise ValueError(f"{self.kind}: from_rank and to_rank are ranks")
            if (self.to_rank < self.from_rank) != (self.kind == "up"):
                raise ValueError(f"{self.kind}: to_rank contradicts from_rank")
        return self


class RankChange(Event):
    """A category's new published list and exactly the territories whose rank changed."""

    TOPIC: ClassVar[str] = TOPIC_RANK_CHANGES
    TIME_FIELD: ClassVar[str] = "at"

    category: Category
    seq: Rank
    at: Timestamp
    leader: TerritoryId | None
    previous_leader: TerritoryId | None
    top: list[TerritoryId] = Field(max_length=MAX_LIST_ENTRIES)
    changes: list[RankChangeEntry] = Field(max_length=2 * MAX_LIST_ENTRIES)

    @model_validator(mode="after")
    def _leader_heads_the_list(self) -> Self:
        if self.leader != (self.top[0] if self.top else None):
            raise ValueError("leader is the first of top (null when top is empty)")
        if len(set(self.top)) != len(self.top):
            raise ValueError("top repeats a territory")
        if len({change.id for change in self.changes}) != len(self.changes):
            raise ValueError("changes repeats a territory")
        return self

    def record_key(self) -> str:
        """The category."""
        return self.category


# --- obs.dead-links.v1 --------------------------------------------------------------------


class DeadLinkEvent(Event):
    """An account's link turned `dead` (two consecutive `not_found`) or back to `ok`."""

    TOPIC: ClassVar[str] = TOPIC_DEAD_LINKS
    TIME_FIELD: ClassVar[str] = "since"
    ORJSON_IS_CANONICAL: ClassVar[bool] = True

    platform: Platform
    handle: Handle
    status: Literal["dead", "ok"]
    since: Timestamp
    territories: list[TerritoryId] = Field(max_length=MAX_LIST_ENTRIES)

    @model_validator(mode="after")
    def _territories_once(self) -> Self:
        if len(set(self.territories)) != len(self.territories):
            raise ValueError("territories repeats a territory")
        return self

    def record_key(self) -> str:
        """`platform:handle`."""
        return f"{self.platform}:{self.handle}"


# --- obs.editions.v1 ----------------------------------------------------------------------


class EditionEntry(_Strict):
    """One ranked territory of a published monthly edition."""

    rank: Rank
    id: TerritoryId
    score: Score
    observed_at: Timestamp
    movement: Annotated[int, Field(ge=-MAX_COUNT, le=MAX_COUNT)] | None
    streak: Count
    handle: Handle
    link_status: LinkStatus | None
    indicators: Indicators


class EditionPart(Event):
    """One part (at most 1,000 entries) of a category's published edition."""

    TOPIC: ClassVar[str] = TOPIC_EDITIONS
    TIME_FIELD: ClassVar[str] = "published_at"

    category: Category
    edition: Edition
    part: Rank
    parts: Rank
    published_at: Timestamp
    methodology_version: MethodologyVersion
    standings: list[EditionEntry] = Field(max_length=MAX_LIST_ENTRIES)

    @model_validator(mode="after")
    def _part_within_parts(self) -> Self:
        if self.part > self.parts:
            raise ValueError("part is at most parts (parts are numbered from 1)")
        return self

    def record_key(self) -> str:
        """`category:YYYY-MM:part`."""
        return f"{self.category}:{self.edition}:{self.part}"


# --- obs.commands.v1 / obs.command-results.v1 ---------------------------------------------


class PublishEditionArgs(_Strict):
    """Arguments of `publish_edition`."""

    edition: Edition


class SetAccountArgs(_Strict):
    """Arguments of `set_account` (handle null: the territory has no account)."""

    id: TerritoryId
    handle: Handle | None


class Command(Event):
    """An operator action for the publisher to execute once.

    `signature` is optional here so that an unsigned command reaches the publisher, which
    answers it `refused` (`unauthenticated`) instead of dead-lettering it
    (`signature_matches` decides; ARCHITECTURE "obs.commands.v1").
    """

    TOPIC: ClassVar[str] = TOPIC_COMMANDS
    TIME_FIELD: ClassVar[str] = "requested_at"
    ORJSON_IS_CANONICAL: ClassVar[bool] = True

    command: Literal["publish_edition", "set_account"]
    args: PublishEditionArgs | SetAccountArgs
    requested_by: Literal["cli", "api", "auto"]
    requested_at: Timestamp
    signature: Signature | None = None

    @field_validator("signature", mode="before")
    @classmethod
    def _signature_is_absent_or_hex(cls, value: object) -> object:
        if value is None:  # runs only when given: absent is allowed, an explicit null is not
            raise ValueError("signature, when present, is 64 lowercase hex digits (not null)")
        return value

    @model_validator(mode="after")
    def _args_fit_command(self) -> Self:
        expected = PublishEditionArgs if self.command == "publish_edition" else SetAccountArgs
        if not isinstance(self.args, expected):
            raise ValueError(f"args do not fit command {self.command}")
        return self

    def record_key(self) -> str:
        """The command's own event id."""
        return self.event_id


class CommandResult(Event):
    """The outcome of one command (`refused` always says why)."""

    TOPIC: ClassVar[str] = TOPIC_COMMAND_RESULTS
    TIME_FIELD: ClassVar[str] = "at"

    command_id: EventId
    status: Literal["done", "refused"]
    reason: Annotated[str, StringConstraints(min_length=1, max_length=MAX_REASON_LENGTH)] | None
    at: Timestamp

    @model_validator(mode="after")
    def _refusal_has_reason(self) -> Self:
        if self.status == "refused" and self.reason is None:
            raise ValueError("status refused needs a reason")
        return self

    def record_key(self) -> str:
        """The command's event id (compacted: one result per command)."""
        return self.command_id


# --- obs.day-summaries.v1 -----------------------------------------------------------------

METRICS_PARTITION_COUNT: Final = 12  # obs.metrics.v1's (contracts.TOPICS; checked by a test)


class DaySummary(_Strict):
    """One `ok` snapshot of a Paris day's last second, summarised (methodology.SnapshotSummary):
    what the account's daily point and its territories' are computed from. The window's
    interactions are the integer sum E is one division of (E = interactions / (posts ×
    followers), none when either is 0), so the record holds no float."""

    platform: Platform
    handle: Handle
    observed_at: Timestamp
    event_id: EventId
    followers: Count
    follows: Count
    posts: Count
    interactions: Count
    likes_hidden: bool

    @model_validator(mode="after")
    def _no_interactions_without_posts_or_followers(self) -> Self:
        if (self.posts == 0 or self.followers == 0) and self.interactions != 0:
            raise ValueError("interactions must be 0 when posts or followers is 0")
        return self


class DaySummaries(Event):
    """The day summaries the scorer drew from a run of one `obs.metrics.v1` partition: every
    record from `first_offset` to `last_offset` was read, and each (account, Paris day)'s
    last-second `ok` snapshots among them are here, or in a record of the same batch."""

    TOPIC: ClassVar[str] = TOPIC_DAY_SUMMARIES
    TIME_FIELD: ClassVar[str] = "at"
    ORJSON_IS_CANONICAL: ClassVar[bool] = True  # strings, counts and booleans only

    at: Timestamp  # when the scorer wrote it
    methodology_version: MethodologyVersion
    partition: Annotated[int, Field(ge=0, lt=METRICS_PARTITION_COUNT)]
    first_offset: Count
    last_offset: Count
    summaries: list[DaySummary] = Field(max_length=MAX_LIST_ENTRIES)

    @model_validator(mode="after")
    def _offsets_in_order(self) -> Self:
        if self.last_offset < self.first_offset:
            raise ValueError("last_offset is before first_offset")
        return self

    def record_key(self) -> str:
        """The obs.metrics.v1 partition's number."""
        return str(self.partition)


EVENT_MODELS: Final[dict[str, type[Event]]] = {
    model.TOPIC: model
    for model in (
        MetricsSnapshot,
        AccountRecord,
        ScoreEvent,
        RankChange,
        DeadLinkEvent,
        EditionPart,
        Command,
        CommandResult,
        DaySummaries,
    )
}


# --- Canonical form and ids ---------------------------------------------------------------


def canonical_json(obj: dict[str, Any], *, orjson_safe: bool = False) -> bytes:
    """The contract's canonical JSON: sorted keys, no spaces, UTF-8, non-ASCII kept.

    That is `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`,
    byte for byte. orjson writes the same bytes several times faster for every value but
    floats below 1e-4 in magnitude (`1e-05` vs `0.00001`), non-finite floats and integers
    beyond 64 bits; those take the slow path (tests/unit/test_events.py compares both).
    `orjson_safe`: the caller knows it (a model with ORJSON_IS_CANONICAL), skip the check.
    """
    if orjson_safe or _orjson_canonical(obj):
        try:
            return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
        except (TypeError, orjson.JSONEncodeError):
            pass
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _orjson_canonical(value: Any) -> bool:
    """Whether orjson writes `value` exactly as the contract's `json.dumps` does."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -(2**63) <= value < 2**64
    if kind is float:
        return value == 0.0 or 1e-4 <= abs(value) < 1e16  # both also refuse inf and nan
    if kind is dict:  # loops, not all(...): a score event's check is a scorer hot path
        for key, item in value.items():
            if type(key) is not str or not _orjson_canonical(item):
                return False
        return True
    if kind is list:
        return all(_orjson_canonical(item) for item in value)
    return False


def compute_event_id(obj: dict[str, Any], *, orjson_safe: bool = False) -> str:
    """SHA-256 hex of the canonical JSON of the event without its `event_id`."""
    content = {key: value for key, value in obj.items() if key != "event_id"}
    return hashlib.sha256(canonical_json(content, orjson_safe=orjson_safe)).hexdigest()


def with_event_id(obj: dict[str, Any]) -> dict[str, Any]:
    """A new dict: the event with its `event_id` set (first, for readers) from its content."""
    content = {key: value for key, value in obj.items() if key != "event_id"}
    return {"event_id": compute_event_id(content), **content}


UNSIGNED_FIELDS: Final = frozenset({"event_id", "signature"})


def command_signature(command: Mapping[str, Any], key: SecretStr) -> str:
    """HMAC-SHA256 (lowercase hex), keyed with the key's UTF-8 bytes, of the command's
    canonical JSON without `event_id` and `signature`."""
    content = {name: value for name, value in command.items() if name not in UNSIGNED_FIELDS}
    return hmac.new(
        key.get_secret_value().encode("utf-8"), canonical_json(content), hashlib.sha256
    ).hexdigest()


def signature_matches(command: Mapping[str, Any], keys: Iterable[SecretStr]) -> bool:
    """Whether the command carries a signature made with one of `keys` over its content
    (compared in constant time; no signature or no key: False)."""
    signature = command.get("signature")
    if not isinstance(signature, str):
        return False
    given = signature.encode("utf-8")
    return any(
        hmac.compare_digest(command_signature(command, key).encode("ascii"), given) for key in keys
    )


# --- Builders for producers ---------------------------------------------------------------


def _time(moment: str | datetime) -> str:
    return moment if isinstance(moment, str) else format_timestamp(moment)


def build_recent_post(
    *, post_id: str, published_at: str | datetime, likes: int, comments: int
) -> RecentPost:
    """A `recent_posts` entry; `likes_hidden` follows the contract's rule (0 likes, comments)."""
    return RecentPost(
        id=post_id,
        published_at=_time(published_at),
        likes=likes,
        comments=comments,
        likes_hidden=likes == 0 and comments > 0,
    )


def build_metrics_event(
    *,
    handle: str,
    observed_at: str | datetime,
    status: SnapshotStatus,
    source: SnapshotSource,
    account_id: str | None = None,
    followers: int | None = None,
    follows: int | None = None,
    media_count: int | None = None,
    recent_posts: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """A validated `obs.metrics.v1` event with its id (non-ok snapshots omit recent_posts)."""
    event: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "platform": PLATFORM_INSTAGRAM,
        "handle": handle,
        "account_id": account_id,
        "observed_at": _time(observed_at),
        "status": status,
        "followers": followers,
        "follows": follows,
        "media_count": media_count,
        "source": source,
    }
    if status == "ok":
        event["recent_posts"] = [dict(post) for post in recent_posts]
    return _validated(MetricsSnapshot, event)


def build_account_record(
    *, territory_id: str, handle: str | None, changed_at: str | datetime, simulated: bool = False
) -> dict[str, Any]:
    """A validated `obs.accounts.v1` record with its id."""
    record = {
        "schema_version": SCHEMA_VERSION,
        "id": territory_id,
        "platform": PLATFORM_INSTAGRAM,
        "handle": handle,
        "simulated": simulated,
        "changed_at": _time(changed_at),
    }
    return _validated(AccountRecord, record)


def build_command(
    *,
    command: Literal["publish_edition", "set_account"],
    args: Mapping[str, Any],
    requested_by: Literal["cli", "api", "auto"],
    requested_at: str | datetime,
    key: SecretStr,
) -> dict[str, Any]:
    """A validated `obs.commands.v1` event, signed with `key`, with its id (computed over the
    signature too)."""
    event: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "args": dict(args),
        "requested_by": requested_by,
        "requested_at": _time(requested_at),
    }
    event["signature"] = command_signature(event, key)
    return _validated(Command, event)


def _validated(model: type[Event], content: dict[str, Any]) -> dict[str, Any]:
    """Stamp the id and check the result against the model (raises pydantic's ValidationError)."""
    event = with_event_id(content)
    model.model_validate(event)
    return event
