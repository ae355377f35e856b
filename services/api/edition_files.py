"""Whole published editions as files, for `/donnees/editions/{YYYY-MM}/{category}.csv|.json`.

A file holds every ranked entry of one category's published edition (not a page): the items
of `GET /api/v1/editions/{YYYY-MM}/{category}` page after page, from the same readers and the
same body builder (`bodies.edition_body`), so the file and the API agree entry for entry. The
published copy is immutable, so reading it in pages stitches nothing a write could interleave
(each page is one script, and the Lua side is only ever given a page).

Rendering the largest category (tens of thousands of entries) takes a noticeable time, so
each file is rendered once and kept (bounded in bytes, for a few minutes: the `simulated`
flag of an item follows the current account mapping); concurrent requests for a file that is
being rendered wait for that rendering.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from services.api.bodies import edition_body
from services.api.csv_export import EDITION_COLUMNS, to_csv
from services.api.errors import ApiError
from services.api.etag import etag_of
from services.api.items import ScoredEntries
from services.api.read.view import Readers
from services.common.contracts import CATEGORIES_BY_ID, METHODOLOGY_VERSION
from services.common.territories import Registry

FileKind = Literal["csv", "json"]
MEDIA_TYPES: Final[dict[str, str]] = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
}
# Published editions never change: a day in any cache.
CACHE_CONTROL: Final = "public, max-age=86400"
LICENCE: Final = "Licence Ouverte / Open Licence 2.0 (Etalab)"
LICENCE_URL: Final = "https://www.etalab.gouv.fr/licence-ouverte-open-licence/"

# Entries read and rendered per step: the event loop serves other requests between steps
# (250 entries are a few milliseconds of work).
PAGE: Final = 250
_KEEP_SECONDS: Final = 300.0
_KEEP_BYTES: Final = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class EditionFile:
    """A rendered file: its bytes, their strong ETag, its media type and file name."""

    data: bytes
    etag: str
    media_type: str
    filename: str


def filename(category: str, month: str, kind: FileKind) -> str:
    """`observatoire-departements-2021-06.csv` (the name the API's CSV of that edition has)."""
    return f"observatoire-{category}-{month}.{kind}"


async def _pages(
    readers: Readers, registry: Registry, scored: ScoredEntries, category: str, month: str
) -> AsyncIterator[dict[str, Any]]:
    """The edition bodies of every page of a published edition, in rank order."""
    offset, total, published_at = 0, None, None
    while True:
        page = await readers.repository.edition(category, month, offset=offset, limit=PAGE)
        if page.published is None or (
            total is not None
            and (page.published.total, page.published.published_at) != (total, published_at)
        ):
            # The view's generation changed under the read (a rebuild's switch): retry.
            raise ApiError(
                503,
                "unavailable",
                "the edition's copy changed while it was read (the view was rebuilt); retry",
                {"Retry-After": "1"},
            )
        total, published_at = page.published.total, page.published.published_at
        yield await edition_body(
            readers.accounts,
            registry,
            scored,
            category,
            month,
            page,
            limit=PAGE,
            offset=offset,
        )
        offset += PAGE
        if offset >= total:
            return


def _head(first: dict[str, Any]) -> dict[str, Any]:
    """The file's members before `items`: the edition's, its size, method and licence."""
    return {
        "category": first["category"],
        "label": CATEGORIES_BY_ID[first["category"]].label,
        "edition": first["edition"],
        "status": "published",
        "published_at": first["published_at"],
        "as_of": first["as_of"],
        "total": first["total"],
        "methodology_version": METHODOLOGY_VERSION,
        "licence": LICENCE,
        "licence_url": LICENCE_URL,
    }


async def render_file(
    readers: Readers,
    registry: Registry,
    scored: ScoredEntries,
    category: str,
    month: str,
    kind: FileKind,
) -> bytes:
    """Every entry of a published edition as one CSV or JSON file (read page by page; only
    one page of items is held as objects at a time)."""
    head: dict[str, Any] | None = None
    chunks: list[bytes] = []
    count = 0
    async for body in _pages(readers, registry, scored, category, month):
        items = body["items"]
        count += len(items)
        if head is None:
            head = _head(body)
            if kind == "csv":
                chunks.append(to_csv(EDITION_COLUMNS, ()).encode())
        if kind == "csv":
            chunks.append(to_csv(EDITION_COLUMNS, items, header=False).encode())
        else:
            chunks.extend(orjson.dumps(item) for item in items)
    assert head is not None
    if count != head["total"]:
        raise ApiError(
            503,
            "unavailable",
            "the edition's copy was incomplete when read; retry",
            {"Retry-After": "1"},
        )
    if kind == "csv":
        return b"".join(chunks)
    return orjson.dumps(head)[:-1] + b',"items":[' + b",".join(chunks) + b"]}"


class EditionFiles:
    """The rendered files, kept a few minutes within a byte budget (least recently used
    first out); one rendering at a time per file."""

    def __init__(self, keep_seconds: float = _KEEP_SECONDS, keep_bytes: int = _KEEP_BYTES) -> None:
        self.keep_seconds = keep_seconds
        self.keep_bytes = keep_bytes
        self._kept: OrderedDict[tuple[Any, ...], tuple[float, EditionFile]] = OrderedDict()
        self._bytes = 0
        # One per file ever asked for: a handful per published month.
        self._locks: dict[tuple[Any, ...], asyncio.Lock] = {}
        self.renders = 0  # files rendered (tests)

    def _get(self, key: tuple[Any, ...]) -> EditionFile | None:
        kept = self._kept.get(key)
        if kept is None:
            return None
        at, found = kept
        if time.monotonic() - at > self.keep_seconds:
            self._drop(key)
            return None
        self._kept.move_to_end(key)
        return found

    def _drop(self, key: tuple[Any, ...]) -> None:
        _, found = self._kept.pop(key)
        self._bytes -= len(found.data)

    def _put(self, key: tuple[Any, ...], found: EditionFile) -> None:
        if len(found.data) > self.keep_bytes:
            return
        self._kept[key] = (time.monotonic(), found)
        self._bytes += len(found.data)
        while self._bytes > self.keep_bytes:
            self._drop(next(iter(self._kept)))

    async def get(
        self,
        readers: Readers,
        registry: Registry,
        scored: ScoredEntries,
        category: str,
        month: str,
        kind: FileKind,
    ) -> EditionFile | None:
        """The file of a published edition; None when that month is not published."""
        if month not in await readers.editions.published_months():
            return None
        key = (readers.rk, category, month, kind)
        found = self._get(key)
        if found is not None:
            return found
        async with self._locks.setdefault(key, asyncio.Lock()):
            found = self._get(key)
            if found is None:
                data = await render_file(readers, registry, scored, category, month, kind)
                self.renders += 1
                found = EditionFile(
                    data, etag_of(data), MEDIA_TYPES[kind], filename(category, month, kind)
                )
                self._put(key, found)
            return found
