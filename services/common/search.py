"""Territory search (pure, no I/O): find a territory by name as you type, by INSEE code or SIREN,
or by Instagram handle, among all 36,249 territories of the registry.

Names and queries go through the same `normalise` (accents, case, punctuation, `st` for
`saint`). A name query matches a territory when every query token is a prefix of a distinct
token of its name; the relevance tiers are: the whole name equals the query, the whole name
starts with the query, all tokens match in order, in any order; within a tier, population
descending then id. A query of digits (or `2A…`/`2B…`) matches codes, one starting with `@`
matches handles: the exact code or handle first, then the codes or handles it begins.

Every lookup is a bisection in a sorted list (whole names, name tokens, codes, handles) plus
work on the matches only: no query scans the registry (bench/search.py measures it).
"""

from __future__ import annotations

import heapq
import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Final, Literal

from services.common.contracts import CATEGORY_IDS
from services.common.territories import Registry, Territory

MatchKind = Literal[
    "name",  # the whole name equals the query
    "name-prefix",  # the whole name starts with the query
    "tokens-in-order",  # each query token begins a name token, in the query's order
    "tokens",  # each query token begins a distinct name token, in any order
    "code",  # the INSEE code or SIREN equals the query
    "code-prefix",  # the code starts with the query
    "handle",  # the Instagram handle equals the query (without `@`)
    "handle-prefix",  # the handle starts with the query
]

DEFAULT_LIMIT: Final = 10

# Abbreviations read as the word they stand for, in names and in queries alike.
ABBREVIATIONS: Final[dict[str, str]] = {
    "st": "saint",
    "ste": "sainte",
    "sts": "saints",
    "stes": "saintes",
}

# Letters that Unicode does not decompose into a base letter plus marks.
_LIGATURES: Final[dict[str, str]] = {
    "œ": "oe",
    "æ": "ae",
    "ø": "o",
    "ß": "ss",
    "ł": "l",
    "đ": "d",
    "ı": "i",  # dotless i: `I` lowers to `i`, so `ı` must fold there too
}
_KEEP: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")

# A code query: an INSEE code or its beginning (`32`, `0411`, `2A004`) or a SIREN (9 digits).
_CODE_QUERY: Final = re.compile(r"[0-9]{1,9}|2[AB][0-9]{0,3}")
_HANDLE_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._")
# Sorts after every character a key can hold: `key + _AFTER` bounds the keys starting with key.
_AFTER: Final = "\U0010ffff"


def _fold_char(char: str) -> str:
    """One character as lower-case a-z/0-9, without its accents; a space if it is neither."""
    folded = []
    for lower in char.casefold():
        lower = _LIGATURES.get(lower, lower)
        for part in unicodedata.normalize("NFKD", lower):
            if part in _KEEP:
                folded.append(part)
            elif not unicodedata.combining(part):
                folded.append(_LIGATURES.get(part, " "))
    return "".join(folded)


# Latin-1 and Latin Extended-A/B folded once; other characters are folded when met.
_FOLD_TABLE: Final[dict[int, str]] = {code: _fold_char(chr(code)) for code in range(0x250)}


def _fold(text: str) -> str:
    folded = text.translate(_FOLD_TABLE)
    if folded.isascii():
        return folded
    return "".join(char if char.isascii() else _fold_char(char) for char in folded)


def name_tokens(text: str) -> tuple[str, ...]:
    """The normalised tokens of a name or a query (see `normalise`)."""
    return tuple(ABBREVIATIONS.get(token, token) for token in _fold(text).split())


def normalise(text: str) -> str:
    """Lower case, without accents (œ → oe, æ → ae), punctuation as spaces, spaces collapsed,
    `st`/`ste` read as `saint`/`sainte`: "St-Denis" and "saint denis" both give "saint denis"."""
    return " ".join(name_tokens(text))


def code_query(query: str) -> str | None:
    """The code a query names (`0411`, `2A`, a SIREN, spaces ignored), or None if it is no code."""
    compact = "".join(query.split()).upper()
    return compact if _CODE_QUERY.fullmatch(compact) else None


def handle_query(query: str) -> str | None:
    """The handle (or its beginning) an `@` query names, lower case, or None if it is no
    handle query."""
    stripped = query.strip()
    if not stripped.startswith("@"):
        return None
    return "".join(char for char in stripped[1:].lower() if char in _HANDLE_CHARS)


@dataclass(frozen=True, slots=True)
class Hit:
    """A territory found, how it matched, and its Instagram handle (None: no known account)."""

    territory: Territory
    match: MatchKind
    handle: str | None


@dataclass(frozen=True, slots=True)
class _Keys:
    """Keys sorted with, for each, a territory's rank: `keys[i]` belongs to `ranks[i]`; equal
    keys by rank."""

    keys: list[str]
    ranks: list[int]

    def bounds(self, key: str) -> tuple[int, int, int]:
        """Where the keys equal to `key` start, where they end, and where the keys starting
        with `key` end."""
        keys = self.keys
        low = bisect_left(keys, key)
        return low, bisect_right(keys, key, low), bisect_left(keys, key + _AFTER, low)


def _sorted_keys(
    keys: Sequence[str], ranks: Sequence[int], categories: Sequence[str]
) -> dict[str | None, _Keys]:
    """`keys[i]` of the territory ranked `ranks[i]` (ranks ascending), sorted for all
    territories (None) and for each category."""
    # A stable sort of positions by key alone keeps equal keys by rank, and is about three
    # times faster than sorting (key, rank) pairs.
    order = sorted(range(len(keys)), key=keys.__getitem__)
    by_category: dict[str | None, _Keys] = {
        None: _Keys([keys[i] for i in order], [ranks[i] for i in order])
    }
    for category in CATEGORY_IDS:
        by_category[category] = _Keys([], [])
    for i in order:
        found = by_category[categories[ranks[i]]]
        found.keys.append(keys[i])
        found.ranks.append(ranks[i])
    return by_category


@dataclass(frozen=True, slots=True)
class _Names:
    """What the name and code searches read; built once per registry.

    A territory's rank is its position by population descending, then id: so any sorted
    list of ranks is in relevance order within a tier.
    """

    territories: tuple[Territory, ...]  # by rank
    categories: tuple[str, ...]  # by rank
    names: tuple[str, ...]  # normalised, by rank
    tokens: tuple[tuple[str, ...], ...]  # by rank
    ranks_of: dict[str, frozenset[int]]  # category -> its territories' ranks
    whole_names: dict[str | None, _Keys]  # normalised whole names, all and per category
    vocabulary: list[str]  # every name token, sorted
    postings: list[tuple[int, ...]]  # vocabulary[i] -> ranks of the names holding it (sorted)
    cumulative: list[int]  # cumulative[i]: len(postings[0]) + … + len(postings[i - 1])
    codes: dict[str | None, _Keys]  # INSEE codes and SIRENs, all and per category

    @classmethod
    def build(cls, registry: Registry) -> _Names:
        territories = tuple(sorted(registry.all(), key=lambda t: (-t.population, t.id)))
        categories = tuple(t.category for t in territories)
        tokens = tuple(name_tokens(t.name) for t in territories)
        names = tuple(" ".join(parts) for parts in tokens)
        holders: dict[str, list[int]] = {}
        for rank, parts in enumerate(tokens):
            for token in set(parts):
                found = holders.get(token)
                if found is None:
                    holders[token] = [rank]
                else:
                    found.append(rank)  # ranks come in order: each list stays sorted
        vocabulary = sorted(holders)
        postings = [tuple(holders[token]) for token in vocabulary]
        ranks_of: dict[str, set[int]] = {category: set() for category in CATEGORY_IDS}
        for rank, category in enumerate(categories):
            ranks_of[category].add(rank)
        every = range(len(territories))
        return cls(
            territories=territories,
            categories=categories,
            names=names,
            tokens=tokens,
            ranks_of={category: frozenset(ranks) for category, ranks in ranks_of.items()},
            whole_names=_sorted_keys(names, every, categories),
            vocabulary=vocabulary,
            postings=postings,
            cumulative=[0, *accumulate(len(p) for p in postings)],
            codes=_sorted_keys([t.code for t in territories], every, categories),
        )

    def token_range(self, prefix: str) -> tuple[int, int]:
        """The vocabulary's tokens starting with `prefix`: `vocabulary[low:high]`."""
        low = bisect_left(self.vocabulary, prefix)
        return low, bisect_left(self.vocabulary, prefix + _AFTER, low)


@dataclass(frozen=True, slots=True)
class _Handles:
    """Which handle each territory uses, and the handles sorted for lookup."""

    of: dict[str, str]  # territory id -> handle
    keys: dict[str | None, _Keys]

    @classmethod
    def build(cls, names: _Names, handles: Mapping[str, str | None]) -> _Handles:
        of = {tid: handle.lower() for tid, handle in handles.items() if handle}
        ranks = [rank for rank, t in enumerate(names.territories) if t.id in of]
        keys = [of[names.territories[rank].id] for rank in ranks]
        return cls(of, _sorted_keys(keys, ranks, names.categories))


def _in_order(query: Sequence[str], name: Sequence[str]) -> bool:
    """Each query token begins a name token, each after the previous one's."""
    position = 0
    for token in query:
        while position < len(name) and not name[position].startswith(token):
            position += 1
        if position == len(name):
            return False
        position += 1
    return True


def _in_any_order(query: Sequence[str], name: Sequence[str]) -> bool:
    """Each query token begins a distinct name token.

    Longest query tokens first, each taking the first free name token it begins: two query
    tokens that can begin the same name token are prefixes one of the other, so the longer's
    choices are among the shorter's and taking them first never blocks a match that exists
    (tests/unit/test_search.py checks it against every assignment).
    """
    free = list(name)
    for token in sorted(query, key=len, reverse=True):
        for index, candidate in enumerate(free):
            if candidate.startswith(token):
                del free[index]
                break
        else:
            return False
    return True


class SearchIndex:
    """Every territory of a registry, searchable by name, code and (optionally) handle.

    Build it once (`SearchIndex.build`); when the accounts change, `with_handles` gives a new
    index sharing the name and code parts, so only the handle part is rebuilt.
    """

    __slots__ = ("_handles", "_names")

    def __init__(self, names: _Names, handles: _Handles) -> None:
        self._names = names
        self._handles = handles

    @classmethod
    def build(
        cls, registry: Registry, handles: Mapping[str, str | None] | None = None
    ) -> SearchIndex:
        """Index every territory of the registry (and these handles: territory id -> handle)."""
        names = _Names.build(registry)
        return cls(names, _Handles.build(names, handles or {}))

    def with_handles(self, handles: Mapping[str, str | None]) -> SearchIndex:
        """The same index with another handle mapping (territory id -> handle or None)."""
        return SearchIndex(self._names, _Handles.build(self._names, handles))

    def __len__(self) -> int:
        return len(self._names.territories)

    def handle_of(self, territory_id: str) -> str | None:
        """The handle this index knows for the territory."""
        return self._handles.of.get(territory_id)

    def search(
        self, query: str, category: str | None = None, limit: int = DEFAULT_LIMIT
    ) -> list[Hit]:
        """The territories best matching `query` (a name, a code, or an `@handle`), at most
        `limit`, only of `category` if given (a category id)."""
        if category is not None and category not in self._names.ranks_of:
            raise ValueError(f"unknown category {category!r}")
        if limit < 1:
            return []
        handle = handle_query(query)
        if handle is not None:
            if not handle:
                return []
            found = self._keyed(self._handles.keys[category], handle, limit)
            return self._hits(found, ("handle", "handle-prefix"))
        code = code_query(query)
        if code is not None:
            found = self._keyed(self._names.codes[category], code, limit)
            return self._hits(found, ("code", "code-prefix"))
        return self._by_name(name_tokens(query), category, limit)

    def _hits(
        self, found: tuple[list[int], list[int]], kinds: tuple[MatchKind, MatchKind]
    ) -> list[Hit]:
        territories, handles = self._names.territories, self._handles.of
        return [
            Hit(territories[rank], kind, handles.get(territories[rank].id))
            for kind, ranks in zip(kinds, found, strict=True)
            for rank in ranks
        ]

    def _keyed(self, keys: _Keys, key: str, limit: int) -> tuple[list[int], list[int]]:
        """Ranks of the keys equal to `key` (by rank), then of those starting with it (by key,
        then rank), at most `limit` in all."""
        low, exact_end, prefix_end = keys.bounds(key)
        exact = keys.ranks[low:exact_end][:limit]  # equal keys are sorted by rank
        rest = limit - len(exact)
        return exact, keys.ranks[exact_end : min(prefix_end, exact_end + rest)]

    def _by_name(self, query: tuple[str, ...], category: str | None, limit: int) -> list[Hit]:
        if not query:
            return []
        names = self._names
        allowed = None if category is None else names.ranks_of[category]
        text = " ".join(query)
        # Tiers 1 and 2: the whole name equals, then starts with, the query.
        whole = names.whole_names[category]
        low, exact_end, prefix_end = whole.bounds(text)
        exact = whole.ranks[low:exact_end][:limit]  # equal names are sorted by rank
        prefixed = heapq.nsmallest(limit - len(exact), whole.ranks[exact_end:prefix_end])
        kinds: list[tuple[MatchKind, list[int]]] = [("name", exact), ("name-prefix", prefixed)]
        need = limit - len(exact) - len(prefixed)
        if need > 0:
            in_order, any_order = self._by_tokens(query, text, allowed, need)
            kinds += [("tokens-in-order", in_order), ("tokens", any_order)]
        territories, handles = names.territories, self._handles.of
        return [
            Hit(territories[rank], kind, handles.get(territories[rank].id))
            for kind, found in kinds
            for rank in found
        ][:limit]

    def _by_tokens(
        self, query: tuple[str, ...], text: str, allowed: frozenset[int] | None, need: int
    ) -> tuple[list[int], list[int]]:
        """Tiers 3 and 4 (names not starting with the query): at most `need` of each."""
        names = self._names
        # Candidates: the names holding a token that begins with the query's most selective
        # token (the fewest postings); each is then checked against every query token.
        ranges = [names.token_range(token) for token in query]
        low, high = min(ranges, key=lambda r: names.cumulative[r[1]] - names.cumulative[r[0]])
        if high - low == 1:
            candidates: Iterable[int] = names.postings[low]
            if allowed is not None:
                candidates = sorted(allowed.intersection(candidates))
        else:
            pool = set().union(*names.postings[low:high])
            candidates = sorted(pool if allowed is None else pool & allowed)
        in_order: list[int] = []
        any_order: list[int] = []
        single = len(query) == 1
        whole, tokens = names.names, names.tokens
        for rank in candidates:
            if whole[rank].startswith(text):
                continue  # tiers 1 and 2
            if single or _in_order(query, tokens[rank]):
                in_order.append(rank)
                if len(in_order) == need:
                    break  # the candidates come by rank: nothing later comes before these
            elif len(any_order) < need and _in_any_order(query, tokens[rank]):
                any_order.append(rank)
        return in_order, any_order[: need - len(in_order)]
