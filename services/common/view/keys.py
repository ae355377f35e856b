"""The Redis key layout of the derived view (documented in docs/redis.md).

Every key of one category shares the hash tag `{cat:<category>}` so that a standings read or
write is one script on one Redis Cluster slot. Account summaries live in bucket hashes (each
its own tag) that spread over the cluster. Members are territory ids (short strings); scores
in ranking sorted sets are the negated score so that an ascending ZRANGE gives "score
descending, id ascending".
"""

from __future__ import annotations

import hashlib
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
    """HASH territory id -> `<version><entry>` (services/common/view/entries.py)."""
    return f"{prefix}:entry"


def meta_key(category: str) -> str:
    """HASH: `as_of` (the watermark as last applied to this category), `updated_at`, `oldest`
    (a lower bound of the observed_at epochs ranked in the current view: the inactivity sweep
    scans only when its cutoff passes it)."""
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


def category_accounts_key(category: str) -> str:
    """HASH territory id -> `<record version, 8 bytes big-endian><account link>`: the account
    each of the category's territories uses, authoritative for the standings writes (the
    scripts write an entry only if it carries this link). The version is the offset of the
    `obs.accounts.v1` record that set it; an older record never replaces a newer one."""
    return f"{category_tag(category)}:accounts"


def link_status_key(category: str) -> str:
    """HASH territory id -> `ok` | `suspect` | `dead` (written by the publisher)."""
    return f"{category_tag(category)}:link"


# --- accounts (summaries bucketed by handle; the publisher's link state tagged per account) --


def account_tag(platform: str, handle: str) -> str:
    """`obs:acct:{<platform>:<handle>}`."""
    return f"obs:acct:{{{platform}:{handle}}}"


SUMMARY_BUCKETS: Final = 1024


def summaries_key(platform: str, handle: str) -> str:
    """HASH `obs:sums:{<platform>:<bucket>}`, field the handle: the account's summaries, one
    per edition month, packed (services/common/view/entries.py, `encode_month_summary`).

    Accounts share 1,024 buckets per platform rather than a key each: a bucket of ~35
    accounts stays a compact listpack, and the per-key overhead (~90 bytes) is gone. The
    bucket is a hash of the handle; buckets spread over the Cluster's slots."""
    digest = hashlib.blake2b(handle.encode(), digest_size=4).digest()
    return f"obs:sums:{{{platform}:{int.from_bytes(digest, 'big') % SUMMARY_BUCKETS}}}"


# --- global facts (one small slot) ---------------------------------------------------------

META_TAG: Final = "obs:{meta}"
WATERMARK_KEY: Final = f"{META_TAG}:watermark"  # ZSET the K newest accounts -> their newest epoch
ACCOUNTS_KEY: Final = f"{META_TAG}:accounts"  # HASH territory id -> [handle, simulated] JSON
ACCOUNTS_VERSION_KEY: Final = f"{META_TAG}:accounts:version"  # INCR on every mapping change
# HASH territory id -> the offset of the `obs.accounts.v1` record `ACCOUNTS_KEY` holds for it
ACCOUNT_OFFSETS_KEY: Final = f"{META_TAG}:accounts:offsets"
MONTHS_KEY: Final = f"{META_TAG}:months"  # SET of months with any `ok` snapshot
FROZEN_MONTHS_KEY: Final = f"{META_TAG}:frozen"  # SET of published months (publisher's)
GEO_READY_KEY: Final = f"{META_TAG}:geo-ready"  # registry fingerprint the geo sets were built from
LAYOUT_KEY: Final = f"{META_TAG}:layout"  # STRING the layout version the view is in (layout.py)
METHODOLOGY_KEY: Final = f"{META_TAG}:methodology"  # STRING the methodology version it is scored by


# --- the publisher's facts (docs/redis.md, "Publisher") -------------------------------------
# Per category, under the category's hash tag so that a standings read can join them.


def rank_changes_state_key(category: str) -> str:
    """HASH: the last published list: `seq`, `event_id`, `at`, `top` (JSON), `scores` (JSON)."""
    return f"{category_tag(category)}:rc:state"


def rank_changes_pending_key(category: str) -> str:
    """STRING: write-ahead copy of the rank-change event being produced, with its scores."""
    return f"{category_tag(category)}:rc:pending"


def rank_changes_events_key(category: str) -> str:
    """ZSET seq -> event JSON: the category's last 1,000 rank-change events."""
    return f"{category_tag(category)}:rc:events"


def published_prefix(category: str, edition: str) -> str:
    """Prefix of one published (frozen, immutable) edition of a category."""
    return f"{category_tag(category)}:pub:{edition}"


def published_rank_key(category: str, edition: str) -> str:
    """ZSET territory id -> rank (1..N) in a published edition."""
    return f"{published_prefix(category, edition)}:rank"


def published_entry_key(category: str, edition: str) -> str:
    """HASH territory id -> the edition entry JSON (as in obs.editions.v1 `standings[]`)."""
    return f"{published_prefix(category, edition)}:entry"


def published_meta_key(category: str, edition: str) -> str:
    """HASH: `published_at`, `parts`, `total` of a published edition."""
    return f"{published_prefix(category, edition)}:meta"


def latest_published_rank_key(category: str) -> str:
    """ZSET territory id -> rank in the category's latest published edition (for `movement`)."""
    return f"{category_tag(category)}:pub:latest:rank"


def latest_published_edition_key(category: str) -> str:
    """STRING: the month of the category's latest published edition."""
    return f"{category_tag(category)}:pub:latest:edition"


def account_link_key(platform: str, handle: str) -> str:
    """STRING: the account's link-status state JSON (`status`, `since`, `position`)."""
    return f"{account_tag(platform, handle)}:link"


EDITIONS_KEY: Final = f"{META_TAG}:editions"  # HASH month -> published edition summary JSON
COMMAND_RESULTS_KEY: Final = f"{META_TAG}:command-results"  # HASH command id -> result JSON
DEAD_LINKS_KEY: Final = f"{META_TAG}:dead-links"  # HASH platform:handle -> last `dead` event JSON
PUBLISHER_ACCOUNTS_KEY: Final = f"{META_TAG}:publisher:accounts"  # HASH territory id -> handle
PUBLISHER_OFFSETS_KEY: Final = f"{META_TAG}:publisher:offsets"  # HASH topic:partition -> offset

# --- the publisher's lease and fencing tokens (docs/redis.md, "Lease and fencing") ----------
PUBLISHER_LEASE_KEY: Final = f"{META_TAG}:publisher:lease"  # STRING `<token> <name>`, PX ttl
PUBLISHER_TOKENS_KEY: Final = f"{META_TAG}:publisher:tokens"  # STRING counter (INCR): tokens


def publisher_fence_key(tag: str) -> str:
    """STRING in the slot of `tag` (a category's `obs:{cat:C}` or `obs:{meta}`): the highest
    lease token that has written or claimed the slot; the publisher's write scripts refuse an
    older one."""
    return f"{tag}:publisher:fence"
