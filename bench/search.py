"""Territory search: latency of `SearchIndex.search` over all 36,249 territories against a plain
Python scan of the same normalised names (target: p99 < 10 ms per query).

A fixed, seeded set of realistic queries: prefixes of 3 to 8 characters of random names as
typed (accents or not), accent-less full names, "st denis" and its spellings, INSEE codes and
their prefixes, SIRENs, `@handle` prefixes (a synthetic handle for every territory), and
prefixes filtered by the territory's category. The index answers each query `ROUNDS` times;
the scan (for each territory, the token-prefix rule, then the same tiers and order) once, and
must return the same territories in the same order (`agree`).

Usage: python -m bench search
"""

from __future__ import annotations

import heapq
import random
import statistics
import time
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

from services.common.search import SearchIndex, code_query, handle_query, name_tokens
from services.common.territories import Registry, Territory, load_registry

SEED = 20261207
ROUNDS = 5  # the index answers each query this many times (the scan once: it is slow)
BUILDS = 3
LIMIT = 10
TARGET_P99_MS = 10.0


def _plain(name: str) -> str:
    """A name typed without accents, in lower case (hyphens and apostrophes kept)."""
    decomposed = unicodedata.normalize("NFKD", name.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _handle(territory: Territory) -> str:
    return f"{territory.kind}.{territory.code.lower()}.officiel"


def queries(registry: Registry) -> list[tuple[str, str, str | None]]:
    """(kind of query, query, category or None), seeded."""
    rng = random.Random(SEED)
    everything = registry.all()
    found: list[tuple[str, str, str | None]] = []
    for _ in range(200):
        name = rng.choice(everything).name
        prefix = name[: rng.randint(3, 8)]
        found.append(("prefix", prefix if rng.random() < 0.5 else _plain(prefix), None))
    for _ in range(60):
        found.append(("full name", _plain(rng.choice(everything).name), None))
    found += [("st denis", q, None) for q in ("st denis", "saint-denis", "St-Denis", "ST DENIS")]
    for _ in range(30):
        found.append(("code", rng.choice(everything).code, None))
    for _ in range(20):
        code = rng.choice(everything).code
        found.append(("code prefix", code[: rng.randint(2, 4)], None))
    epcis = [t for t in everything if t.kind == "epci"]
    for _ in range(20):
        found.append(("siren", rng.choice(epcis).code, None))
    for _ in range(20):
        handle = _handle(rng.choice(everything))
        found.append(("handle", "@" + handle[: rng.randint(3, len(handle))], None))
    for _ in range(40):
        territory = rng.choice(everything)
        prefix = _plain(territory.name)[: rng.randint(3, 8)]
        found.append(("category", prefix, territory.category))
    found.append(("category", "mea", "petites-villes"))
    return found


class Scan:
    """The baseline: every territory's normalised name tested against the query, each time."""

    def __init__(self, registry: Registry, handles: dict[str, str]) -> None:
        self.territories = sorted(registry.all(), key=lambda t: (-t.population, t.id))
        self.tokens = [name_tokens(t.name) for t in self.territories]
        self.names = [" ".join(tokens) for tokens in self.tokens]
        self.handles = [handles.get(t.id) for t in self.territories]

    def search(self, query: str, category: str | None, limit: int) -> list[str]:
        handle = handle_query(query)
        if handle is not None:
            return self._keyed(self.handles, handle, category, limit) if handle else []
        code = code_query(query)
        if code is not None:
            return self._keyed([t.code for t in self.territories], code, category, limit)
        words = name_tokens(query)
        if not words:
            return []
        text = " ".join(words)
        found: list[tuple[int, int]] = []
        for rank, tokens in enumerate(self.tokens):
            if category is not None and self.territories[rank].category != category:
                continue
            if not _distinct_prefixes(words, tokens):
                continue
            name = self.names[rank]
            if name == text:
                tier = 1
            elif name.startswith(text):
                tier = 2
            elif _subsequence(words, tokens):
                tier = 3
            else:
                tier = 4
            found.append((tier, rank))
        return [self.territories[rank].id for _, rank in heapq.nsmallest(limit, found)]

    def _keyed(
        self, keys: Sequence[str | None], key: str, category: str | None, limit: int
    ) -> list[str]:
        exact, prefixed = [], []
        for rank, value in enumerate(keys):
            if value is None or (category and self.territories[rank].category != category):
                continue
            if value == key:
                exact.append(rank)
            elif value.startswith(key):
                prefixed.append((value, rank))
        ranks = exact + [rank for _, rank in sorted(prefixed)]
        return [self.territories[rank].id for rank in ranks[:limit]]


def _distinct_prefixes(words: Sequence[str], tokens: Sequence[str]) -> bool:
    """Each word begins a distinct token (backtracking: independent of the index's method)."""
    if not words:
        return True
    first, rest = words[0], words[1:]
    for i, token in enumerate(tokens):
        if token.startswith(first) and _distinct_prefixes(rest, [*tokens[:i], *tokens[i + 1 :]]):
            return True
    return False


def _subsequence(words: Sequence[str], tokens: Sequence[str]) -> bool:
    position = 0
    for word in words:
        while position < len(tokens) and not tokens[position].startswith(word):
            position += 1
        if position == len(tokens):
            return False
        position += 1
    return True


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 4),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 4),
        "max_ms": round(ordered[-1], 4),
        "samples": len(ordered),
    }


def run() -> dict[str, Any]:
    registry = load_registry()
    handles = {t.id: _handle(t) for t in registry.all()}
    builds = []
    index: SearchIndex | None = None
    for _ in range(BUILDS):
        ms, index = _timed(lambda: SearchIndex.build(registry))
        builds.append(ms)
    assert index is not None
    handles_ms, index = _timed(lambda: index.with_handles(handles))
    scan = Scan(registry, handles)
    asked = queries(registry)

    index_samples: list[float] = []
    slowest: list[tuple[float, str, str | None]] = []
    answers: list[list[str]] = []
    for round_number in range(ROUNDS):
        for _, query, category in asked:
            ms, hits = _timed(lambda q=query, c=category: index.search(q, c, LIMIT))
            index_samples.append(ms)
            slowest.append((ms, query, category))
            if round_number == 0:
                answers.append([hit.territory.id for hit in hits])
    scan_samples: list[float] = []
    disagreements = []
    for (_, query, category), answer in zip(asked, answers, strict=True):
        ms, expected = _timed(lambda q=query, c=category: scan.search(q, c, LIMIT))
        scan_samples.append(ms)
        if expected != answer:
            disagreements.append({"query": query, "category": category})

    index_summary, scan_summary = _summary(index_samples), _summary(scan_samples)
    kinds: dict[str, int] = {}
    for kind, _, _ in asked:
        kinds[kind] = kinds.get(kind, 0) + 1
    return {
        "territories": len(index),
        "queries": len(asked),
        "query_kinds": kinds,
        "limit": LIMIT,
        "build_ms": {
            "median": round(statistics.median(builds), 1),
            "first": round(builds[0], 1),
            "handles": round(handles_ms, 1),
        },
        "index": {**index_summary, "rounds": ROUNDS},
        "scan": {**scan_summary, "rounds": 1},
        "ratio": {
            "p50": round(scan_summary["p50_ms"] / index_summary["p50_ms"], 1),
            "p99": round(scan_summary["p99_ms"] / index_summary["p99_ms"], 1),
        },
        "agree": not disagreements,
        "disagreements": disagreements[:10],
        "slowest": [
            {"ms": round(ms, 3), "query": q, "category": c}
            for ms, q, c in heapq.nlargest(5, slowest, key=lambda s: s[0])
        ],
        "targets": {
            "p99_ms_below": TARGET_P99_MS,
            "met": index_summary["p99_ms"] < TARGET_P99_MS and not disagreements,
        },
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
