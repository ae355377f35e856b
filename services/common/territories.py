"""The territory registry: every ranked territory with its id, category, population and membership.

The data is derived once from Etalab's `@etalab/decoupage-administratif` 6.0.0 by
`scripts/regenerate_territories.py` and shipped as `data/territories.json`; this module only reads
it. The rules used by that derivation (ids, commune classes, EPCI kinds, population overrides)
live here too, so code and docs have one place to point at. See docs/territories.md.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from functools import lru_cache
from importlib import resources
from typing import Final

import orjson

from services.common.contracts import CATEGORIES_BY_ID, CATEGORY_IDS

DATA_PACKAGE: Final = "services.common"
DATA_FILE: Final = "data/territories.json"
DATA_FORMAT: Final = 1

CREDIT: Final = (
    "Sources : INSEE (COG, populations légales), DGCL, "
    "via Etalab decoupage-administratif 6.0.0, Licence Ouverte"
)

KIND_REGION: Final = "reg"
KIND_DEPARTEMENT: Final = "dep"
KIND_EPCI: Final = "epci"
KIND_COMMUNE: Final = "com"
KINDS: Final[tuple[str, ...]] = (KIND_REGION, KIND_DEPARTEMENT, KIND_EPCI, KIND_COMMUNE)

# The kind of territory each category holds.
CATEGORY_KINDS: Final[dict[str, str]] = {
    "regions": KIND_REGION,
    "departements": KIND_DEPARTEMENT,
    "metropoles": KIND_EPCI,
    "communautes-agglomeration": KIND_EPCI,
    "communautes-communes": KIND_EPCI,
    "grandes-villes": KIND_COMMUNE,
    "villes-moyennes": KIND_COMMUNE,
    "petites-villes": KIND_COMMUNE,
}

# DGCL legal nature of an EPCI (epci.json `type`) -> category.
EPCI_CATEGORY_BY_TYPE: Final[dict[str, str]] = {
    "METRO": "metropoles",
    "MET69": "metropoles",  # Métropole de Lyon, a collectivité à statut particulier
    "CU": "communautes-agglomeration",
    "CA": "communautes-agglomeration",
    "CC": "communautes-communes",
}

GRANDE_VILLE_MIN_POPULATION: Final = 100_000
VILLE_MOYENNE_MIN_POPULATION: Final = 20_000


@dataclass(frozen=True, slots=True)
class PopulationOverride:
    """A territory whose population leaves out the member communes of another collectivity."""

    territory_id: str
    excluded_members_of: str
    reason: str


# Where a collectivity's perimeter differs from the COG's, its population is not the plain sum of
# its communes. Everything not listed keeps the COG sum (see docs/territories.md).
POPULATION_OVERRIDES: Final[tuple[PopulationOverride, ...]] = (
    PopulationOverride(
        territory_id="dep-69",
        excluded_members_of="epci-200046977",
        reason=(
            "Since 1 January 2015 the Métropole de Lyon exercises the département's powers on its "
            "58 communes; the Rhône département council serves only the rest of the département."
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class Territory:
    """One ranked territory: a région, département, EPCI or commune."""

    id: str
    kind: str
    code: str
    name: str
    category: str
    population: int
    regions: tuple[str, ...]
    departements: tuple[str, ...]


def territory_id(kind: str, code: str) -> str:
    """Return the id `{kind}-{code}` of a territory (`reg-76`, `dep-2A`, `epci-200000172`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown territory kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not code:
        raise ValueError("a territory code cannot be empty")
    return f"{kind}-{code}"


def commune_category(population: int) -> str:
    """Return the category of a commune of this population."""
    if population >= GRANDE_VILLE_MIN_POPULATION:
        return "grandes-villes"
    if population >= VILLE_MOYENNE_MIN_POPULATION:
        return "villes-moyennes"
    return "petites-villes"


def _check_category(category: str) -> None:
    if category not in CATEGORIES_BY_ID:
        raise ValueError(
            f"unknown category {category!r}; expected one of {', '.join(CATEGORY_IDS)}"
        )


class Registry:
    """Every territory, by id and by category (each category sorted by id)."""

    __slots__ = ("_all", "_by_category", "_by_id", "_departement_codes", "_region_codes")

    def __init__(self, territories: Iterable[Territory]) -> None:
        grouped: dict[str, list[Territory]] = {category: [] for category in CATEGORY_IDS}
        by_id: dict[str, Territory] = {}
        for territory in territories:
            _check_category(territory.category)
            if territory.id in by_id:
                raise ValueError(f"duplicate territory id {territory.id!r}")
            by_id[territory.id] = territory
            grouped[territory.category].append(territory)
        self._by_id = by_id
        self._by_category = {
            category: tuple(sorted(members, key=_id_of)) for category, members in grouped.items()
        }
        self._all = tuple(t for category in CATEGORY_IDS for t in self._by_category[category])
        self._region_codes = frozenset(t.code for t in self._by_category["regions"])
        self._departement_codes = frozenset(t.code for t in self._by_category["departements"])

    def get(self, territory_id: str) -> Territory | None:
        """Return the territory with this id, or None."""
        return self._by_id.get(territory_id)

    def __getitem__(self, territory_id: str) -> Territory:
        try:
            return self._by_id[territory_id]
        except KeyError:
            raise KeyError(
                f"unknown territory id {territory_id!r} "
                "(expected `{kind}-{code}` such as reg-76, dep-2A, com-75056, epci-200000172)"
            ) from None

    def __contains__(self, territory_id: object) -> bool:
        return territory_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)

    def by_category(self, category: str) -> tuple[Territory, ...]:
        """Return the territories of a category, sorted by id."""
        _check_category(category)
        return self._by_category[category]

    def all(self) -> tuple[Territory, ...]:
        """Return every territory, category by category (contract order), each sorted by id."""
        return self._all

    def region_codes(self) -> frozenset[str]:
        """Return the INSEE codes of the 18 régions."""
        return self._region_codes

    def departement_codes(self) -> frozenset[str]:
        """Return the INSEE codes of the 101 départements."""
        return self._departement_codes


def _id_of(territory: Territory) -> str:
    return territory.id


@lru_cache(maxsize=1)
def load_registry() -> Registry:
    """Return the registry of every territory, read once from the package data."""
    raw = resources.files(DATA_PACKAGE).joinpath(DATA_FILE).read_bytes()
    with _gc_paused():
        return Registry(_territories_from_document(orjson.loads(raw)))


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC: building ~36k objects triggers full collections of the whole heap.

    Measured here: 50 ms with the GC paused, 90-150 ms without (more in a big process such as
    pytest). Nothing built here forms a cycle, so pausing frees nothing late.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# A frozen dataclass's __init__ sets each field through object.__setattr__; for 36k territories
# that alone costs ~85 ms here. Setting the slots through their descriptors halves it.
_SLOT_SETTERS: Final = tuple(Territory.__dict__[field.name].__set__ for field in fields(Territory))


def _territories_from_document(document: dict) -> list[Territory]:
    """Build the territories of a decoded `territories.json` (format described in the docs)."""
    if document.get("format") != DATA_FORMAT:
        raise ValueError(
            f"territories data has format {document.get('format')!r}, expected {DATA_FORMAT}; "
            "regenerate it with scripts/regenerate_territories.py"
        )
    memberships = [
        (tuple(regions), tuple(departements)) for regions, departements in document["memberships"]
    ]
    set_id, set_kind, set_code, set_name, set_category, set_pop, set_regs, set_deps = _SLOT_SETTERS
    new = object.__new__
    territories: list[Territory] = []
    append = territories.append
    for block in document["categories"]:
        category: str = block["id"]
        kind: str = block["kind"]
        _check_category(category)
        if CATEGORY_KINDS[category] != kind:
            raise ValueError(
                f"category {category!r} holds kind {kind!r}, not {CATEGORY_KINDS[category]!r}"
            )
        prefix = f"{kind}-"
        for code, name, population, membership in block["territories"]:
            regions, departements = memberships[membership]
            territory = new(Territory)
            set_id(territory, prefix + code)
            set_kind(territory, kind)
            set_code(territory, code)
            set_name(territory, name)
            set_category(territory, category)
            set_pop(territory, population)
            set_regs(territory, regions)
            set_deps(territory, departements)
            append(territory)
    return territories
