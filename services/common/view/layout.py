"""Which layout and methodology versions the derived view is written in, checked at start.

Bump `LAYOUT_VERSION` when what is stored changes or how eligibility is judged changes; the
methodology version (`contracts.METHODOLOGY_VERSION`) changes with the scores. Stored entries
hold summaries that readers score with the pure methodology, so a view scored by another
version would mix two formulas: it is refused, and `observatoire rebuild` rewrites it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis

from services.common.contracts import METHODOLOGY_VERSION
from services.common.view.keys import ViewKeys

# 5: each category's slot holds its territories' account links with their record offsets
# (`obs:{cat:<c>}:accounts`), which every standings write checks, and the global mapping keeps
# each territory's record offset (`obs:{meta}:accounts:offsets`); a view of layout 4 has
# neither, so no entry could be written to it.
# 4: the watermark is the K-th newest account time, stored as a sorted set of the K newest
# accounts (contract v4; 3: the newest event of all, a string); eligibility judged otherwise
# means a view of layout 3 may rank territories that are inactive now, or the reverse.
# 3: binary summaries packed in bucket hashes, no `seen` sets (2: binary 37-byte versions;
# 1: text versions `%010d:<id>|`).
LAYOUT_VERSION: Final = "5"
METHODOLOGY: Final = str(METHODOLOGY_VERSION)
REBUILD_HINT: Final = (
    "Stop the scorer and the publisher, then run `observatoire rebuild` "
    "(the view is derived from the topics)."
)


@dataclass(frozen=True, slots=True)
class ViewVersions:
    """The versions a view records (None: not recorded)."""

    layout: str | None
    methodology: str | None


class ViewMismatch(RuntimeError):
    """Redis holds a view in another layout or methodology version than this code's."""

    def __init__(self, where: str, found: ViewVersions) -> None:
        self.found = found
        problems = []
        if found.layout != LAYOUT_VERSION:
            problems.append(f"layout {found.layout} (this code writes layout {LAYOUT_VERSION})")
        if found.methodology != METHODOLOGY:
            problems.append(
                f"methodology v{found.methodology} (this code scores with methodology "
                f"v{METHODOLOGY})"
            )
        super().__init__(
            f"Redis at {where} holds a view in {' and '.join(problems)}. {REBUILD_HINT}"
        )


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


async def read_versions(redis: Redis, rk: ViewKeys) -> ViewVersions:
    """The versions recorded in a generation of the view."""
    layout, methodology = await redis.mget(rk.LAYOUT_KEY, rk.METHODOLOGY_KEY)
    return ViewVersions(_text(layout), _text(methodology))


async def claim_view(redis: Redis, rk: ViewKeys, where: str) -> None:
    """Record this code's versions in an empty view; raise `ViewMismatch` for a view written
    in other ones (a view written before the versions were recorded counts as layout 1)."""
    found = await read_versions(redis, rk)
    if found.layout is None:
        if await redis.exists(rk.WATERMARK_KEY):
            raise ViewMismatch(where, ViewVersions("1", found.methodology))
        await redis.mset({rk.LAYOUT_KEY: LAYOUT_VERSION, rk.METHODOLOGY_KEY: METHODOLOGY})
        return
    if found != ViewVersions(LAYOUT_VERSION, METHODOLOGY):
        raise ViewMismatch(where, found)


async def check_view(redis: Redis, rk: ViewKeys, where: str) -> None:
    """Raise `ViewMismatch` unless the view is empty or in this code's versions (readers and
    the publisher: they never claim a view, the scorer does)."""
    found = await read_versions(redis, rk)
    if found.layout is None and found.methodology is None:
        return
    if found.layout == LAYOUT_VERSION and found.methodology in (None, METHODOLOGY):
        return
    raise ViewMismatch(where, found)
