"""The Redis key layout of the derived view (documented in docs/redis.md).

Every key of one category shares the hash tag `{cat:<category>}` so that a standings read or
write is one script on one Redis Cluster slot. Account summaries live in bucket hashes (each
its own tag) that spread over the cluster. Members are territory ids (short strings); scores
in ranking sorted sets are the negated score so that an ascending ZRANGE gives "score
descending, id ascending".

The view lives in generations (docs/redis.md, "Generations"): `ViewKeys(g)` names every key
of generation `g` — `obs:{…}` for generation 0, `obs:g<g>:{…}` after — so that a rebuild
writes a new generation beside the live one and readers switch when it is complete. A few
keys coordinate the generations and the publishers and belong to none: `GENERATION_KEY`,
the publisher's lease and its token counter.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Final

CURRENT: Final = "cur"
SUMMARY_BUCKETS: Final = 1024

# --- keys outside every generation -----------------------------------------------------------
GENERATION_KEY: Final = "obs:{meta}:generation"  # HASH (services/common/view/generations.py)
PUBLISHER_LEASE_KEY: Final = "obs:{meta}:publisher:lease"  # STRING `<token> <name>`, PX ttl
PUBLISHER_TOKENS_KEY: Final = "obs:{meta}:publisher:tokens"  # STRING counter (INCR): tokens
SHARED_KEYS: Final = (GENERATION_KEY, PUBLISHER_LEASE_KEY, PUBLISHER_TOKENS_KEY)


@lru_cache(maxsize=1 << 17)
def account_bucket(handle: str) -> int:
    """The bucket of an account's summaries and daily points: a hash of its handle (kept:
    the scorer asks twice per snapshot; France has about 36,000 handles)."""
    digest = hashlib.blake2b(handle.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % SUMMARY_BUCKETS


def root(generation: int) -> str:
    """What every key of a generation starts with: `obs` (0) or `obs:g<generation>`."""
    if generation < 0:
        raise ValueError(f"a generation is a natural number, not {generation}")
    return "obs" if generation == 0 else f"obs:g{generation}"


def rank_key(prefix: str) -> str:
    """ZSET territory id -> -score, ranked territories only."""
    return f"{prefix}:rank"


def entry_key(prefix: str) -> str:
    """HASH territory id -> `<version><entry>` (services/common/view/entries.py)."""
    return f"{prefix}:entry"


class ViewKeys:
    """Every key of one generation of the view."""

    __slots__ = (
        "ACCOUNTS_KEY",
        "ACCOUNTS_VERSION_KEY",
        "ACCOUNT_OFFSETS_KEY",
        "COMMAND_RESULTS_KEY",
        "DEAD_LINKS_KEY",
        "EDITIONS_KEY",
        "FROZEN_MONTHS_KEY",
        "GEO_READY_KEY",
        "LAYOUT_KEY",
        "META_TAG",
        "METHODOLOGY_KEY",
        "MONTHS_KEY",
        "PUBLISHER_ACCOUNTS_KEY",
        "PUBLISHER_OFFSETS_KEY",
        "WATERMARK_KEY",
        "generation",
        "root",
    )

    # Keys shared by every generation, here too so that one `ViewKeys` names all a module uses.
    GENERATION_KEY: Final = GENERATION_KEY
    PUBLISHER_LEASE_KEY: Final = PUBLISHER_LEASE_KEY
    PUBLISHER_TOKENS_KEY: Final = PUBLISHER_TOKENS_KEY
    rank_key = staticmethod(rank_key)
    entry_key = staticmethod(entry_key)

    def __init__(self, generation: int = 0) -> None:
        self.generation = generation
        self.root = root(generation)
        # --- global facts (one small slot) ---
        self.META_TAG = f"{self.root}:{{meta}}"
        meta = self.META_TAG
        self.WATERMARK_KEY = f"{meta}:watermark"  # ZSET the K newest accounts -> newest epoch
        self.ACCOUNTS_KEY = f"{meta}:accounts"  # HASH territory id -> [handle, simulated] JSON
        self.ACCOUNTS_VERSION_KEY = f"{meta}:accounts:version"  # INCR on every mapping change
        # HASH territory id -> the offset of the `obs.accounts.v1` record ACCOUNTS_KEY holds
        self.ACCOUNT_OFFSETS_KEY = f"{meta}:accounts:offsets"
        self.MONTHS_KEY = f"{meta}:months"  # SET of months with any `ok` snapshot
        self.FROZEN_MONTHS_KEY = f"{meta}:frozen"  # SET of published months (publisher's)
        self.GEO_READY_KEY = f"{meta}:geo-ready"  # registry fingerprint of the geo sets
        self.LAYOUT_KEY = f"{meta}:layout"  # STRING the layout version (layout.py)
        self.METHODOLOGY_KEY = f"{meta}:methodology"  # STRING the methodology version
        # --- the publisher's facts (docs/redis.md, "Publisher") ---
        self.EDITIONS_KEY = f"{meta}:editions"  # HASH month -> published edition summary JSON
        self.COMMAND_RESULTS_KEY = f"{meta}:command-results"  # HASH command id -> result JSON
        self.DEAD_LINKS_KEY = f"{meta}:dead-links"  # HASH platform:handle -> last `dead` event
        self.PUBLISHER_ACCOUNTS_KEY = f"{meta}:publisher:accounts"  # HASH territory -> handle
        self.PUBLISHER_OFFSETS_KEY = f"{meta}:publisher:offsets"  # HASH topic:partition -> offset

    def __repr__(self) -> str:
        return f"ViewKeys({self.generation})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ViewKeys) and other.generation == self.generation

    def __hash__(self) -> int:
        return hash(self.generation)

    def pattern(self) -> str:
        """A SCAN pattern matching every key of this generation (generation 0's also matches
        later generations' and the shared keys: the caller filters, see wipe.py)."""
        return f"{self.root}:*"

    # --- per category ----------------------------------------------------------------------

    def category_tag(self, category: str) -> str:
        """`obs:{cat:<category>}` — the prefix shared by every key of a category."""
        return f"{self.root}:{{cat:{category}}}"

    def view_prefix(self, category: str, edition: str | None) -> str:
        """Prefix of one standings view: the current one or an unpublished edition month."""
        return f"{self.category_tag(category)}:{CURRENT if edition is None else 'ed:' + edition}"

    def meta_key(self, category: str) -> str:
        """HASH: `as_of` (the watermark as last applied to this category), `updated_at`,
        `oldest` (a lower bound of the observed_at epochs ranked in the current view: the
        inactivity sweep scans only when its cutoff passes it)."""
        return f"{self.category_tag(category)}:meta"

    def edition_months_key(self, category: str) -> str:
        """SET of edition months holding unpublished standings for this category."""
        return f"{self.category_tag(category)}:ed:months"

    def geo_key(self, category: str, level: str, code: str) -> str:
        """SET of the category's territory ids in a région (`reg`) or département (`dep`)."""
        return f"{self.category_tag(category)}:geo:{level}:{code}"

    def edition_frozen_key(self, category: str, edition: str) -> str:
        """STRING marker: the month is published; scripts refuse to write its edition view."""
        return f"{self.category_tag(category)}:ed:{edition}:frozen"

    def category_accounts_key(self, category: str) -> str:
        """HASH territory id -> `<record version, 8 bytes big-endian><account link>`: the
        account each of the category's territories uses, authoritative for the standings
        writes (the scripts write an entry only if it carries this link). The version is the
        offset of the `obs.accounts.v1` record that set it; an older record never replaces a
        newer one."""
        return f"{self.category_tag(category)}:accounts"

    def link_status_key(self, category: str) -> str:
        """HASH territory id -> `ok` | `suspect` | `dead` (written by the publisher)."""
        return f"{self.category_tag(category)}:link"

    # --- daily history (the scorer's; services/common/history.py) ---------------------------

    def history_key(self, category: str) -> str:
        """HASH territory id -> `<link length><account link><points>`: the account link its
        history was derived from, then its points, 13 bytes each, by day ascending."""
        return f"{self.category_tag(category)}:hist"

    def history_meta_key(self, category: str) -> str:
        """HASH: `first_day` and `oldest_week` (the window the rank indexes were trimmed
        to), `low_day` and `low_week` (the oldest index keys ever written)."""
        return f"{self.category_tag(category)}:hist:meta"

    def account_history_key(self, platform: str, handle: str) -> str:
        """HASH `obs:hist:{<platform>:<bucket>}`, field the handle: the account's daily points,
        18 bytes each (services/common/history.py `RawPoint`), what its territories' points
        are derived from when it becomes theirs. Bucketed as `summaries_key`."""
        return f"{self.root}:hist:{{{platform}:{account_bucket(handle)}}}"

    def history_day_key(self, category: str, day: int) -> str:
        """STRING: the rank index of the category's points of one day (5-byte entries)."""
        return f"{self.category_tag(category)}:hist:d:{day}"

    def history_week_key(self, category: str, week: int) -> str:
        """STRING: the rank index of the category's weekly points of one ISO week."""
        return f"{self.category_tag(category)}:hist:w:{week}"

    # --- accounts (summaries bucketed by handle; the publisher's link state per account) --

    def account_tag(self, platform: str, handle: str) -> str:
        """`obs:acct:{<platform>:<handle>}`."""
        return f"{self.root}:acct:{{{platform}:{handle}}}"

    def summaries_key(self, platform: str, handle: str) -> str:
        """HASH `obs:sums:{<platform>:<bucket>}`, field the handle: the account's summaries,
        one per edition month, packed (services/common/view/entries.py,
        `encode_month_summary`).

        Accounts share 1,024 buckets per platform rather than a key each: a bucket of ~35
        accounts stays a compact listpack, and the per-key overhead (~90 bytes) is gone. The
        bucket is a hash of the handle; buckets spread over the Cluster's slots."""
        return f"{self.root}:sums:{{{platform}:{account_bucket(handle)}}}"

    # --- the publisher's facts per category, under the category's tag (a read joins them) --

    def rank_changes_state_key(self, category: str) -> str:
        """HASH: the last published list: `seq`, `event_id`, `at`, `top` (JSON), `scores`."""
        return f"{self.category_tag(category)}:rc:state"

    def rank_changes_pending_key(self, category: str) -> str:
        """STRING: write-ahead copy of the rank-change event being produced, with its scores."""
        return f"{self.category_tag(category)}:rc:pending"

    def rank_changes_events_key(self, category: str) -> str:
        """ZSET seq -> event JSON: the category's last 1,000 rank-change events."""
        return f"{self.category_tag(category)}:rc:events"

    def published_prefix(self, category: str, edition: str) -> str:
        """Prefix of one published (frozen, immutable) edition of a category."""
        return f"{self.category_tag(category)}:pub:{edition}"

    def published_rank_key(self, category: str, edition: str) -> str:
        """ZSET territory id -> rank (1..N) in a published edition."""
        return f"{self.published_prefix(category, edition)}:rank"

    def published_entry_key(self, category: str, edition: str) -> str:
        """HASH territory id -> the edition entry JSON (as in obs.editions.v1 `standings[]`)."""
        return f"{self.published_prefix(category, edition)}:entry"

    def published_meta_key(self, category: str, edition: str) -> str:
        """HASH: `published_at`, `parts`, `total` of a published edition."""
        return f"{self.published_prefix(category, edition)}:meta"

    def latest_published_rank_key(self, category: str) -> str:
        """ZSET territory id -> rank in the category's latest published edition."""
        return f"{self.category_tag(category)}:pub:latest:rank"

    def latest_published_edition_key(self, category: str) -> str:
        """STRING: the month of the category's latest published edition."""
        return f"{self.category_tag(category)}:pub:latest:edition"

    def account_link_key(self, platform: str, handle: str) -> str:
        """STRING: the account's link-status state JSON (`status`, `since`, `position`)."""
        return f"{self.account_tag(platform, handle)}:link"

    def link_transitions_key(self, platform: str, handle: str) -> str:
        """ZSET the account's last 50 link transitions (JSON `status`, `since`, `at`) -> the
        epoch of `at`. In the `{meta}` slot, unlike the account's state: written in the same
        fenced batch as the dead-links index."""
        return f"{self.META_TAG}:link-transitions:{platform}:{handle}"

    def publisher_fence_key(self, tag: str) -> str:
        """STRING in the slot of `tag` (a category's `obs:{cat:C}` or `obs:{meta}`): the
        highest lease token that has written or claimed the slot; the publisher's write
        scripts refuse an older one."""
        return f"{tag}:publisher:fence"
