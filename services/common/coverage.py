"""Coverage of the observatory (the `/couverture` page and `GET /api/v1/coverage`): per category
and per région, how many territories exist, how many have an account, how many are measured
(ranked in the current standings) and how many have a dead link.

Pure: the caller reads the account mapping, each category's ranked ids and the dead-links index;
`count_coverage` only counts. A territory belongs to every région it lies in, as the standings'
région filter reads it (an EPCI astride two régions counts in both), so the rows of a category
may add up to more than its total; a category's total counts each territory once. The sizes of
the registry are counted once per registry (`registry_sizes`): a request only walks the
territories it was given (the accounts, the ranked, the dead), not the 35,000 communes.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from services.common.contracts import CATEGORY_IDS
from services.common.territories import Registry

__all__ = [
    "CategoryCoverage",
    "Counts",
    "Coverage",
    "RegionCoverage",
    "count_coverage",
    "registry_sizes",
]


@dataclass(slots=True)
class Counts:
    """The figures of one group of territories."""

    territories: int = 0
    with_account: int = 0  # a handle in the account mapping
    simulated: int = 0  # ... of which a simulated account (demonstration data)
    measured: int = 0  # ranked in the current standings
    dead_links: int = 0  # their account is judged dead (two consecutive `not_found`)

    def add(self, other: Counts) -> None:
        self.territories += other.territories
        self.with_account += other.with_account
        self.simulated += other.simulated
        self.measured += other.measured
        self.dead_links += other.dead_links

    def to_dict(self) -> dict[str, int]:
        return {
            "territories": self.territories,
            "with_account": self.with_account,
            "simulated": self.simulated,
            "measured": self.measured,
            "dead_links": self.dead_links,
        }


@dataclass(frozen=True, slots=True)
class RegionCoverage:
    """One région's figures (within a category, or over every category)."""

    code: str
    name: str
    counts: Counts

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, **self.counts.to_dict()}


@dataclass(frozen=True, slots=True)
class CategoryCoverage:
    """One category's figures, then per région (the régions holding any of its territories)."""

    category: str
    counts: Counts
    regions: list[RegionCoverage]


@dataclass(frozen=True, slots=True)
class Coverage:
    """Every category, every région over all categories, and the whole."""

    totals: Counts
    categories: list[CategoryCoverage]
    regions: list[RegionCoverage]


@dataclass(frozen=True, slots=True)
class RegistrySizes:
    """How many territories each category has, in all and per région; the régions' names in
    reading order (accents ignored: Île-de-France between Hauts-de-France and La Réunion)."""

    per_category: Mapping[str, int]
    per_region: Mapping[str, Mapping[str, int]]  # category -> région code -> territories
    region_names: Mapping[str, str] = field(default_factory=dict)  # code -> name, in order


def _reading_key(name: str) -> str:
    decomposed = unicodedata.normalize("NFD", name.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@lru_cache(maxsize=2)
def registry_sizes(registry: Registry) -> RegistrySizes:
    """The registry's sizes per category and per (category, région), counted once."""
    per_category: dict[str, int] = {}
    per_region: dict[str, dict[str, int]] = {}
    for category in CATEGORY_IDS:
        members = registry.by_category(category)
        per_category[category] = len(members)
        groups: dict[str, int] = {}
        for territory in members:
            for code in territory.regions:
                groups[code] = groups.get(code, 0) + 1
        per_region[category] = groups
    names = {t.code: t.name for t in registry.by_category("regions")}
    ordered = dict(sorted(names.items(), key=lambda item: _reading_key(item[1])))
    return RegistrySizes(per_category, per_region, ordered)


def count_coverage(
    registry: Registry,
    *,
    accounts: Mapping[str, bool],
    measured: Iterable[str],
    dead: Iterable[str],
) -> Coverage:
    """Count coverage: `accounts` maps each territory with a handle to whether the account is
    simulated; `measured` are the ranked territories of the current standings; `dead` the
    territories whose account is dead. Ids outside the registry are ignored; each id counts
    once per list."""
    sizes = registry_sizes(registry)
    per_category = {category: Counts(sizes.per_category[category]) for category in CATEGORY_IDS}
    per_region = {
        category: {code: Counts(count) for code, count in sizes.per_region[category].items()}
        for category in CATEGORY_IDS
    }

    def tally(ids: Iterable[str], bump: Callable[[Counts, str], None]) -> None:
        for territory_id in set(ids):
            territory = registry.get(territory_id)
            if territory is None:
                continue
            bump(per_category[territory.category], territory_id)
            groups = per_region[territory.category]
            for code in territory.regions:
                bump(groups[code], territory_id)

    def account(counts: Counts, territory_id: str) -> None:
        counts.with_account += 1
        counts.simulated += accounts[territory_id]

    def ranked(counts: Counts, _territory_id: str) -> None:
        counts.measured += 1

    def dead_link(counts: Counts, _territory_id: str) -> None:
        counts.dead_links += 1

    tally(accounts, account)
    tally(measured, ranked)
    tally(dead, dead_link)

    totals = Counts()
    across: dict[str, Counts] = {code: Counts() for code in sizes.region_names}
    categories = []
    for category in CATEGORY_IDS:
        totals.add(per_category[category])
        rows = []
        for code, name in sizes.region_names.items():
            counts = per_region[category].get(code)
            if counts is None:
                continue  # no territory of this category in this région
            across[code].add(counts)
            rows.append(RegionCoverage(code, name, counts))
        categories.append(CategoryCoverage(category, per_category[category], rows))
    regions = [
        RegionCoverage(code, name, across[code]) for code, name in sizes.region_names.items()
    ]
    return Coverage(totals, categories, regions)
