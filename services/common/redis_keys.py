"""The Redis key layout of the derived view (documented in docs/redis.md).

Every key of one category shares the hash tag `{cat:<category>}` so that a standings read or
write is one script on one Redis Cluster slot. Accounts are tagged per account so they spread
over the cluster. Members are territory ids (short strings); scores in ranking sorted sets are
the negated score so that an ascending ZRANGE gives "score descending, id ascending".
"""

from __future__ import annotations

from typing import Final

CURRENT: Final = "cur"


def category_tag(category: str) -> str:
    """`obs:{cat:<category>}` — the prefix shared by every key of a category."""
    return f"obs:{{cat:{category}}}"


def view_prefix(category: str, edition: str | None) -> str:
    """Prefix of one standings view: the current one or an unpublished edition month."""
    return f"{category_tag(category)}:{CURRENT if edition is None else 'ed:' + edition}"


def rank_key(prefix: str) -> str:
    """ZSET territory id -> -score, ranked territories only."""
    return f"{prefix}:rank"


def entry_key(prefix: str) -> str:
    """HASH territory id -> entry JSON (score, indicators, handle, observed_at, …)."""
    return f"{prefix}:entry"


def version_key(prefix: str) -> str:
    """HASH territory id -> compare-and-set version `%010d:<event_id>` of the applied entry."""
    return f"{prefix}:ver"


def seen_key(prefix: str) -> str:
    """ZSET territory id -> observed_at epoch, ranked territories only (inactivity sweep)."""
    return f"{prefix}:seen"


def meta_key(category: str) -> str:
    """HASH: `as_of` (the watermark as last applied to this category), `updated_at`."""
    return f"{category_tag(category)}:meta"


def edition_months_key(category: str) -> str:
    """SET of edition months holding unpublished standings for this category."""
    return f"{category_tag(category)}:ed:months"


def geo_key(category: str, level: str, code: str) -> str:
    """SET of the category's territory ids in a région (`reg`) or département (`dep`)."""
    return f"{category_tag(category)}:geo:{level}:{code}"


def edition_frozen_key(category: str, edition: str) -> str:
    """STRING marker: the month is published; scripts refuse to write its edition view."""
    return f"{category_tag(category)}:ed:{edition}:frozen"


def link_status_key(category: str) -> str:
    """HASH territory id -> `ok` | `suspect` | `dead` (written by the publisher)."""
    return f"{category_tag(category)}:link"


# --- accounts (tag per account) ----------------------------------------------------------


def account_tag(platform: str, handle: str) -> str:
    """`obs:acct:{<platform>:<handle>}`."""
    return f"obs:acct:{{{platform}:{handle}}}"


def account_current_key(platform: str, handle: str) -> str:
    """STRING: the latest `ok` snapshot summary of an account (compare-and-set)."""
    return f"{account_tag(platform, handle)}:cur"


def account_month_key(platform: str, handle: str, edition: str) -> str:
    """STRING: the latest `ok` snapshot summary of an account within an edition month."""
    return f"{account_tag(platform, handle)}:m:{edition}"


def account_months_key(platform: str, handle: str) -> str:
    """SET of edition months in which the account has an `ok` snapshot."""
    return f"{account_tag(platform, handle)}:months"


# --- global facts (one small slot) ---------------------------------------------------------

META_TAG: Final = "obs:{meta}"
WATERMARK_KEY: Final = f"{META_TAG}:watermark"  # STRING epoch seconds (max observed_at)
ACCOUNTS_KEY: Final = f"{META_TAG}:accounts"  # HASH territory id -> {"handle","simulated"} JSON
ACCOUNTS_VERSION_KEY: Final = f"{META_TAG}:accounts:version"  # INCR on every mapping change
FROZEN_MONTHS_KEY: Final = f"{META_TAG}:frozen"  # SET of published months (publisher's)
GEO_READY_KEY: Final = f"{META_TAG}:geo-ready"  # registry fingerprint the geo sets were built from
