"""docs/methodology.md as /methodologie renders it (services/api/methodology_doc.py): one
source, every heading with an anchor in the contents, tables rendered, raw HTML shown as text."""

from __future__ import annotations

import re

from services.api.methodology_doc import (
    RESERVED_IDS,
    methodology_document,
    methodology_text,
    render_methodology,
    slug,
)
from tests.conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "methodology.md"


def test_the_package_ships_the_document_itself():
    assert methodology_text() == DOC.read_text(encoding="utf-8")


def test_every_heading_of_the_document_is_rendered_and_listed():
    document = methodology_document()
    headings = re.findall(r"^(#{1,3}) (.+)$", DOC.read_text(encoding="utf-8"), re.M)
    assert headings[0] == ("#", document.title)
    listed = [h.html for h in document.contents] + [
        c.html for h in document.contents for c in h.children
    ]
    for marks, text in headings[1:]:
        level = len(marks)
        assert re.search(rf'<h{level} id="[a-z0-9-]+">{re.escape(text)}</h{level}>', document.body)
        assert text in listed
    anchors = re.findall(r'<h[23] id="([^"]+)"', document.body)
    assert len(anchors) == len(set(anchors)) == len(headings) - 1
    assert not set(anchors) & RESERVED_IDS


def test_the_documents_tables_and_code_scroll_inside_focusable_wrappers():
    body = methodology_document().body
    wrappers = re.findall(
        r'<div class="table-wrap" role="region" aria-label="Tableau : ([^"]+)" tabindex="0">\n'
        r"<table>",
        body,
    )
    assert wrappers == ["3. Les cinq indicateurs", "5. Exemple détaillé"]
    assert body.count("<table>") == 2
    # Code blocks scroll sideways on a phone: a keyboard can focus them.
    assert body.count('<pre tabindex="0">') == body.count("<pre") == 2
    assert "<th>indicateur</th>" in body and "<td>engagement</td>" in body


def test_raw_html_in_the_document_is_shown_as_text():
    rendered = render_methodology(
        "# T\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1))\n\n## A <b>b</b>\n"
    )
    assert "<script>" not in rendered.body and "&lt;script&gt;" in rendered.body
    assert 'href="javascript:' not in rendered.body
    assert "<b>" not in rendered.body


def test_the_contents_nest_third_level_headings_and_anchors_are_unique():
    rendered = render_methodology("# Titre\n\n## 1. Un\n\n### Détail\n\n## 2. Un\n\n### Détail\n")
    assert rendered.title == "Titre"
    assert [(h.anchor, [c.anchor for c in h.children]) for h in rendered.contents] == [
        ("un", ["detail"]),
        ("un-2", ["detail-2"]),
    ]


def test_slugs_drop_accents_numbers_and_punctuation():
    assert slug("5. Exemple détaillé") == "exemple-detaille"
    assert slug("7. Éligibilité : qui est classé") == "eligibilite-qui-est-classe"
    assert slug("8. Liens morts : comptes introuvables via l'API") == (
        "liens-morts-comptes-introuvables-via-l-api"
    )
    assert slug("!!!") == "section"
