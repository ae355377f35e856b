"""The API's documented shapes (OpenAPI at /docs): response models and the one request body.

Responses are built as plain dicts and rendered by orjson (fast); these models document them
and the schemathesis test checks every response against them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

LinkStatus = Literal["ok", "suspect", "dead"]
# Graph API code 110/2207013 (`not_found`) answers alike for a deleted or renamed account and
# for an existing one that is private or personal: the statuses say what the API could see.
LINK_STATUS = (
    "Whether the Instagram Graph API could see the account: `ok`; `suspect`: not seen at the "
    "last snapshot (one `not_found`); `dead`: not seen at two consecutive snapshots. Not seen "
    "means deleted, renamed, private or not a professional (Business or Creator) account, "
    "not necessarily gone. null: not judged yet."
)


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable: `unknown_category`, …")
    message: str = Field(description="What went wrong, for a person.")


class ErrorBody(BaseModel):
    error: ErrorDetail


class Indicator(BaseModel):
    value: float | None = Field(description="The raw indicator, before shrinkage.")
    points: float = Field(description="0–100, unrounded.")


class ActivityIndicator(Indicator):
    posts: int = Field(description="n: posts in the 30-day window.")


class Indicators(BaseModel):
    engagement: Indicator
    reach: Indicator
    activity: ActivityIndicator
    audience: Indicator
    ratio: Indicator


class StandingsItem(BaseModel):
    rank: int = Field(description="Position in the (filtered) list.")
    national_rank: int = Field(description="Position in the whole category.")
    id: str
    code: str
    name: str
    score: float
    handle: str | None
    simulated: bool = Field(description="A simulated account (demonstration data).")
    link_status: LinkStatus | None = Field(description=LINK_STATUS)
    observed_at: str
    movement: int | None = Field(description="Places gained; null: new.")
    likes_hidden: bool | None = Field(description="Partial data; null: not recorded.")
    streak: int | None = Field(
        None, description="Published editions only: consecutive editions at #1."
    )
    indicators: Indicators


class Standings(BaseModel):
    category: str
    edition: str | None = Field(description="null: the live standings.")
    status: Literal["published", "provisional"] | None = Field(
        None, description="Editions only: published (immutable) or provisional."
    )
    published_at: str | None = Field(None, description="Published editions only.")
    as_of: str | None = Field(description="The watermark the list reflects.")
    total: int = Field(description="Ranked territories after filters.")
    limit: int
    offset: int
    movement_since: str | None = Field(
        None, description="The published edition `movement` is measured against."
    )
    rank_changes_seq: int | None = Field(
        None, description="Live standings: the last rank-change seq when read."
    )
    items: list[StandingsItem]


class CategoryInfo(BaseModel):
    id: str
    label: str
    published_size: int | None = Field(description="null: the whole category is published.")


class CategoryList(BaseModel):
    categories: list[CategoryInfo]


PERCENTILE = (
    "Share (%, one decimal) of the scope's other ranked territories it ranks ahead of: "
    "100 × (total − rank) / (total − 1); 100.0 when alone; null: not ranked."
)


class Neighbour(BaseModel):
    rank: int = Field(description="Position within the scope.")
    national_rank: int = Field(description="Position in the whole category.")
    id: str
    name: str
    score: float


class Neighbours(BaseModel):
    """The ranked territories just around it in one scope (itself excluded)."""

    above: list[Neighbour] = Field(description="Up to 3 ranked just above, in rank order.")
    below: list[Neighbour] = Field(description="Up to 3 ranked just below, in rank order.")


class GroupRank(BaseModel):
    code: str
    name: str
    rank: int | None
    total: int
    percentile: float | None = Field(description=PERCENTILE)
    neighbours: Neighbours | None = Field(description="null: not ranked.")


class NationalRank(BaseModel):
    rank: int | None
    total: int


class NationalStanding(NationalRank):
    percentile: float | None = Field(description=PERCENTILE)
    neighbours: Neighbours | None = Field(description="null: not ranked.")


class Ranks(BaseModel):
    national: NationalStanding
    regions: list[GroupRank]
    departements: list[GroupRank]


class BreakdownLine(BaseModel):
    indicator: str
    weight: int
    value: float | None
    points: float
    posts: int | None = None


class CurrentScore(BaseModel):
    score: float
    observed_at: str
    likes_hidden: bool
    followers: int
    follows: int
    indicators: Indicators
    breakdown: list[BreakdownLine]


class HistoryPoint(BaseModel):
    edition: str
    published_at: str | None
    rank: int | None
    total: int
    score: float | None
    followers: int | None
    movement: int | None
    streak: int | None
    handle: str | None
    link_status: LinkStatus | None = Field(description=f"At that edition. {LINK_STATUS}")
    observed_at: str | None = Field(description="The snapshot the edition ranked it on.")


class NextTerritory(BaseModel):
    """The territory ranked just above it in its category."""

    id: str
    name: str
    rank: int
    score: float


class Gap(BaseModel):
    """What one indicator's lever alone must change to rank it ahead of `next`."""

    lever: Literal["posts", "engagement", "followers"] = Field(
        description="posts: posts in the 30-day window, +1 per step, at the account's mean "
        "interactions; engagement: E, +0.001 per step; followers: +1 % of the current "
        "followers per step (rounded up), E held fixed."
    )
    possible: bool = Field(description="false: not even at the indicator's cap.")
    steps: int | None
    before: float | None = Field(description="The input now (null: no E).")
    after: float | None = Field(description="The input that passes; null: impossible.")
    score: float | None = Field(description="The score it would then have.")
    cap: float | None = Field(description="The input at the indicator's cap (the search's end).")


class Gaps(BaseModel):
    engagement: Gap
    reach: Gap
    activity: Gap
    audience: Gap
    ratio: Gap


class FollowerGain(BaseModel):
    days: int
    since: str = Field(description="`observed_at` of the earlier snapshot compared with.")
    followers_then: int
    gain: int
    gain_pct: float | None = Field(description="100 × gain / followers_then; null from 0.")


class BestRank(BaseModel):
    rank: int
    editions: list[str] = Field(description="The published editions where it was reached.")


class Records(BaseModel):
    best_rank: BestRank | None = Field(description="null: in no edition of `history`.")
    months_first: int = Field(description="Published editions of `history` it led.")
    published: int = Field(description="Published editions `history` covers.")


class DailyPoint(BaseModel):
    date: str = Field(
        description="The Europe/Paris day (a weekly point: the day of the week's last)."
    )
    period: Literal["day", "week"] = Field(
        description="`day` within the ISO weeks holding the last 90 days; `week` before: the "
        "week's last point, for two years."
    )
    observed_at: str = Field(description="The snapshot the point is (the day's last `ok`).")
    score: float
    rank: int | None = Field(
        description="Among the category's points of that day (a weekly point: of that week)."
    )
    ranked: int | None = Field(description="How many territories of the category had one.")
    followers: int
    posts: int = Field(description="Posts in the 30-day window of that snapshot.")


class DailyHistory(BaseModel):
    id: str
    name: str
    category: str
    as_of: str | None = Field(description="The watermark the window is read under.")
    points: list[DailyPoint] = Field(description="Oldest first.")


class TerritoryDetail(BaseModel):
    id: str
    kind: str
    code: str
    name: str
    category: str
    category_label: str
    population: int
    regions: list[str]
    departements: list[str]
    handle: str | None
    simulated: bool
    link_status: LinkStatus | None = Field(description=LINK_STATUS)
    status: Literal["ranked", "inactive", "unranked"]
    as_of: str | None
    ranks: Ranks
    movement: int | None
    movement_since: str | None
    current: CurrentScore | None
    next: NextTerritory | None = Field(description="null: first, or not ranked.")
    gaps: Gaps | None = Field(
        description="What each indicator alone must change to pass `next`; null without it."
    )
    follower_gains: list[FollowerGain | None] = Field(
        description="Over 7, 30, 90 and 365 days, in that order; null: no snapshot of the "
        "account observed between t − D − max(3, D/4) days and t − D days."
    )
    history: list[HistoryPoint]
    records: Records


class ComparedEdition(BaseModel):
    edition: str
    rank: int | None = Field(description="Rank in its category's published list; null: absent.")
    total: int = Field(description="Territories ranked in that edition of its category.")
    score: float | None
    followers: int | None


class ComparedTerritory(BaseModel):
    """One territory of a comparison: as in its detail (`/api/v1/territories/{id}`)."""

    id: str
    name: str
    category: str
    category_label: str
    population: int
    handle: str | None
    simulated: bool = Field(description="A simulated account (demonstration data).")
    link_status: LinkStatus | None = Field(description=LINK_STATUS)
    status: Literal["ranked", "inactive", "unranked"]
    as_of: str | None = Field(description="The watermark of its category's standings.")
    rank: NationalRank = Field(description="Its rank in its category (null: not ranked).")
    score: float | None = Field(description="null: no snapshot scored yet (`unranked`).")
    indicators: Indicators | None = Field(description="The five indicators; null: no score.")
    history: list[ComparedEdition] = Field(description="One point per published edition.")


class Comparison(BaseModel):
    items: list[ComparedTerritory] = Field(description="In the order asked, duplicates dropped.")


class EditionListItem(BaseModel):
    edition: str
    status: Literal["published", "provisional"]
    published_at: str | None
    publishable_at: str
    categories: dict[str, int] | None
    url: str


class EditionList(BaseModel):
    watermark: str | None
    latest: str | None
    editions: list[EditionListItem]


class EditionCategory(BaseModel):
    category: str
    label: str
    status: Literal["published", "frozen", "provisional"]
    ranked: int
    parts: int | None
    published_at: str | None
    url: str


class EditionStatus(BaseModel):
    edition: str
    status: Literal["published", "publishing", "provisional"]
    published_at: str | None
    command_id: str | None
    publishable_at: str
    watermark: str | None
    categories: list[EditionCategory]


class RankChanges(BaseModel):
    category: str
    after_seq: int
    last_seq: int
    oldest_seq: int | None
    missed: bool = Field(description="Events after `after_seq` are no longer kept: reload.")
    next_after_seq: int = Field(description="Pass it as `after_seq` to read what follows.")
    events: list[dict[str, Any]] = Field(description="`obs.rank-changes.v1` events.")


class DeadLinkTerritory(BaseModel):
    id: str
    name: str
    category: str


class DeadLink(BaseModel):
    """An account the Graph API could not see at two consecutive snapshots (status `dead`):
    deleted, renamed, private or not a professional (Business or Creator) account."""

    platform: str
    handle: str
    since: str | None = Field(
        description="`observed_at` of the first snapshot of the run that could not see it."
    )
    territories: list[DeadLinkTerritory] = Field(description="The territories using the handle.")


class DeadLinks(BaseModel):
    """Accounts the Graph API cannot see (`dead`), not necessarily deleted."""

    total: int
    limit: int
    offset: int
    items: list[DeadLink]


class SearchPlace(BaseModel):
    code: str = Field(description="INSEE code of the département or région.")
    name: str


class SearchItem(BaseModel):
    id: str
    name: str
    category: str
    category_label: str
    kind: Literal["reg", "dep", "epci", "com"]
    code: str = Field(description="INSEE code, or SIREN for an EPCI.")
    population: int
    handle: str | None = Field(description="Its Instagram account; null: none known.")
    departements: list[SearchPlace]
    regions: list[SearchPlace]
    url: str = Field(description="Its public page.")


class SearchResults(BaseModel):
    items: list[SearchItem] = Field(description="Best match first.")


class CommandStatus(BaseModel):
    command_id: str
    status: Literal["pending", "done", "refused"]
    reason: str | None
    at: str | None


class Accepted(BaseModel):
    command_id: str
    status: Literal["pending"]
    status_url: str
    command: dict[str, Any] = Field(description="The `obs.commands.v1` event produced.")


class AccountChange(BaseModel):
    """The new account of a territory."""

    model_config = ConfigDict(extra="forbid")

    handle: str | None = Field(
        max_length=64,
        description="Instagram handle, with or without `@`; null: no account.",
        examples=["gersledepartement"],
    )


class Health(BaseModel):
    status: str


_DESCRIPTIONS = {
    304: "Not modified (ETag matched).",
    400: "Malformed request (a month, a command id, a body).",
    401: "No valid operator token.",
    404: "Unknown category, territory, edition or path.",
    413: "Request body too large.",
    422: "Invalid parameter.",
    429: "Rate limited (see Retry-After).",
    503: "Redis (or the broker, for commands) unavailable, or actions disabled.",
}


def responses(
    model: type[BaseModel] | None, *errors: int, etag: bool = False
) -> dict[int | str, dict[str, Any]]:
    """The documented responses of a route: its 200 model, its errors, 429 and 503."""
    documented: dict[int | str, dict[str, Any]] = {}
    if model is not None:
        documented[200] = {"model": model, "description": "OK"}
    if etag:
        documented[304] = {"description": _DESCRIPTIONS[304]}
    for status in sorted({*errors, 422, 429, 503}):
        documented[status] = {"model": ErrorBody, "description": _DESCRIPTIONS[status]}
    return documented
