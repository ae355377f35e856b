"""`/docs`: Swagger UI served by the API itself, the way FastAPI documents self-hosting.

FastAPI's default page loads Swagger UI's script and stylesheet from a CDN in the reader's
browser; this one takes them from `services/api/static/swagger/` (swagger-ui-dist 5.35.0,
copied unchanged, see CREDITS.txt there), so the docs, like the public pages, load nothing
from elsewhere. ReDoc (`/redoc`) is not served.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from typing import Final

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse

from services.api.responses import HTML_HEADERS

router = APIRouter(include_in_schema=False)

SWAGGER_ASSETS: Final = "/static/swagger"
# The one inline script of get_swagger_ui_html's page (`SwaggerUIBundle({...})`).
_INLINE_SCRIPT: Final = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _csp(inline_script: str) -> str:
    """The public pages' policy, plus the hash of this page's inline script.

    The pages' `default-src 'self'` forbids inline scripts, and Swagger UI starts from one
    that get_swagger_ui_html writes into the page. Rather than `'unsafe-inline'`, the policy
    of this response alone allows that exact script by its sha256 (the page is the same on
    every request, so the hash is computed once). Swagger UI's validator badge, an image from
    validator.swagger.io, is switched off (`validatorUrl: null`): nothing is fetched from
    elsewhere, and `img-src` stays `'self' data:` (the stylesheet's icons are data: URLs)."""
    digest = base64.b64encode(hashlib.sha256(inline_script.encode()).digest()).decode()
    return (
        f"default-src 'self'; script-src 'self' 'sha256-{digest}'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


@lru_cache(maxsize=8)
def swagger_page(title: str, openapi_url: str, root_path: str) -> tuple[bytes, str]:
    """The page's HTML and its Content-Security-Policy (same inputs, same page)."""
    assets = f"{root_path}{SWAGGER_ASSETS}"
    page = get_swagger_ui_html(
        openapi_url=f"{root_path}{openapi_url}",
        title=f"{title} - Swagger UI",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon-32x32.png",
        swagger_ui_parameters={"validatorUrl": None},
    )
    body = bytes(page.body)
    scripts = _INLINE_SCRIPT.findall(body.decode())
    if len(scripts) != 1:  # a FastAPI upgrade changed the page: the policy would not fit it
        raise RuntimeError(f"expected one inline script in the Swagger UI page, got {scripts}")
    return body, _csp(scripts[0])


@router.get("/docs", response_class=HTMLResponse)
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI for /openapi.json, with assets from /static/swagger/."""
    app = request.app
    root_path = request.scope.get("root_path", "").rstrip("/")
    body, policy = swagger_page(app.title, app.openapi_url, root_path)
    return HTMLResponse(body, headers=HTML_HEADERS | {"Content-Security-Policy": policy})
