"""Rank changes: `GET /api/v1/rank-changes?category=&after_seq=` (the recorded events) and
`GET /api/v1/rank-changes/stream?category=` (Server-Sent Events, id = seq, resumable).

A stream starts after `Last-Event-ID` (what EventSource sends when it reconnects), else after
`after_seq`, else from now. It sends every recorded event after that point, then each new one,
and a comment every `sse_heartbeat_seconds` while idle. When events after the point are no
longer kept (Redis keeps the last 1,000 per category) it first sends a `missed` event: the
client should reload the standings. A cursor beyond the category's last event (a history that
was rebuilt) gets a `reset` event and continues from the last event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from redis.exceptions import RedisError

from services.api import schemas
from services.api.deps import FeedDep, HubDep, OptionsDep, ViewDep
from services.api.errors import ApiError
from services.api.metrics import STREAM_EVENTS, STREAMS
from services.api.middleware import client_of
from services.api.options import ApiOptions
from services.api.params import MAX_EVENTS, check_category
from services.api.read.view import LiveView
from services.api.responses import JSON
from services.api.streams import (
    StreamHub,
    StreamsStopping,
    sse_event,
)

router = APIRouter(prefix="/api/v1", tags=["rank changes"])
log = logging.getLogger("api.streams")

CategoryQuery = Annotated[
    str, Query(description="The category whose events to read.", examples=["departements"])
]
MAX_SEQ = 2**53 - 1
AfterSeq = Annotated[int, Query(ge=0, le=MAX_SEQ, description="Events with a greater seq.")]


@router.get("/rank-changes", responses=schemas.responses(schemas.RankChanges, 404))
async def rank_changes(
    feed: FeedDep,
    category: CategoryQuery,
    after_seq: AfterSeq = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS, description="At most (1–1,000).")] = 100,
) -> JSON:
    """A category's rank-change events after `after_seq`, in seq order (the last 1,000 are
    kept; `missed` says when some after `after_seq` are gone)."""
    check_category(category)
    found = await feed.after(category, after_seq, limit)
    events = [orjson.Fragment(raw) for _, raw in found.events]
    return JSON(
        {
            "category": category,
            "after_seq": after_seq,
            "last_seq": found.last_seq,
            "oldest_seq": found.oldest_seq,
            "missed": found.missed(after_seq),
            "next_after_seq": found.events[-1][0] if found.events else after_seq,
            "events": events,
        }
    )


def _cursor(last_event_id: str | None, after_seq: int | None) -> int | None:
    if last_event_id is not None and last_event_id.strip():
        text = last_event_id.strip()
        if not text.isascii() or not text.isdigit() or int(text) > MAX_SEQ:
            raise ApiError(
                400, "bad_request", f"Last-Event-ID must be a rank-change seq: {last_event_id!r}"
            )
        return int(text)
    return after_seq


@router.get(
    "/rank-changes/stream",
    responses={
        200: {
            "description": "`text/event-stream`: `rank-change` events (id = seq, data = the "
            "`obs.rank-changes.v1` event), `missed` and `reset` notices, heartbeats.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **schemas.responses(None, 400, 404),
    },
)
async def rank_change_stream(
    request: Request,
    view: ViewDep,
    hub: HubDep,
    options: OptionsDep,
    category: CategoryQuery,
    after_seq: Annotated[
        int | None,
        Query(ge=0, le=MAX_SEQ, description="Start after this seq (default: from now)."),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=32,
            description="Resume after this seq (sent by EventSource).",
        ),
    ] = None,
) -> StreamingResponse:
    """Server-Sent Events of one category's rank changes, resumable with `Last-Event-ID`."""
    check_category(category)
    cursor = _cursor(last_event_id, after_seq)
    client = client_of(request.scope)
    refused = hub.admit(client)
    if refused == "server":
        raise ApiError(503, "too_many_streams", "too many event streams open on this server")
    if refused == "client":
        raise ApiError(
            429,
            "too_many_streams",
            f"at most {hub.max_streams_per_client} event streams per client",
            {"Retry-After": "30"},
        )
    return StreamingResponse(
        _events(view, hub, options, category, cursor, client),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(
    view: LiveView,
    hub: StreamHub,
    options: ApiOptions,
    category: str,
    cursor: int | None,
    client: str,
) -> AsyncIterator[bytes]:
    ends_at = time.monotonic() + options.sse_max_seconds
    STREAMS.inc()
    try:
        async with hub.following(category, client):
            yield b"retry: %d\n\n" % options.sse_retry_ms
            while time.monotonic() < ends_at and not hub.stopping:
                try:
                    # the current generation's feed: a stream outlives a rebuild's switch
                    feed = (await view.readers()).feed
                    found = await feed.after(category, cursor or 0, options.sse_batch)
                except (RedisError, OSError) as exc:
                    log.warning("stream of %s: cannot read events: %s", category, exc)
                    yield b": waiting for redis\n\n"
                    if await _idle(hub, category, cursor or 0, options) is None:
                        return
                    continue
                if cursor is None:  # from now on
                    cursor = found.last_seq
                    continue
                if found.unknown_cursor(cursor):
                    notice: dict[str, int | None] = {
                        "last_event_id": cursor,
                        "last_seq": found.last_seq,
                    }
                    cursor = found.last_seq
                    yield sse_event(orjson.dumps(notice), event="reset", event_id=cursor)
                    continue
                if found.missed(cursor):
                    notice = {"after_seq": cursor, "oldest_seq": found.oldest_seq}
                    yield sse_event(orjson.dumps(notice), event="missed")
                for seq, raw in found.events:
                    yield sse_event(raw, event="rank-change", event_id=seq)
                    cursor = seq
                if found.events:
                    STREAM_EVENTS.labels(category).inc(len(found.events))
                if len(found.events) >= options.sse_batch:
                    continue  # catching up: read on at once
                idle = await _idle(hub, category, cursor, options)
                if idle is None:
                    return
                if not idle:
                    yield b": heartbeat\n\n"
    finally:
        STREAMS.dec()


async def _idle(hub: StreamHub, category: str, seq: int, options: ApiOptions) -> bool | None:
    """Wait for news: True on a new event, False after a heartbeat period, None: stopping."""
    try:
        return await hub.wait_after(category, seq, options.sse_heartbeat_seconds)
    except StreamsStopping:
        return None
