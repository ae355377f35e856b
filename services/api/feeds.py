"""Atom 1.0 feeds in French (pure: typed items in, XML out; no I/O).

A feed is a list of typed items, one small dataclass per kind of news, each writing itself as
an entry in French (`FeedItem.entry`):

- a category's feed (`/flux/{category}.atom`): editions published (`EditionPublished`), changes
  of leader (`LeaderChange`) and entries into or exits from the top 10 (`TopTenMove`), the
  last two derived from the category's rank-change events (`rank_change_items`);
- a territory's feed (`/flux/territoires/{id}.atom`): its rank in each published edition
  (`EditionResult`), its rank that day moving by 3 places or more between two consecutive
  daily points (`DailyRankMove`) and its account's transitions to and from `dead`
  (`LinkChange`).

`atom_feed` takes any mix of items: it sorts them newest first (by `updated`, the time of what
they tell: an event's `at`, an edition's `published_at`, a transition's `at`), keeps
MAX_ENTRIES and renders the XML. A new kind of news is one more dataclass with an `entry`
method, and one more list of items passed in.

Entry ids are `urn:uuid:` names (UUID version 5) of what the entry tells, built from stable
facts only (category and `seq`, category and edition, territory and edition, territory and
day, account and transition time): the same news keeps its id whoever serves it and whatever
the host name, so a feed reader never shows it twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol
from xml.etree import ElementTree as ET

from services.api.formatting import (
    fr_date,
    fr_day,
    fr_int,
    fr_month,
    fr_movement,
    fr_ordinal,
)
from services.common.clock import to_epoch
from services.common.contracts import CATEGORIES_BY_ID
from services.common.dead_links import LinkTransition
from services.common.history import RankedPoint, rank_changes

MAX_ENTRIES: Final = 50  # entries per feed, the newest
TOP: Final = 10  # entries into and exits from the top 10 are news
ATOM_NS: Final = "http://www.w3.org/2005/Atom"
ATOM_MEDIA_TYPE: Final = "application/atom+xml; charset=utf-8"
# The namespace of every id of our feeds (fixed forever: ids derive from it).
FEED_NAMESPACE: Final = uuid.UUID("5b1f4c2e-8e0a-5d7c-9a41-0b2d6c7e9f13")
SITE_NAME: Final = "Observatoire des territoires sur Instagram"
NO_DATE: Final = "1970-01-01T00:00:00Z"  # `updated` of a feed with no entry and no data yet

Names = Callable[[str], str]  # territory id -> its name


def feed_id(name: str) -> str:
    """The stable id (`urn:uuid:`, version 5) of a feed or entry named `name`."""
    return f"urn:uuid:{uuid.uuid5(FEED_NAMESPACE, name)}"


def category_noun(category: str) -> str:
    """`des départements`: the category's label as the rest of a sentence takes it."""
    return "des " + CATEGORIES_BY_ID[category].label.lower()


def _rang(rank: int) -> str:
    """`1er rang`, `7e rang` (rang is masculine: `1er` agrees)."""
    return f"{fr_ordinal(rank)} rang"


@dataclass(frozen=True, slots=True)
class Entry:
    """One Atom entry: what a feed reader shows."""

    id: str
    title: str
    summary: str
    updated: str  # RFC 3339 UTC
    path: str  # the page it links to, from the site's root
    term: str  # its Atom category (kind of news)
    label: str  # the category's label, in French


class FeedItem(Protocol):
    """A piece of news of some kind, able to write itself as an entry."""

    def entry(self, name: Names) -> Entry: ...


# --- a category's news -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EditionPublished:
    """A monthly edition published, with its leader in the category."""

    category: str
    edition: str  # YYYY-MM
    published_at: str
    ranked: int
    leader: str | None

    def entry(self, name: Names) -> Entry:
        month, noun = fr_month(self.edition), category_noun(self.category)
        title = f"Palmarès de {month} {noun} publié"
        if self.leader is not None:
            title = f"Palmarès de {month} {noun} : {name(self.leader)} en tête"
        plural = "s" if self.ranked > 1 else ""
        summary = (
            f"Le palmarès mensuel de {month} {noun} est publié le "
            f"{fr_date(self.published_at)} : {fr_int(self.ranked)} territoire{plural} "
            f"classé{plural}"
        )
        summary += f", {name(self.leader)} en tête." if self.leader is not None else "."
        return Entry(
            id=feed_id(f"flux/{self.category}/palmares/{self.edition}"),
            title=title,
            summary=summary,
            updated=self.published_at,
            path=f"/classements/{self.category}?edition={self.edition}",
            term="palmares",
            label="Palmarès publié",
        )


@dataclass(frozen=True, slots=True)
class LeaderChange:
    """A new leader of a category's live ranking (a rank-change event's `leader`)."""

    category: str
    seq: int
    at: str
    leader: str
    previous_leader: str | None
    previous_rank: int | None  # where the former leader is now (None: left the list)

    def entry(self, name: Names) -> Entry:
        noun = category_noun(self.category)
        leader = name(self.leader)
        summary = f"{leader} passe en tête du classement en direct {noun}"
        if self.previous_leader is None:
            summary += "."
        elif self.previous_rank is None:
            summary += f" ; {name(self.previous_leader)}, en tête jusque-là, quitte la liste."
        else:
            summary += (
                f", devant {name(self.previous_leader)}, en tête jusque-là et désormais au "
                f"{_rang(self.previous_rank)}."
            )
        return Entry(
            id=feed_id(f"flux/{self.category}/rang/{self.seq}/tete"),
            title=f"{leader} prend la tête {noun}",
            summary=summary,
            updated=self.at,
            path=f"/territoires/{self.leader}",
            term="tete",
            label="Changement de tête",
        )


@dataclass(frozen=True, slots=True)
class TopTenMove:
    """A territory entering or leaving the top 10 of a category's live ranking."""

    category: str
    seq: int
    at: str
    territory_id: str
    entered: bool
    from_rank: int | None  # None: it was not in the published list
    to_rank: int | None  # None: it left the published list

    def entry(self, name: Names) -> Entry:
        noun, who = category_noun(self.category), name(self.territory_id)
        if self.entered:
            assert self.to_rank is not None
            title = f"{who} entre dans le top {TOP} {noun} ({fr_ordinal(self.to_rank)})"
            if self.from_rank is None:
                summary = (
                    f"{who} fait son entrée dans le classement publié {noun}, directement au "
                    f"{_rang(self.to_rank)}."
                )
            else:
                summary = (
                    f"{who} passe du {fr_ordinal(self.from_rank)} au {_rang(self.to_rank)} "
                    f"du classement en direct {noun}."
                )
        else:
            assert self.from_rank is not None
            title = f"{who} sort du top {TOP} {noun}"
            if self.to_rank is None:
                summary = (
                    f"{who} quitte le classement publié {noun} (auparavant "
                    f"{fr_ordinal(self.from_rank)})."
                )
            else:
                title += f" ({fr_ordinal(self.to_rank)})"
                summary = (
                    f"{who} passe du {fr_ordinal(self.from_rank)} au {_rang(self.to_rank)} "
                    f"du classement en direct {noun}."
                )
        way = "entree" if self.entered else "sortie"
        return Entry(
            id=feed_id(f"flux/{self.category}/rang/{self.seq}/top{TOP}/{way}/{self.territory_id}"),
            title=title,
            summary=summary,
            updated=self.at,
            path=f"/territoires/{self.territory_id}",
            term=f"top{TOP}",
            label=f"Top {TOP}",
        )


def rank_change_items(event: Mapping[str, Any]) -> list[FeedItem]:
    """The news of one `obs.rank-changes.v1` event: a change of leader, then the entries into
    the top 10 (by new rank), then the exits (by former rank)."""
    category, seq, at = event["category"], int(event["seq"]), event["at"]
    changes = event["changes"]
    items: list[FeedItem] = []
    leader, previous = event["leader"], event["previous_leader"]
    if leader is not None and leader != previous:
        now = {change["id"]: change["to_rank"] for change in changes}
        previous_rank = None if previous is None else now.get(previous)
        items.append(LeaderChange(category, seq, at, leader, previous, previous_rank))

    def within(rank: int | None) -> bool:
        return rank is not None and rank <= TOP

    entered = [c for c in changes if within(c["to_rank"]) and not within(c["from_rank"])]
    left = [c for c in changes if within(c["from_rank"]) and not within(c["to_rank"])]
    for change in sorted(entered, key=lambda c: c["to_rank"]):
        items.append(
            TopTenMove(
                category, seq, at, change["id"], True, change["from_rank"], change["to_rank"]
            )
        )
    for change in sorted(left, key=lambda c: c["from_rank"]):
        items.append(
            TopTenMove(
                category, seq, at, change["id"], False, change["from_rank"], change["to_rank"]
            )
        )
    return items


# --- a territory's news ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EditionResult:
    """A territory's rank in a published edition of its category."""

    territory_id: str
    category: str
    edition: str
    published_at: str
    rank: int
    total: int
    movement: int | None  # places gained since the previous published edition
    streak: int | None  # consecutive editions at #1

    def entry(self, name: Names) -> Entry:
        month, noun, who = (
            fr_month(self.edition),
            category_noun(self.category),
            name(self.territory_id),
        )
        summary = (
            f"Au palmarès de {month} {noun}, {who} est au {_rang(self.rank)} sur "
            f"{fr_int(self.total)}. Depuis le palmarès précédent : {fr_movement(self.movement)[2]}."
        )
        if self.streak and self.streak > 1:
            summary += f" En tête pour le {fr_ordinal(self.streak)} mois de suite."
        return Entry(
            id=feed_id(f"flux/territoires/{self.territory_id}/palmares/{self.edition}"),
            title=f"Palmarès de {month} : {who}, {fr_ordinal(self.rank)} {noun}",
            summary=summary,
            updated=self.published_at,
            path=f"/classements/{self.category}?edition={self.edition}",
            term="palmares",
            label="Résultat au palmarès",
        )


@dataclass(frozen=True, slots=True)
class LinkChange:
    """The territory's account judged dead (two consecutive `not_found`), or seen again."""

    territory_id: str
    platform: str
    handle: str
    status: Literal["dead", "ok"]
    since: str
    at: str

    def entry(self, name: Names) -> Entry:
        who, account = name(self.territory_id), f"@{self.handle}"
        if self.status == "dead":
            title = f"Compte Instagram {account} introuvable"
            summary = (
                f"{who} : depuis le {fr_date(self.since)}, l’API Instagram ne voit plus le "
                f"compte {account} (deux relevés consécutifs, le dernier le "
                f"{fr_date(self.at)}) : supprimé, renommé, privé ou non professionnel. Cela ne "
                "veut pas forcément dire que le compte n’existe plus."
            )
        else:
            title = f"Compte Instagram {account} de nouveau visible"
            summary = (
                f"{who} : au relevé du {fr_date(self.at)}, l’API Instagram voit de nouveau "
                f"le compte {account}."
            )
        return Entry(
            id=feed_id(
                f"flux/territoires/{self.territory_id}/lien/{self.platform}:{self.handle}/"
                f"{self.status}/{self.at}"
            ),
            title=title,
            summary=summary,
            updated=self.at,
            path=f"/territoires/{self.territory_id}",
            term="lien",
            label="Lien du compte",
        )


@dataclass(frozen=True, slots=True)
class DailyRankMove:
    """A territory's rank that day moved by 3 places or more since its previous daily point
    (services/common/history.py `rank_changes`)."""

    territory_id: str
    category: str
    before_date: str  # YYYY-MM-DD
    before_rank: int
    date: str
    rank: int
    ranked: int
    observed_at: str

    def entry(self, name: Names) -> Entry:
        who, noun = name(self.territory_id), category_noun(self.category)
        gained = self.before_rank - self.rank
        verb = "gagne" if gained > 0 else "perd"
        places = abs(gained)
        title = (
            f"{who} {verb} {places} places : {fr_ordinal(self.rank)} {noun} le {fr_day(self.date)}"
        )
        summary = (
            f"Le {fr_day(self.date)}, {who} est au {_rang(self.rank)} sur {fr_int(self.ranked)} "
            f"{CATEGORIES_BY_ID[self.category].label.lower()} relevés ce jour-là, contre le "
            f"{_rang(self.before_rank)} le {fr_day(self.before_date)}."
        )
        return Entry(
            id=feed_id(f"flux/territoires/{self.territory_id}/jour/{self.date}"),
            title=title,
            summary=summary,
            updated=self.observed_at,
            path=f"/territoires/{self.territory_id}#quotidien",
            term="rang-du-jour",
            label="Rang du jour",
        )


def daily_rank_moves(
    territory_id: str, category: str, points: Sequence[RankedPoint]
) -> list[FeedItem]:
    """Each move of 3 places or more between two consecutive daily points, as news."""
    return [
        DailyRankMove(
            territory_id,
            category,
            before.shown.point.date.isoformat(),
            before.rank,
            after.shown.point.date.isoformat(),
            after.rank,
            after.ranked or 0,
            after.observed_at,
        )
        for before, after in rank_changes(points)
        if before.rank is not None and after.rank is not None
    ]


def edition_results(
    territory_id: str, category: str, history: Iterable[Mapping[str, Any]]
) -> list[FeedItem]:
    """The territory's results in the published editions of its history (the territory
    detail's `history`, oldest first) where it is ranked, latest first (editions published
    together keep that order in the feed)."""
    return [
        EditionResult(
            territory_id,
            category,
            point["edition"],
            point["published_at"],
            point["rank"],
            point["total"],
            point["movement"],
            point["streak"],
        )
        for point in reversed(list(history))
        if point["rank"] is not None
    ]


def link_changes(
    territory_id: str, platform: str, handle: str, transitions: Iterable[LinkTransition]
) -> list[FeedItem]:
    """The transitions kept for the territory's account, as news."""
    return [
        LinkChange(territory_id, platform, handle, t.status, t.since, t.at) for t in transitions
    ]


# --- the feed --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedHead:
    """What a feed says of itself."""

    name: str  # the feed's id is made from it (`feed_id`)
    title: str
    subtitle: str
    self_path: str  # the feed's own address, from the site's root
    page_path: str  # the page it follows
    updated: str  # when it has no entry (the data's time), else its newest entry's


def newest_first(entries: Iterable[Entry]) -> list[Entry]:
    """The MAX_ENTRIES newest entries, newest first; equal times keep the order given."""
    return sorted(entries, key=lambda e: to_epoch(e.updated), reverse=True)[:MAX_ENTRIES]


def atom_feed(head: FeedHead, items: Iterable[FeedItem], name: Names, base_url: str) -> bytes:
    """The feed as Atom 1.0 XML in French (`xml:lang="fr"`), links absolute from
    `base_url` (the site's root, as the request reached it)."""
    base = base_url.rstrip("/")
    entries = newest_first(item.entry(name) for item in items)

    def add(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> None:
        element = ET.SubElement(parent, tag, attributes)
        element.text = text

    # Atom is the default namespace, declared on the root (ElementTree's `default_namespace`
    # refuses the unqualified attribute names Atom uses: rel, href, term…).
    feed = ET.Element("feed", {"xmlns": ATOM_NS, "xml:lang": "fr"})
    add(feed, "id", feed_id(head.name))
    add(feed, "title", head.title)
    add(feed, "subtitle", head.subtitle)
    add(feed, "updated", entries[0].updated if entries else head.updated)
    add(feed, "link", rel="self", type="application/atom+xml", href=base + head.self_path)
    add(feed, "link", rel="alternate", type="text/html", href=base + head.page_path)
    author = ET.SubElement(feed, "author")
    add(author, "name", SITE_NAME)
    add(author, "uri", base + "/")
    for entry in entries:
        element = ET.SubElement(feed, "entry")
        add(element, "id", entry.id)
        add(element, "title", entry.title)
        add(element, "updated", entry.updated)
        add(element, "link", rel="alternate", type="text/html", href=base + entry.path)
        add(element, "category", term=entry.term, label=entry.label)
        add(element, "summary", entry.summary, type="text")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def category_head(category: str, updated: str | None) -> FeedHead:
    """The head of a category's feed."""
    label = CATEGORIES_BY_ID[category].label
    return FeedHead(
        name=f"flux/{category}",
        title=f"{label} : palmarès et classement en direct — {SITE_NAME}",
        subtitle=(
            f"Palmarès mensuels publiés, changements de tête et entrées ou sorties du top {TOP} "
            f"{category_noun(category)}."
        ),
        self_path=f"/flux/{category}.atom",
        page_path=f"/classements/{category}",
        updated=updated or NO_DATE,
    )


def territory_head(territory_id: str, territory_name: str, updated: str | None) -> FeedHead:
    """The head of a territory's feed."""
    return FeedHead(
        name=f"flux/territoires/{territory_id}",
        title=f"{territory_name} — {SITE_NAME}",
        subtitle=(
            f"{territory_name} : résultats aux palmarès mensuels et état du compte Instagram."
        ),
        self_path=f"/flux/territoires/{territory_id}.atom",
        page_path=f"/territoires/{territory_id}",
        updated=updated or NO_DATE,
    )
