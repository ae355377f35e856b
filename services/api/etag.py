"""Strong ETags and conditional answers (304 when the client already has the body)."""

from __future__ import annotations

import hashlib
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
    request: Request, raw: bytes, etag: str, cache_control: str = "no-cache"
) -> Response:
    """A JSON body already rendered, with its ETag; 304 when the client already has it."""
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if etag in _if_none_match(request):
        return Response(status_code=304, headers=headers)
    return Response(raw, media_type="application/json", headers=headers)


def _if_none_match(request: Request) -> list[str]:
    header = request.headers.get("if-none-match")
    if not header:
        return []
    if header.strip() == "*":
        return ["*"]
    return [tag.strip().removeprefix("W/") for tag in header.split(",")]
