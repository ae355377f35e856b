"""JSON responses rendered with orjson (fast, and exact for the unrounded floats we serve), and
the headers of every HTML page."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class JSON(JSONResponse):
    """`application/json` rendered by orjson."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


# The pages load nothing from elsewhere; the policy makes the browser hold them to it.
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
# JSON, metrics and static files are data, never documents: nothing may run or be framed.
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

# Headers of every HTML page of ours; the security headers are added to every response by
# services.api.middleware.SecurityHeaders.
HTML_HEADERS = {"Cache-Control": "no-cache"}
