"""Backfill from a CSV file of snapshots and posts (format: docs/collector.md, "CSV source").

One UTF-8 file, a header naming the columns (any order, extra columns ignored), one row per
snapshot or post:

    record,handle,observed_at,status,account_id,followers,follows,media_count,post_id,published_at,likes,comments
    snapshot,gersledepartement,2021-06-30T06:00:00Z,ok,17841400123456789,15000,300,1200,,,,
    post,gersledepartement,,,,,,,17900000000000001,2021-06-29T17:02:00Z,412,17

A post row without `observed_at` belongs to every snapshot of its handle whose 30-day window
holds it; with `observed_at`, only to the snapshot of that time (counts as seen then). Pure:
`parse_csv` turns lines into events and a list of rejected rows (line number and reason);
the same file always gives the same events, hence the same event ids.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pydantic import ValidationError

from services.common.clock import format_timestamp
from services.common.contracts import FUTURE_TOLERANCE_SECONDS, MAX_RECENT_POSTS
from services.common.events import MAX_COUNT, PLATFORM_ID_PATTERN, build_metrics_event
from services.common.handles import InvalidHandle, normalise_handle

COLUMNS: Final = (
    "record",
    "handle",
    "observed_at",
    "status",
    "account_id",
    "followers",
    "follows",
    "media_count",
    "post_id",
    "published_at",
    "likes",
    "comments",
)
STATUSES: Final = ("ok", "not_found", "error")
WINDOW: Final = timedelta(hours=720)
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:?\d{2})$")
_COUNT = re.compile(r"^[0-9]{1,16}$")
_PLATFORM_ID = re.compile(PLATFORM_ID_PATTERN)


class CsvFormatError(ValueError):
    """The file is not a collector CSV at all (no header, or required columns missing)."""


class BadRow(ValueError):
    """A row that cannot be imported; the message says why."""


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A row not imported: its line in the file (1-based) and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class _Snapshot:
    line: int
    handle: str
    observed_at: datetime
    status: str
    account_id: str | None
    followers: int | None
    follows: int | None
    media_count: int | None


@dataclass(frozen=True, slots=True)
class _Post:
    line: int
    post_id: str
    published_at: datetime
    likes: int
    comments: int


@dataclass(slots=True)
class CsvImport:
    """The events of a file, in the order of its snapshot rows, and the rows left out."""

    events: list[dict[str, Any]] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    rows: int = 0
    snapshots: int = 0
    posts: int = 0
    posts_unused: int = 0  # valid posts that no snapshot's window holds


def parse_time(text: str, column: str) -> datetime:
    """An RFC 3339 time with whole seconds (`Z`, `+00:00` or Graph's `+0000`), as UTC."""
    if not _TIME.match(text):
        raise BadRow(f"{column} {text!r} is not a time like 2021-06-30T06:00:00Z")
    normalised = text[:-1] + "+00:00" if text.endswith("Z") else text
    if normalised[-3] != ":":
        normalised = normalised[:-2] + ":" + normalised[-2:]
    try:
        return datetime.fromisoformat(normalised).astimezone(UTC)
    except ValueError:
        raise BadRow(f"{column} {text!r} is not a real date and time") from None


def _count(row: dict[str, str], column: str) -> int:
    text = row[column]
    if not _COUNT.match(text) or int(text) > MAX_COUNT:
        raise BadRow(f"{column} {text!r} is not a whole number >= 0")
    return int(text)


def _empty(row: dict[str, str], columns: Iterable[str], why: str) -> None:
    filled = [c for c in columns if row[c]]
    if filled:
        raise BadRow(f"{', '.join(filled)} must be empty {why}")


def parse_csv(lines: Iterable[str], *, now: datetime) -> CsvImport:
    """Parse a collector CSV: every good snapshot as an event, every bad row reported.

    `lines` are the file's lines (opened with `newline=""`, as the csv module wants). `now`
    is this machine's clock: a snapshot more than 5 minutes after it is refused.
    Raises CsvFormatError when the header is missing or lacks a required column.
    """
    result = CsvImport()
    snapshots: list[_Snapshot] = []
    seen_snapshots: dict[tuple[str, datetime], int] = {}
    floating: dict[str, dict[str, _Post]] = {}
    pinned: dict[tuple[str, datetime], dict[str, _Post]] = {}
    pinned_lines: dict[tuple[str, datetime], list[int]] = {}
    limit = now + timedelta(seconds=FUTURE_TOLERANCE_SECONDS)
    reader = csv.reader(lines)
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            result.problems.append(RowProblem(start, f"unreadable CSV: {error}"))
            continue
        if not cells or not any(cell.strip() for cell in cells) or cells[0].startswith("#"):
            continue
        if header is None:
            header = [cell.strip().lstrip("\ufeff") for cell in cells]
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise CsvFormatError(
                    f"line {start}: the header lacks {', '.join(missing)} "
                    f"(expected columns: {','.join(COLUMNS)})"
                )
            continue
        result.rows += 1
        if len(cells) != len(header):
            result.problems.append(
                RowProblem(start, f"{len(cells)} cells, the header has {len(header)}")
            )
            continue
        row = {name: cells[i].strip() for i, name in enumerate(header) if name in COLUMNS}
        try:
            kind = row["record"]
            if kind not in ("snapshot", "post"):
                raise BadRow(f"record {kind!r} is neither snapshot nor post")
            try:
                handle = normalise_handle(row["handle"])
            except InvalidHandle as invalid:
                raise BadRow(f"handle {row['handle']!r} {invalid.reason}") from None
            if kind == "snapshot":
                snapshot = _snapshot(row, start, handle, limit)
                first = seen_snapshots.get((handle, snapshot.observed_at))
                if first is not None:
                    raise BadRow(
                        f"a second snapshot of {handle} observed at "
                        f"{format_timestamp(snapshot.observed_at)} (first on line {first})"
                    )
                seen_snapshots[(handle, snapshot.observed_at)] = start
                snapshots.append(snapshot)
            else:
                post = _post(row, start)
                observed = (
                    parse_time(row["observed_at"], "observed_at") if row["observed_at"] else None
                )
                bucket = (
                    floating.setdefault(handle, {})
                    if observed is None
                    else pinned.setdefault((handle, observed), {})
                )
                if post.post_id in bucket:
                    raise BadRow(
                        f"post {post.post_id} of {handle} is listed twice "
                        f"(first on line {bucket[post.post_id].line})"
                    )
                bucket[post.post_id] = post
                if observed is not None:
                    pinned_lines.setdefault((handle, observed), []).append(start)
                result.posts += 1
        except BadRow as bad:
            result.problems.append(RowProblem(start, str(bad)))
    if header is None:
        raise CsvFormatError(f"no header (expected columns: {','.join(COLUMNS)})")
    used: set[tuple[str, str]] = set()
    for snapshot in snapshots:
        try:
            result.events.append(_event(snapshot, floating, pinned, used))
            result.snapshots += 1
        except (BadRow, ValidationError) as bad:
            result.problems.append(RowProblem(snapshot.line, _reason(bad)))
    for (handle, observed), numbers in pinned_lines.items():
        if (handle, observed) not in seen_snapshots:
            for number in numbers:
                result.problems.append(
                    RowProblem(
                        number,
                        f"no snapshot of {handle} observed at {format_timestamp(observed)} "
                        "in the file for this post",
                    )
                )
    result.posts_unused = sum(
        1
        for handle, posts in floating.items()
        for post_id in posts
        if (handle, post_id) not in used
    )
    result.problems.sort(key=lambda problem: problem.line)
    return result


def _snapshot(row: dict[str, str], line: int, handle: str, limit: datetime) -> _Snapshot:
    observed = parse_time(row["observed_at"], "observed_at") if row["observed_at"] else None
    if observed is None:
        raise BadRow("observed_at is empty")
    if observed > limit:
        raise BadRow(
            f"observed_at {format_timestamp(observed)} is more than 5 minutes in the future"
        )
    status = row["status"]
    if status not in STATUSES:
        raise BadRow(f"status {status!r} is not one of ok, not_found, error")
    _empty(row, ("post_id", "published_at", "likes", "comments"), "on a snapshot row")
    account_id = row["account_id"] or None
    if account_id is not None and not _PLATFORM_ID.match(account_id):
        raise BadRow(f"account_id {account_id!r} is not a platform id")
    if status != "ok":
        _empty(row, ("followers", "follows", "media_count"), f"when status is {status}")
        return _Snapshot(line, handle, observed, status, account_id, None, None, None)
    followers, follows = _count(row, "followers"), _count(row, "follows")
    media_count = _count(row, "media_count")
    return _Snapshot(line, handle, observed, status, account_id, followers, follows, media_count)


def _post(row: dict[str, str], line: int) -> _Post:
    _empty(row, ("status", "account_id", "followers", "follows", "media_count"), "on a post row")
    post_id = row["post_id"]
    if not _PLATFORM_ID.match(post_id):
        raise BadRow(f"post_id {post_id!r} is not a platform id")
    if not row["published_at"]:
        raise BadRow("published_at is empty")
    return _Post(
        line,
        post_id,
        parse_time(row["published_at"], "published_at"),
        _count(row, "likes"),
        _count(row, "comments"),
    )


def _event(
    snapshot: _Snapshot,
    floating: dict[str, dict[str, _Post]],
    pinned: dict[tuple[str, datetime], dict[str, _Post]],
    used: set[tuple[str, str]],
) -> dict[str, Any]:
    if snapshot.status != "ok":
        return build_metrics_event(
            handle=snapshot.handle,
            account_id=snapshot.account_id,
            observed_at=snapshot.observed_at,
            status=snapshot.status,  # type: ignore[arg-type]
            source="csv",
        )
    start, end = snapshot.observed_at - WINDOW, snapshot.observed_at
    posts = {
        post_id: post
        for post_id, post in floating.get(snapshot.handle, {}).items()
        if start < post.published_at <= end
    }
    posts |= {
        post_id: post
        for post_id, post in pinned.get((snapshot.handle, snapshot.observed_at), {}).items()
        if start < post.published_at <= end
    }
    used.update((snapshot.handle, post_id) for post_id in posts)
    newest = sorted(posts.values(), key=lambda p: (p.published_at, p.post_id), reverse=True)
    return build_metrics_event(
        handle=snapshot.handle,
        account_id=snapshot.account_id,
        observed_at=snapshot.observed_at,
        status="ok",
        source="csv",
        followers=snapshot.followers,
        follows=snapshot.follows,
        media_count=snapshot.media_count,
        recent_posts=[
            {
                "id": post.post_id,
                "published_at": format_timestamp(post.published_at),
                "likes": post.likes,
                "comments": post.comments,
                "likes_hidden": post.likes == 0 and post.comments > 0,
            }
            for post in newest[:MAX_RECENT_POSTS]
        ],
    )


def _reason(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"not a valid snapshot: {where}: {first['msg']}"
    return str(error)
