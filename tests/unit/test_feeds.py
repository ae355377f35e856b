"""The feeds' and the badge's pure parts: which news a rank-change event tells, stable ids, the
newest 50 first, and a badge that says its rank, its month or "classement en direct"."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import feedparser

from services.api import feeds
from services.api.badge import badge_facts, badge_svg, embed
from services.common.dead_links import LinkTransition
from services.common.history import Point, RankedPoint, Shown

NAMES = {"dep-32": "Gers", "dep-75": "Paris", "dep-38": "Isère", "dep-52": "Haute-Marne"}


def name(territory_id: str) -> str:
    return NAMES.get(territory_id, territory_id)


def event(seq: int, leader: str, previous: str | None, changes: list[tuple]) -> dict:
    return {
        "category": "departements",
        "seq": seq,
        "at": f"2021-07-{seq:02d}T06:00:00Z",
        "leader": leader,
        "previous_leader": previous,
        "changes": [
            {"id": tid, "kind": kind, "from_rank": old, "to_rank": new}
            for tid, kind, old, new in changes
        ],
    }


def test_an_event_tells_a_new_leader_and_who_enters_or_leaves_the_top_10_only():
    items = feeds.rank_change_items(
        event(
            7,
            "dep-75",
            "dep-32",
            [
                ("dep-75", "up", 2, 1),
                ("dep-32", "down", 1, 2),
                ("dep-38", "down", 10, 11),  # out of the top 10, still listed
                ("dep-52", "up", 14, 10),  # into the top 10
                ("dep-01", "entered", None, 9),  # new in the list, straight into the top 10
                ("dep-09", "left", 8, None),  # out of the list altogether
                ("dep-31", "down", 20, 21),  # far from the top 10: no news
            ],
        )
    )
    titles = [item.entry(name).title for item in items]
    assert titles == [
        "Paris prend la tête des départements",
        "dep-01 entre dans le top 10 des départements (9e)",
        "Haute-Marne entre dans le top 10 des départements (10e)",
        "dep-09 sort du top 10 des départements",
        "Isère sort du top 10 des départements (11e)",
    ]
    leader = items[0].entry(name)
    assert "devant Gers" in leader.summary and "2e rang" in leader.summary
    assert leader.updated == "2021-07-07T06:00:00Z" and leader.path == "/territoires/dep-75"
    assert "quitte le classement publié" in items[3].entry(name).summary


def test_the_first_event_names_its_leader_and_an_unchanged_leader_is_no_news():
    first = feeds.rank_change_items(event(1, "dep-32", None, [("dep-32", "entered", None, 1)]))
    assert [item.entry(name).title for item in first] == [
        "Gers prend la tête des départements",
        "Gers entre dans le top 10 des départements (1er)",
    ]
    same = feeds.rank_change_items(event(2, "dep-32", "dep-32", [("dep-38", "up", 5, 4)]))
    assert same == []


def test_ids_are_stable_names_of_the_news_and_distinct():
    items = feeds.rank_change_items(
        event(3, "dep-75", "dep-32", [("dep-75", "up", 12, 1), ("dep-32", "down", 1, 11)])
    )
    ids = [item.entry(name).id for item in items]
    again = [item.entry(lambda t: "another name").id for item in items]
    assert ids == again and len(set(ids)) == len(ids) == 3
    assert all(i.startswith("urn:uuid:") for i in ids)
    assert ids[0] == feeds.feed_id("flux/departements/rang/3/tete")


def test_a_feed_keeps_the_50_newest_entries_newest_first_in_valid_french_atom():
    items = [
        feeds.LinkChange(
            "dep-32",
            "instagram",
            "gersledepartement",
            "dead" if i % 2 == 0 else "ok",
            f"2021-0{1 + i // 28}-{1 + i % 28:02d}T05:00:00Z",
            f"2021-0{1 + i // 28}-{1 + i % 28:02d}T06:00:00Z",
        )
        for i in range(80)
    ]
    items.append(
        feeds.EditionResult("dep-32", "departements", "2021-06", "2021-07-02T08:00:00Z", 1, 7, 2, 3)
    )
    raw = feeds.atom_feed(
        feeds.territory_head("dep-32", "Gers", None), items, name, "https://example.test/"
    )
    parsed = feedparser.parse(raw)
    assert not parsed.bozo and parsed.feed.language == "fr"
    assert len(parsed.entries) == feeds.MAX_ENTRIES
    times = [e.updated for e in parsed.entries]
    assert times == sorted(times, reverse=True)
    assert parsed.entries[0].title == "Palmarès de juin 2021 : Gers, 1er des départements"
    assert "gagne 2 places" in parsed.entries[0].summary
    assert "3e mois de suite" in parsed.entries[0].summary
    assert parsed.entries[0].link == "https://example.test/classements/departements?edition=2021-06"


def test_a_feed_without_news_is_valid_and_dated_by_its_data():
    raw = feeds.atom_feed(
        feeds.category_head("regions", "2021-07-03T06:00:00Z"), [], name, "http://x"
    )
    parsed = feedparser.parse(raw)
    assert not parsed.bozo and parsed.entries == []
    assert parsed.feed.updated == "2021-07-03T06:00:00Z"


def test_link_transitions_become_news_of_the_territory():
    transitions = [
        LinkTransition("dead", "2021-06-29T06:00:00Z", "2021-06-30T06:00:00Z"),
        LinkTransition("ok", "2021-07-06T06:00:00Z", "2021-07-06T06:00:00Z"),
    ]
    entries = [
        item.entry(name) for item in feeds.link_changes("dep-32", "instagram", "gers", transitions)
    ]
    assert [e.title for e in entries] == [
        "Compte Instagram @gers introuvable",
        "Compte Instagram @gers de nouveau visible",
    ]
    assert [e.updated for e in entries] == [t.at for t in transitions]
    assert "depuis le 29 juin 2021" in entries[0].summary


def _text(svg: bytes) -> tuple[str, str]:
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    title = root.find(f"{ns}title")
    assert root.get("role") == "img" and title is not None and root[0] is title
    return title.text or "", " ".join("".join(t.itertext()) for t in root.iter(f"{ns}text"))


def test_the_badge_prefers_the_latest_edition_then_the_live_rank():
    edition = badge_facts("Gers", "departements", edition="2026-06", edition_rank=3, live_rank=5)
    title, text = _text(badge_svg(edition))
    assert "3e des départements · juin 2026" in text
    assert title.startswith("Gers : 3e des départements · juin 2026")
    live = badge_facts("Gers", "departements", edition=None, edition_rank=None, live_rank=5)
    assert "5e des départements · classement en direct" in _text(badge_svg(live))[1]
    absent = badge_facts("Gers", "departements", edition="2026-06", edition_rank=None, live_rank=1)
    assert "1er des départements · classement en direct" in _text(badge_svg(absent))[1]
    unranked = badge_facts(
        "Gers", "grandes-villes", edition=None, edition_rank=None, live_rank=None
    )
    assert "non classé · classement en direct" in _text(badge_svg(unranked))[1]


def test_the_snippet_is_an_image_in_a_link_with_absolute_addresses():
    found = embed("https://observatoire.example/", "dep-2A", "Corse-du-Sud")
    assert found.snippet.startswith('<a href="https://observatoire.example/territoires/dep-2A">')
    assert '<img src="https://observatoire.example/badges/dep-2A.svg"' in found.snippet
    assert found.badge_path == "/badges/dep-2A.svg"


def _daily(day: int, rank: int | None, weekly: bool = False) -> RankedPoint:
    point = Point(day=day, second=3600, score=50.0, followers=100, posts=3)
    return RankedPoint(Shown(point, weekly), rank, None if rank is None else 40)


def test_daily_rank_moves_are_the_moves_of_3_places_or_more_between_consecutive_days():
    points = [
        _daily(20_000, 9, weekly=True),  # a week's point: not a daily one
        _daily(20_100, 4),
        _daily(20_101, 6),  # 2 places: not news
        _daily(20_102, None),  # no rank that day: skipped, not a break
        _daily(20_103, 3),  # 3 places up since the 6th
        _daily(20_105, 7),  # 4 places down
    ]
    moves = feeds.daily_rank_moves("dep-32", "departements", points)
    entries = [m.entry(lambda tid: "Gers") for m in moves]
    assert [e.title for e in entries] == [
        "Gers gagne 3 places : 3e des départements le 15 janvier 2025",
        "Gers perd 4 places : 7e des départements le 17 janvier 2025",
    ]
    assert entries[0].updated == "2025-01-15T00:00:00Z"  # 01:00 in Paris, winter
    assert entries[0].path == "/territoires/dep-32#quotidien"
    assert len({e.id for e in entries}) == 2
