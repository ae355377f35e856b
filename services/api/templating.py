"""The Jinja2 environment of the public pages: templates shipped in the package, French filters."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

from services.api import formatting
from services.common.contracts import CATEGORIES, CATEGORIES_BY_ID
from services.common.territories import CREDIT


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The pages' environment (autoescaped; an undefined variable is an error, not a blank)."""
    env = Environment(
        loader=PackageLoader("services.api", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        fr_int=formatting.fr_int,
        fr_decimal=formatting.fr_decimal,
        fr_percent=formatting.fr_percent,
        fr_month=formatting.fr_month,
        fr_datetime=formatting.fr_datetime,
        fr_date=formatting.fr_date,
        fr_day=formatting.fr_day,
        fr_ordinal=formatting.fr_ordinal,
    )
    env.globals.update(
        categories=CATEGORIES,
        categories_by_id=CATEGORIES_BY_ID,
        movement=formatting.fr_movement,
        credit=CREDIT,
    )
    return env


def render(
    template: str, context: dict[str, Any], status_code: int = 200, headers: Any = None
) -> HTMLResponse:
    """An HTML response of a template."""
    html = environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=headers)
