"""Request parameters shared by the routes: their bounds (every request does bounded work), their
parsing, and the checks that answer 404/422 on an unknown category, filter or territory."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import Path, Query
from pydantic import TypeAdapter, ValidationError

from services.api.errors import ApiError
from services.common.contracts import CATEGORIES_BY_ID, CATEGORY_IDS
from services.common.events import EDITION_PATTERN, EVENT_ID_PATTERN
from services.common.territories import Registry, Territory

MAX_LIMIT: Final = 500
MAX_OFFSET: Final = 100_000
MAX_EVENTS: Final = 1000  # rank-change events per response (Redis keeps the last 1,000)

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (1–500).")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip (0–100,000).")]
Month = Annotated[
    str,
    Path(
        pattern=EDITION_PATTERN,
        description="The month measured, `YYYY-MM` (Europe/Paris calendar).",
        examples=["2021-06"],
    ),
]
CategoryId = Annotated[
    str,
    Path(
        description="A category id (another value: 404 `unknown_category`).",
        examples=["departements"],
        json_schema_extra={"enum": list(CATEGORY_IDS)},
    ),
]
CommandId = Annotated[
    str,
    Path(pattern=EVENT_ID_PATTERN, description="The command's event_id (64 hex digits)."),
]


# --- The list parameters, parsed by hand on the hottest routes ------------------------------
# FastAPI's declarative validation costs about 80 µs per request for these four parameters
# (measured here), a sixth of a standings response; the standings routes parse them below
# and document them with `LIST_PARAMETERS` (same bounds, same 422 errors).

_REGION = re.compile(r"[0-9]{2}")
_DEPARTEMENT = re.compile(r"[0-9]{2}|2[AB]|97[0-9]")


@dataclass(frozen=True, slots=True)
class ListQuery:
    """Pagination and filters of a standings list."""

    limit: int = 50
    offset: int = 0
    region: str | None = None
    departement: str | None = None


# The routes FastAPI validates read an integer with pydantic's rules ("+5", " 5", "1_000",
# "5.0" are integers; "--5", "5.5", "٣" are not): the hand-parsed ones read it the same way.
_INTEGER: Final = TypeAdapter(int)


def _bounded(name: str, raw: str, low: int, high: int) -> int:
    try:
        if len(raw) > 32:
            raise ValueError(raw)
        value = _INTEGER.validate_python(raw)
    except (ValueError, ValidationError):
        raise ApiError(
            422, "invalid_parameter", f"query.{name}: not an integer: {raw[:40]!r}"
        ) from None
    if not low <= value <= high:
        raise ApiError(
            422, "invalid_parameter", f"query.{name}: must be between {low} and {high}: {value}"
        )
    return value


def _code(name: str, raw: str, shape: re.Pattern[str], what: str) -> str:
    if not shape.fullmatch(raw):
        raise ApiError(422, "invalid_parameter", f"query.{name}: not {what}: {raw!r}")
    return raw


def parse_list_query(query: Mapping[str, str]) -> ListQuery:
    """`limit`, `offset`, `region`, `departement` of a query string (422 when invalid)."""
    limit = query.get("limit")
    offset = query.get("offset")
    region = query.get("region")
    departement = query.get("departement")
    return ListQuery(
        limit=50 if limit is None else _bounded("limit", limit, 1, MAX_LIMIT),
        offset=0 if offset is None else _bounded("offset", offset, 0, MAX_OFFSET),
        region=None if region is None else _code("region", region, _REGION, "a région code"),
        departement=None
        if departement is None
        else _code("departement", departement, _DEPARTEMENT, "a département code"),
    )


LIST_PARAMETERS: Final[list[dict[str, Any]]] = [
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "Items per page (1–500).",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50},
    },
    {
        "name": "offset",
        "in": "query",
        "required": False,
        "description": "Items to skip (0–100,000).",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
    },
    {
        "name": "region",
        "in": "query",
        "required": False,
        "description": "INSEE code of a région (`76` Occitanie): ranks within it.",
        "schema": {"type": "string", "pattern": "^[0-9]{2}$"},
    },
    {
        "name": "departement",
        "in": "query",
        "required": False,
        "description": "INSEE code of a département (`32` Gers, `2A`): ranks within it. "
        "Not with `region`.",
        "schema": {"type": "string", "pattern": "^([0-9]{2}|2[AB]|97[0-9])$"},
    },
]


def check_category(category: str) -> str:
    """404 with the valid ids on an unknown category."""
    if category not in CATEGORIES_BY_ID:
        raise ApiError(
            404,
            "unknown_category",
            f"unknown category {category!r}; valid: {', '.join(CATEGORIES_BY_ID)}",
        )
    return category


def check_filters(registry: Registry, region: str | None, departement: str | None) -> None:
    """422 on a filter code that names no région/département, or on both filters at once."""
    if region is not None and departement is not None:
        raise ApiError(422, "invalid_parameter", "use either region or departement, not both")
    if region is not None and region not in registry.region_codes():
        raise ApiError(422, "invalid_parameter", f"region: no région with code {region!r}")
    if departement is not None and departement not in registry.departement_codes():
        raise ApiError(
            422, "invalid_parameter", f"departement: no département with code {departement!r}"
        )


TerritoryId = Annotated[
    str,
    Path(
        description="`{kind}-{code}`: reg-76, dep-32, dep-2A, com-75056, epci-200000172.",
        examples=["dep-32"],
    ),
]


def find_territory(registry: Registry, territory_id: str) -> Territory:
    """The territory, or 404 saying what an id looks like."""
    territory = registry.get(territory_id)
    if territory is None:
        raise ApiError(
            404,
            "unknown_territory",
            f"unknown territory {territory_id!r} (ids look like reg-76, dep-32, dep-2A, "
            "com-75056, epci-200000172)",
        )
    return territory
