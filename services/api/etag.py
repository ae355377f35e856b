"""Strong ETags and conditional answers (304 when the client already has the body)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import Request, Response


def etag_of(raw: bytes) -> str:
    """A strong ETag of a body."""
    return '"' + hashlib.blake2b(raw, digest_size=12).hexdigest() + '"'


def etagged(request: Request, body: dict[str, Any], cache_control: str = "no-cache") -> Response:
    """Answer with a strong ETag of the body; 304 when the client already has it."""
    raw = orjson.dumps(body)
    return etagged_bytes(request, raw, etag_of(raw), cache_control)


def etagged_bytes(
    request: Request,
    raw: bytes,
    etag: str,
    cache_control: str = "no-cache",
    *,
    media_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A body already rendered (JSON unless `media_type` says otherwise), with its ETag and
    any further `headers`; 304 when the client already has it."""
    answer = {"ETag": etag, "Cache-Control": cache_control, **(headers or {})}
    if etag in _if_none_match(request):
        return Response(status_code=304, headers=answer)
    return Response(raw, media_type=media_type, headers=answer)


def _if_none_match(request: Request) -> list[str]:
    header = request.headers.get("if-none-match")
    if not header:
        return []
    if header.strip() == "*":
        return ["*"]
    return [tag.strip().removeprefix("W/") for tag in header.split(",")]
