"""docs/methodology.md as the `/methodologie` page shows it: rendered once per process from the
document itself, with a table of contents of its headings.

One source: `services/api/methodology.md` is a symbolic link to docs/methodology.md, shipped
as package data (pyproject.toml), so the installed package carries the document's text and a
checkout reads the file the repository holds. Markdown is rendered by markdown-it-py
(CommonMark, plus GitHub's tables) with raw HTML off: a `<tag>` in the document is shown as
text, never injected into the page.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Final, cast

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token

DOC_PACKAGE: Final = "services.api"
DOC_RESOURCE: Final = "methodology.md"
# Ids of the page around the document, which its headings' anchors must not take.
RESERVED_IDS: Final = frozenset(
    {
        "contenu",
        "recherche-q",
        "recherche-suggestions",
        "titre",
        "sommaire",
        "calculateur",
        "calculateur-titre",
        "calc-erreurs",
        "resultat",
        "resultat-titre",
    }
)


@dataclass(frozen=True, slots=True)
class Heading:
    """A heading of the document: its level (2 or 3), its text as HTML, its anchor."""

    level: int
    html: str
    anchor: str
    children: tuple[Heading, ...] = ()


@dataclass(frozen=True, slots=True)
class RenderedDocument:
    """The document's title (its first-level heading, as text), its body as HTML and the
    table of contents (second-level headings, each with its third-level ones)."""

    title: str
    body: str
    contents: tuple[Heading, ...]


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable("table")

    def table_open(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
        # Wide tables scroll inside their wrapper on a phone, not the page; the wrapper takes
        # the focus so that a keyboard can scroll it (the tables hold no link).
        label = escapeHtml(f"Tableau : {tokens[idx].meta.get('section', 'méthodologie')}")
        wrapper = f'<div class="table-wrap" role="region" aria-label="{label}" tabindex="0">\n'
        return wrapper + self.renderToken(tokens, idx, options, env)

    def table_close(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
        return self.renderToken(tokens, idx, options, env) + "</div>\n"

    md.add_render_rule("table_open", table_open)
    md.add_render_rule("table_close", table_close)
    rules = cast(RendererHTML, md.renderer).rules
    for rule in ("fence", "code_block"):
        md.add_render_rule(rule, _focusable(rules[rule]))
    return md


def _focusable(render: Any) -> Any:
    """A code block's renderer whose `<pre>` takes the focus: a long line scrolls sideways on
    a phone, and a keyboard must be able to scroll it."""

    def rendered(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
        html: str = render(tokens, idx, options, env)
        return html.replace("<pre>", '<pre tabindex="0">', 1)

    return rendered


def slug(text: str) -> str:
    """An anchor from a heading's text: `5. Exemple détaillé` → `exemple-detaille`."""
    plain = "".join(
        c for c in unicodedata.normalize("NFD", text.casefold()) if not unicodedata.combining(c)
    )
    words = re.findall(r"[a-z0-9]+", plain)
    if words and words[0].isdigit():
        words = words[1:]  # the section number: `#objet`, not `#1-objet`
    return "-".join(words) or "section"


def _plain(inline: Token) -> str:
    """A heading's text without its markup (code spans keep their content)."""
    return "".join(child.content for child in inline.children or ())


def render_methodology(text: str) -> RenderedDocument:
    """Render the document: its first `#` heading becomes the title; every `##` and `###`
    heading gets a unique anchor and enters the table of contents."""
    md = _markdown()
    tokens = md.parse(text)
    title = ""
    if len(tokens) >= 3 and tokens[0].type == "heading_open" and tokens[0].tag == "h1":
        title = _plain(tokens[1])
        tokens = tokens[3:]
    taken = set(RESERVED_IDS)
    sections: list[tuple[Heading, list[Heading]]] = []
    section = title
    for index, token in enumerate(tokens):
        if token.type == "table_open":
            token.meta["section"] = section  # names the table's scrolling region
        if token.type != "heading_open" or token.tag not in ("h2", "h3"):
            continue
        inline = tokens[index + 1]
        section = _plain(inline)
        anchor = base = slug(section)
        suffix = 2
        while anchor in taken:
            anchor, suffix = f"{base}-{suffix}", suffix + 1
        taken.add(anchor)
        token.attrSet("id", anchor)
        heading = Heading(
            int(token.tag[1]),
            cast(RendererHTML, md.renderer).renderInline(inline.children or [], md.options, {}),
            anchor,
        )
        if heading.level == 2 or not sections:
            sections.append((heading, []))
        else:
            sections[-1][1].append(heading)
    contents = tuple(
        Heading(h.level, h.html, h.anchor, tuple(children)) for h, children in sections
    )
    return RenderedDocument(title, md.renderer.render(tokens, md.options, {}), contents)


def methodology_text() -> str:
    """The text of docs/methodology.md as shipped in the package."""
    return resources.files(DOC_PACKAGE).joinpath(DOC_RESOURCE).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def methodology_document() -> RenderedDocument:
    """The rendered document, once per process (the file does not change while it runs)."""
    return render_methodology(methodology_text())
