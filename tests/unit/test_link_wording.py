"""What the pages say about an account the Graph API could not see: code 110/2207013
(`not_found`) answers alike for a deleted or renamed account and for an existing one that is
private or personal, so no page may call the link broken or the account gone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from services.api.badge import embed
from services.api.templating import environment
from services.common.contracts import CATEGORIES_BY_ID

TEMPLATES = Path(__file__).resolve().parents[2] / "services" / "api" / "templates"
FULL_DEAD = "Compte introuvable via l’API Instagram : supprimé, renommé, privé ou non professionnel"


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def badge(link_status: str | None) -> str:
    macros: Any = environment().get_template("macros.html").module
    item = {"handle": "latenareze", "simulated": False, "link_status": link_status}
    return str(macros.handle(item))


def territory_page(link_status: str | None, handle: str | None = "latenareze") -> str:
    context = {
        "t": {
            "id": "epci-243200417",
            "name": "La Ténarèze",
            "handle": handle,
            "simulated": False,
            "link_status": link_status,
            "status": "unranked",
            "current": None,
            "history": [],
        },
        "category": CATEGORIES_BY_ID["communautes-communes"],
        "lines": [],
        "weight_total": 15,
        "charts": {},
        "around": [],
        "levers": [],
        "gains": [],
        "records": [],
        "has_history": False,
        "daily": {"points": []},
        "daily_charts": None,
        "embed": embed("http://testserver/", "epci-243200417", "La Ténarèze"),
        "page_title": "La Ténarèze",
    }
    return environment().get_template("territoire.html").render(**context)


def test_no_template_calls_a_link_broken():
    for path in TEMPLATES.glob("*.html"):
        assert "inopérant" not in path.read_text(encoding="utf-8").lower(), path.name


def test_dead_badge_is_short_and_carries_the_full_meaning_for_screen_readers():
    html = badge("dead")
    visible = re.sub(r'<span class="sr">.*?</span>', "", html)
    assert "Compte introuvable via l’API Instagram" in text_of(visible)
    assert "supprimé" not in visible
    assert f"{FULL_DEAD} (deux relevés de suite)" in text_of(html)
    assert "title=" not in html.split('class="badge dead"', 1)[1]


def test_suspect_badge_says_one_snapshot_could_not_see_the_account():
    html = badge("suspect")
    text = text_of(html)
    assert "Compte introuvable au dernier relevé via l’API Instagram" in text
    assert "supprimé, renommé, privé ou non professionnel ; à confirmer au prochain relevé" in text
    assert "lien à vérifier" not in text


@pytest.mark.parametrize("link_status", ["ok", None])
def test_a_seen_account_has_no_badge(link_status):
    assert "badge" not in badge(link_status)


def test_legend_explains_only_the_badges_the_list_shows():
    macros: Any = environment().get_template("macros.html").module
    dead = text_of(str(macros.link_legend(["ok", "dead"])))
    assert f"{FULL_DEAD}." in dead
    assert "L’API Instagram n’a pas vu le compte lors de deux relevés de suite" in dead
    assert "ne voit que les comptes publics et professionnels (Entreprise ou Créateur)" in dead
    assert "dernier relevé réussi" in dead and "Compte introuvable au dernier relevé" not in dead
    suspect = text_of(str(macros.link_legend(["suspect", None])))
    assert "Compte introuvable au dernier relevé : l’API Instagram n’a pas vu le compte" in suspect
    assert "le prochain relevé le confirmera ou non" in suspect and FULL_DEAD not in suspect
    assert text_of(str(macros.link_legend(["ok", None]))) == ""


def test_suspect_territory_page_says_one_observation_and_what_to_check():
    text = text_of(territory_page("suspect"))
    assert "Compte Instagram à vérifier" in text
    assert (
        "Compte introuvable au dernier relevé via l’API Instagram : supprimé, renommé, privé ou "
        "non professionnel. Une seule observation pour l’instant" in text
    )
    assert "le compte existe toujours sous le nom @latenareze (il n’a pas été renommé)" in text
    assert "il est public" in text
    assert "c’est un compte professionnel (Entreprise ou Créateur)" in text
    assert "Si le compte a changé de nom, contactez l’observatoire" in text
    assert "reste classé" not in text  # an unranked territory is not said to stay ranked


@pytest.mark.parametrize(("link_status", "handle"), [("ok", "latenareze"), ("dead", None)])
def test_territory_page_without_an_unseen_account_has_no_checklist(link_status, handle):
    text = text_of(territory_page(link_status, handle))
    assert "Ce que le territoire peut vérifier" not in text
