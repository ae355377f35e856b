"""Territory search (services/common/search.py): normalisation, the name tiers and their order,
as-you-type prefixes, codes and SIRENs, handles, the category filter and the limit, on the real
registry; and the index against a brute-force oracle on generated registries."""

from __future__ import annotations

import itertools
import unicodedata
from functools import lru_cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.search import SearchIndex, name_tokens, normalise
from services.common.territories import Registry, Territory, load_registry

MEAILLES = "com-04115"
SAINT_DENIS = ["com-97411", "com-93066"]  # La Réunion (155,634), Seine-Saint-Denis (149,077)
TIERS = ["name", "name-prefix", "tokens-in-order", "tokens"]


@lru_cache(maxsize=1)
def index() -> SearchIndex:
    return SearchIndex.build(load_registry())


def ids(hits) -> list[str]:
    return [hit.territory.id for hit in hits]


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def relevance(territory: Territory) -> tuple[int, str]:
    return -territory.population, territory.id


# --- normalisation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Méailles", "meailles"),
        ("ME\u0301AILLES", "meailles"),  # an accent typed as a combining mark
        ("Saint-Denis", "saint denis"),
        ("St-Denis", "saint denis"),
        ("st. denis", "saint denis"),
        ("ST  DENIS", "saint denis"),
        ("Ste-Marie", "sainte marie"),
        ("Saintes-Maries-de-la-Mer", "saintes maries de la mer"),
        ("Stes-Maries-de-la-Mer", "saintes maries de la mer"),
        ("Stenay", "stenay"),  # only the whole word `st` is an abbreviation
        ("L'Haÿ-les-Roses", "l hay les roses"),
        ("L’Île-Saint-Denis", "l ile saint denis"),
        ("lʼÎle-d’Yeu", "l ile d yeu"),
        ("Œuilly", "oeuilly"),
        ("Cœuvres-et-Valsery", "coeuvres et valsery"),
        ("Lætitia", "laetitia"),
        ("CC Cœur de Beauce (CCCB)", "cc coeur de beauce cccb"),
        ("  Saint‐Denis /  Paris, 75 ", "saint denis paris 75"),  # U+2010 hyphen
        ("", ""),
        ("- ' .", ""),
    ],
)
def test_normalise_ignores_accents_case_punctuation_and_reads_st_as_saint(text, expected):
    assert normalise(text) == expected


LATIN = st.text(
    alphabet=st.characters(
        min_codepoint=0x20, max_codepoint=0x24F, categories=("L", "Zs", "Pd", "Po", "Nd")
    ),
    max_size=40,
)


@given(LATIN)
def test_normalise_is_idempotent_and_keeps_only_lower_case_words(text):
    once = normalise(text)
    assert normalise(once) == once
    assert once == " ".join(once.split())
    assert set(once) <= set("abcdefghijklmnopqrstuvwxyz0123456789 ")


@given(LATIN)
def test_normalise_ignores_case_and_accents(text):
    assert normalise(text.upper()) == normalise(text.lower()) == normalise(text)
    assert normalise(strip_accents(text)) == normalise(text)


def test_every_registry_name_normalises_to_words_without_accents():
    for territory in load_registry().all():
        words = name_tokens(territory.name)
        assert words and all(word.isascii() and word.isalnum() for word in words), territory


# --- names ------------------------------------------------------------------------------------


def test_meailles_typed_without_accent_finds_meailles_first():
    hits = index().search("meailles")
    assert ids(hits)[0] == MEAILLES and hits[0].match == "name"
    assert ids(index().search("Méailles"))[0] == MEAILLES


def test_st_denis_gives_the_two_communes_named_saint_denis_first():
    registry = load_registry()
    named = sorted(
        (t for t in registry.all() if t.name == "Saint-Denis" and t.category == "grandes-villes"),
        key=relevance,
    )
    assert [t.id for t in named] == SAINT_DENIS
    assert [registry[tid].departements for tid in SAINT_DENIS] == [("974",), ("93",)]
    for query in ("st denis", "saint-denis", "St-Denis", "SAINT DENIS", "st-denis"):
        hits = index().search(query)
        assert ids(hits)[:2] == SAINT_DENIS, query
        assert all(hit.territory.name == "Saint-Denis" for hit in hits[:4])


def test_a_name_is_offered_as_it_is_typed():
    for end in range(3, len("meailles") + 1):
        typed = "meailles"[:end]
        assert MEAILLES in ids(index().search(typed, "petites-villes")), typed
    assert ids(index().search("méaill"))[0] == MEAILLES
    assert MEAILLES in ids(index().search("mea", "petites-villes"))


def test_every_query_word_begins_a_distinct_name_word():
    hits = index().search("saint saint", limit=50)
    assert hits
    for hit in hits:
        words = name_tokens(hit.territory.name)
        assert sum(word.startswith("saint") for word in words) >= 2, hit.territory.name
    assert ids(index().search("lyon metropole"))[0] == "epci-200046977"  # Métropole de Lyon


def test_tiers_come_in_order_each_by_population_then_id():
    registry = load_registry()
    for query in ("st denis", "paris", "saint e", "denis", "la roche", "mer sur", "ste marie"):
        hits = index().search(query, limit=50)
        keys = [(TIERS.index(hit.match), *relevance(hit.territory)) for hit in hits]
        assert keys == sorted(keys), query
    paris = index().search("paris", limit=50)
    assert ids(paris)[:2] == ["com-75056", "dep-75"]  # equal population: by id
    assert registry["com-75056"].population == registry["dep-75"].population
    matches = [hit.match for hit in paris]
    assert matches[:2] == ["name", "name"] and "name-prefix" in matches
    assert "tokens-in-order" in matches  # Métropole du Grand Paris


def test_a_name_found_by_its_words_in_order_comes_before_one_in_any_order():
    hits = index().search("denis saint", limit=50)
    by_id = {hit.territory.id: hit.match for hit in hits}
    assert by_id["com-93066"] == "tokens"  # Saint-Denis: the words in the other order
    kinds = [hit.match for hit in hits]
    assert kinds == sorted(kinds, key=TIERS.index)


def test_category_filter_keeps_only_that_category():
    hits = index().search("saint denis", "petites-villes", limit=50)
    assert hits and all(hit.territory.category == "petites-villes" for hit in hits)
    assert not set(SAINT_DENIS) & set(ids(hits))
    assert ids(index().search("seine saint denis", "departements")) == ["dep-93"]
    assert index().search("meailles", "regions") == []
    with pytest.raises(ValueError, match="unknown category"):
        index().search("paris", "villes")


def test_limit_bounds_the_results():
    assert len(index().search("saint")) == 10
    assert len(index().search("saint", limit=3)) == 3
    assert len(index().search("saint", limit=50)) == 50
    assert ids(index().search("st denis", limit=1)) == SAINT_DENIS[:1]
    assert index().search("saint", limit=0) == []
    assert index().search("zzzzqx") == [] and index().search("  - ") == []


@lru_cache(maxsize=1)
def homonyms() -> dict[tuple[str, str], list[Territory]]:
    """Territories by category and normalised name, each list by population then id."""
    groups: dict[tuple[str, str], list[Territory]] = {}
    for territory in load_registry().all():
        groups.setdefault((territory.category, normalise(territory.name)), []).append(territory)
    return {key: sorted(group, key=relevance) for key, group in groups.items()}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(load_registry().all()), st.booleans())
def test_a_territory_is_found_by_its_own_name_within_its_category(territory, accented):
    """Tighter than "within the top 50": the territory comes among the exact matches, after
    exactly the homonyms of its category that rank before it (population, then id)."""
    query = territory.name if accented else strip_accents(territory.name).lower()
    hits = index().search(query, territory.category, limit=50)
    same_name = homonyms()[territory.category, normalise(territory.name)]
    homonyms_before = same_name[: same_name.index(territory)]
    assert len(same_name) < 50  # so the property can hold with a limit of 50
    assert ids(hits).index(territory.id) == len(homonyms_before)
    assert hits[len(homonyms_before)].match == "name"


# --- codes and handles ------------------------------------------------------------------------


def test_an_insee_code_finds_its_territory_then_the_codes_it_begins():
    hits = index().search("04115")
    assert ids(hits) == [MEAILLES] and hits[0].match == "code"
    registry = load_registry()
    expected = sorted(t.code for t in registry.all() if t.code.startswith("0411"))
    hits = index().search("0411")
    assert [hit.territory.code for hit in hits] == expected[:10]
    assert {hit.match for hit in hits} == {"code-prefix"}
    assert expected[0] == "04110" and len(expected) > 1


def test_a_code_shared_by_a_region_and_a_departement_gives_both_first():
    hits = index().search("32")
    assert sorted(ids(hits)[:2]) == ["dep-32", "reg-32"]
    assert [hit.match for hit in hits[:2]] == ["code", "code"]
    assert all(hit.territory.code.startswith("32") for hit in hits)
    assert ids(index().search("32", "departements")) == ["dep-32"]


def test_corsican_codes_and_sirens():
    assert ids(index().search("2a"))[0] == "dep-2A"
    assert ids(index().search("2A004")) == ["com-2A004"]  # Ajaccio
    assert ids(index().search("200046977")) == ["epci-200046977"]
    assert ids(index().search("200 046 977")) == ["epci-200046977"]
    hits = index().search("2000469")
    assert "epci-200046977" in ids(hits) and {h.match for h in hits} == {"code-prefix"}


def test_handles_are_found_after_an_at_sign_once_the_index_knows_them():
    assert index().search("@meailles") == []
    known = index().with_handles({MEAILLES: "Meailles.Village", "dep-04": "dep04", "x-1": None})
    hits = known.search("@meailles.village")
    assert ids(hits) == [MEAILLES] and hits[0].match == "handle"
    assert hits[0].handle == "meailles.village"
    hits = known.search("@MEAIL")
    assert ids(hits) == [MEAILLES] and hits[0].match == "handle-prefix"
    assert ids(known.search("@dep", "departements")) == ["dep-04"]
    assert known.search("@dep", "petites-villes") == [] and known.search("@") == []
    assert known.search("meailles")[0].handle == "meailles.village"  # names carry it too
    assert index().search("meailles")[0].handle is None  # the original is unchanged


# --- the index against a brute-force oracle --------------------------------------------------


def _oracle(registry: Registry, query: str, limit: int) -> list[str]:
    """Every territory tested one by one; the tiers by their definition."""
    words = name_tokens(query)
    text = " ".join(words)
    found = []
    for territory in registry.all():
        tokens = name_tokens(territory.name)
        distinct = any(
            all(tokens[i].startswith(word) for word, i in zip(words, chosen, strict=True))
            for chosen in itertools.permutations(range(len(tokens)), len(words))
        )
        if not words or not distinct:
            continue
        name = " ".join(tokens)
        in_order = any(
            all(tokens[i].startswith(word) for word, i in zip(words, chosen, strict=True))
            for chosen in itertools.combinations(range(len(tokens)), len(words))
        )
        tier = 0 if name == text else 1 if name.startswith(text) else 2 if in_order else 3
        found.append((tier, *relevance(territory)))
    return [tid for *_, tid in sorted(found)[:limit]]


WORDS = st.sampled_from(["a", "ab", "abc", "b", "ba", "st", "saint", "sainte", "é", "Ab"])


@st.composite
def registries(draw) -> Registry:
    names = draw(st.lists(st.lists(WORDS, min_size=1, max_size=4), min_size=1, max_size=12))
    populations = draw(st.lists(st.integers(0, 5), min_size=len(names), max_size=len(names)))
    return Registry(
        Territory(
            id=f"com-{n:05d}",
            kind="com",
            code=f"{n:05d}",
            name="-".join(words),
            category="petites-villes",
            population=population,
            regions=("76",),
            departements=("32",),
        )
        for n, (words, population) in enumerate(zip(names, populations, strict=True))
    )


@settings(max_examples=300, deadline=None)
@given(registries(), st.lists(WORDS, min_size=1, max_size=3), st.integers(1, 12))
def test_the_index_agrees_with_testing_every_territory(registry, words, limit):
    query = " ".join(words)
    hits = SearchIndex.build(registry).search(query, limit=limit)
    assert ids(hits) == _oracle(registry, query, limit)
