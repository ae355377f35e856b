"""The badge a territory shows on its own site (`/badges/{id}.svg`) and the snippet that shows
it (pure: figures in, SVG and HTML out).

The badge says the territory's rank in the latest published edition of its category
("3e des départements · juin 2026"), or its live national rank with "classement en direct"
when no edition is published or it is not ranked in the latest one. It is an accessible
image (`role="img"`, a `<title>` first) drawn with presentation attributes only (no `<style>`,
no script, no external resource): whatever policy the host page or our own headers set, it
renders the same. Its text is sized by estimated glyph widths and fitted with `textLength`, so
no font metric is needed.

Other sites show it with an `<img>` inside a link to the territory's page (our pages forbid
framing: no iframe).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape
from typing import Final

from services.api.feeds import SITE_NAME, category_noun
from services.api.formatting import fr_month, fr_ordinal

HEIGHT: Final = 28
FONT_SIZE: Final = 12
PADDING: Final = 8
LABEL: Final = "Observatoire Instagram"
LIVE: Final = "classement en direct"
NOT_RANKED: Final = "non classé"
LABEL_FILL: Final = "#0d2b4e"  # the site's header
VALUE_FILL: Final = "#0b5cad"  # the site's accent: white text on it contrasts 6.6:1
TEXT_FILL: Final = "#ffffff"
FONT: Final = "Verdana, 'DejaVu Sans', Arial, sans-serif"
# Estimated advance widths at FONT_SIZE (px): `textLength` fits the text to its box exactly.
_NARROW: Final = frozenset("iljtfr.,:;'’·|!() ")
_WIDE: Final = frozenset("mwMW")


@dataclass(frozen=True, slots=True)
class BadgeFacts:
    """What the badge tells: a rank (None: not ranked), the category, and which ranking."""

    territory_name: str
    category: str
    rank: int | None
    edition: str | None  # YYYY-MM of the latest published edition it ranks in; None: live


def badge_facts(
    territory_name: str,
    category: str,
    *,
    edition: str | None,
    edition_rank: int | None,
    live_rank: int | None,
) -> BadgeFacts:
    """The latest published edition's rank when the territory has one there, else its live
    national rank (None when not ranked either)."""
    if edition is not None and edition_rank is not None:
        return BadgeFacts(territory_name, category, edition_rank, edition)
    return BadgeFacts(territory_name, category, live_rank, None)


def badge_text(facts: BadgeFacts) -> tuple[str, str]:
    """(what, when): (`3e des départements`, `juin 2026` or `classement en direct`)."""
    when = LIVE if facts.edition is None else fr_month(facts.edition)
    if facts.rank is None:
        return NOT_RANKED, when
    return f"{fr_ordinal(facts.rank)} {category_noun(facts.category)}", when


def spoken(facts: BadgeFacts) -> str:
    """The badge's accessible name: the territory, its rank, which ranking, and who says so."""
    what, when = badge_text(facts)
    return f"{facts.territory_name} : {what} · {when} ({SITE_NAME})"


def _width(text: str) -> float:
    return sum(
        3.6 if c in _NARROW else 10.4 if c in _WIDE else 8.0 if c.isupper() else 6.9 for c in text
    )


def _rank_markup(what: str) -> str:
    """`3e des …` with the ordinal's letters raised (`3ᵉ`); the text content stays `3e`."""
    match = re.match(r"(\d+)(er|e)( .*)", what)
    if match is None:
        return escape(what)
    number, suffix, rest = match.groups()
    return (
        f'{number}<tspan dy="-4" font-size="{FONT_SIZE - 3}">{suffix}</tspan>'
        f'<tspan dy="4">{escape(rest)}</tspan>'
    )


def badge_svg(facts: BadgeFacts) -> bytes:
    """The badge, an SVG image."""
    what, when = badge_text(facts)
    value = f"{what} · {when}"
    label_text = round(_width(LABEL), 1)
    value_text = round(_width(value), 1)
    label_box = round(label_text + 2 * PADDING)
    value_box = round(value_text + 2 * PADDING)
    width = label_box + value_box
    baseline = HEIGHT // 2 + FONT_SIZE // 2 - 1
    title = escape(spoken(facts))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" '
        f'viewBox="0 0 {width} {HEIGHT}" role="img" aria-labelledby="badge-title">'
        f'<title id="badge-title">{title}</title>'
        f'<clipPath id="badge-round"><rect width="{width}" height="{HEIGHT}" rx="4"/></clipPath>'
        f'<g clip-path="url(#badge-round)">'
        f'<rect width="{label_box}" height="{HEIGHT}" fill="{LABEL_FILL}"/>'
        f'<rect x="{label_box}" width="{value_box}" height="{HEIGHT}" fill="{VALUE_FILL}"/>'
        f"</g>"
        f'<g fill="{TEXT_FILL}" font-family="{FONT}" font-size="{FONT_SIZE}">'
        f'<text x="{PADDING}" y="{baseline}" textLength="{label_text}" '
        f'lengthAdjust="spacingAndGlyphs">{escape(LABEL)}</text>'
        f'<text x="{label_box + PADDING}" y="{baseline}" textLength="{value_text}" '
        f'lengthAdjust="spacingAndGlyphs">{_rank_markup(what)} · {escape(when)}</text>'
        f"</g></svg>"
    ).encode()


@dataclass(frozen=True, slots=True)
class Embed:
    """What the territory page offers to copy: the badge's address and the HTML snippet."""

    badge_path: str
    alt: str
    snippet: str


def embed(base_url: str, territory_id: str, territory_name: str) -> Embed:
    """The snippet another site pastes: our badge inside a link to the territory's page,
    absolute addresses from `base_url` (the site's root as the request reached it). Its `alt`
    names no rank: the pasted snippet stays while the rank changes."""
    base = base_url.rstrip("/")
    alt = f"{territory_name} au classement de l’{SITE_NAME}"
    snippet = (
        f'<a href="{escape(base)}/territoires/{escape(territory_id)}">'
        f'<img src="{escape(base)}/badges/{escape(territory_id)}.svg" '
        f'alt="{escape(alt)}" height="{HEIGHT}"></a>'
    )
    return Embed(f"/badges/{territory_id}.svg", alt, snippet)
