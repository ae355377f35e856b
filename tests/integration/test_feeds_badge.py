"""Following without Kafka: the Atom feeds and the badge, read by a feed parser and an XML
parser from a real API over a real Redis.

The data: the story of tests/integration/test_api_story.py (May and June 2021 published,
Ariège's account dead), six more départements ranked by the scorer's own code, then three
later snapshots through the real scorer and publisher: Isère falls out of the top 10 while
the newcomers enter it, Gers loses its lead, and Ariège's account is seen again (its dead
link recovers). Every rank-change event and link transition is the real publisher's.
Before any edition, a badge says "classement en direct" (a database of its own)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from xml.etree import ElementTree as ET

import feedparser
import httpx
import orjson
import pytest
import redis

from services.api.formatting import fr_month, fr_ordinal
from services.common.localstack import RedisServer
from services.common.settings import Settings
from services.common.territories import load_registry
from services.common.view.keys import ViewKeys
from tests.integration.test_api_story import ACCOUNTS, DEAD, live_api, push_rank_change, tell_story
from tests.integration.test_pages_lists import rank_accounts

rk = ViewKeys(0)
REGISTRY = load_registry()
CATEGORY = "departements"
NEWCOMERS = ["dep-13", "dep-33", "dep-44", "dep-59", "dep-67", "dep-06"]
LATER = [
    ("dep-38", 150, "2021-07-04T06:00:00Z"),  # Isère loses nearly every follower
    ("dep-32", 40, "2021-07-05T06:00:00Z"),  # Gers loses nearly every follower: a new leader
    (DEAD, 5300, "2021-07-06T06:00:00Z"),  # Ariège's account is seen again
]
SVG = "{http://www.w3.org/2000/svg}"


@dataclass
class Site:
    base: str
    redis_url: str


def _settings(redis_server: RedisServer, db: int, tmp_path_factory, name: str) -> Settings:
    return Settings(
        _env_file=None,
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/{db}",
        rate_limit_enabled=False,
        run_dir=tmp_path_factory.mktemp(name),
    )


async def _seed(redis_url: str) -> None:
    await tell_story(redis_url)
    await rank_accounts(
        redis_url,
        [REGISTRY[tid] for tid in NEWCOMERS],
        handle_prefix="more",
        followers=lambda index: 40_000 + 5_000 * index,
        interactions=lambda index: 900 + 100 * index,
    )
    for tid, followers, observed_at in LATER:
        await push_rank_change(redis_url, tid, followers, observed_at)


@pytest.fixture(scope="module")
def site(redis_server: RedisServer, tmp_path_factory) -> Iterator[Site]:
    settings = _settings(redis_server, 12, tmp_path_factory, "feeds")
    asyncio.run(_seed(settings.redis_url))
    with live_api(settings) as url:
        yield Site(url, settings.redis_url)
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    client.close()


def _events(site: Site) -> list[dict]:
    client = redis.Redis.from_url(site.redis_url)
    try:
        raw = client.zrange(rk.rank_changes_events_key(CATEGORY), 0, -1)
    finally:
        client.close()
    return [orjson.loads(event) for event in raw]


def _name(tid: str) -> str:
    return REGISTRY[tid].name


def _expected_category_news(site: Site, events: list[dict]) -> list[tuple[str, str, str]]:
    """(title, updated, link) of each piece of news the events and the editions tell,
    written as a reader expects it (the rule of the issue, not the code's)."""
    news = []
    for event in events:
        at = event["at"]
        if event["leader"] != event["previous_leader"]:
            leader = event["leader"]
            news.append(
                (f"{_name(leader)} prend la tête des départements", at, f"/territoires/{leader}")
            )
        for change in event["changes"]:
            was = change["from_rank"] is not None and change["from_rank"] <= 10
            now = change["to_rank"] is not None and change["to_rank"] <= 10
            who = _name(change["id"])
            if now and not was:
                title = (
                    f"{who} entre dans le top 10 des départements ({fr_ordinal(change['to_rank'])})"
                )
                news.append((title, at, f"/territoires/{change['id']}"))
            elif was and not now:
                title = f"{who} sort du top 10 des départements"
                if change["to_rank"] is not None:
                    title += f" ({fr_ordinal(change['to_rank'])})"
                news.append((title, at, f"/territoires/{change['id']}"))
    editions = httpx.get(f"{site.base}/api/v1/editions").json()["editions"]
    for edition in (e for e in editions if e["status"] == "published"):
        month = edition["edition"]
        leader = httpx.get(
            f"{site.base}/api/v1/editions/{month}/{CATEGORY}", params={"limit": 1}
        ).json()["items"][0]["id"]
        news.append(
            (
                f"Palmarès de {fr_month(month)} des départements : {_name(leader)} en tête",
                edition["published_at"],
                f"/classements/{CATEGORY}?edition={month}",
            )
        )
    return news


def test_the_category_feed_is_valid_french_atom_with_editions_leaders_and_the_top_10(site: Site):
    events = _events(site)
    # The story holds every kind of news: a new leader after the first, exits from the top 10.
    assert any(e["previous_leader"] and e["leader"] != e["previous_leader"] for e in events)
    assert any(
        c["from_rank"] is not None and c["from_rank"] <= 10 and (c["to_rank"] or 99) > 10
        for e in events
        for c in e["changes"]
    )

    response = httpx.get(f"{site.base}/flux/{CATEGORY}.atom")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.language == "fr"
    assert feed.feed.id.startswith("urn:uuid:")
    self_link = next(link for link in feed.feed.links if link.rel == "self")
    assert self_link.href == f"{site.base}/flux/{CATEGORY}.atom"

    got = [(e.title, e.updated, e.link) for e in feed.entries]
    expected = _expected_category_news(site, events)
    assert sorted(got) == sorted(
        (title, updated, site.base + path) for title, updated, path in expected
    )
    assert len(got) <= 50
    times = [e.updated_parsed for e in feed.entries]
    assert times == sorted(times, reverse=True)  # newest first
    assert feed.feed.updated == feed.entries[0].updated
    ids = [e.id for e in feed.entries]
    assert len(set(ids)) == len(ids) and all(i.startswith("urn:uuid:") for i in ids)
    change = next(e for e in events if e["previous_leader"] and e["leader"] != e["previous_leader"])
    told = next(
        e
        for e in feed.entries
        if e.title == f"{_name(change['leader'])} prend la tête des départements"
    )
    assert _name(change["previous_leader"]) in told.summary  # the former leader, and its rank
    assert all(e.summary for e in feed.entries)


def test_entry_ids_do_not_depend_on_the_address_the_feed_is_read_at(site: Site, tmp_path):
    first = feedparser.parse(httpx.get(f"{site.base}/flux/{CATEGORY}.atom").content)
    settings = Settings(
        _env_file=None, redis_url=site.redis_url, rate_limit_enabled=False, run_dir=tmp_path
    )
    with live_api(settings) as other:  # another port: another base URL
        again = feedparser.parse(httpx.get(f"{other}/flux/{CATEGORY}.atom").content)
    assert other != site.base
    assert [e.id for e in again.entries] == [e.id for e in first.entries]
    assert again.feed.id == first.feed.id
    assert [e.link for e in again.entries] == [
        e.link.replace(site.base, other) for e in first.entries
    ]


def test_the_territory_feed_tells_its_edition_results_and_its_dead_link_and_recovery(
    site: Site,
):
    detail = httpx.get(f"{site.base}/api/v1/territories/{DEAD}").json()
    response = httpx.get(f"{site.base}/flux/territoires/{DEAD}.atom")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.feed.language == "fr"
    assert feed.feed.title.startswith("Ariège")

    handle = ACCOUNTS[DEAD]
    entries = {e.title: e for e in feed.entries}
    dead = entries[f"Compte Instagram @{handle} introuvable"]
    assert dead.updated == "2021-06-30T06:00:00Z"  # the second not_found
    assert "depuis le 29 juin 2021" in dead.summary  # the first one
    assert dead.link == f"{site.base}/territoires/{DEAD}"
    back = entries[f"Compte Instagram @{handle} de nouveau visible"]
    assert back.updated == LATER[2][2]
    assert "6 juillet 2021" in back.summary

    results = [h for h in detail["history"] if h["rank"] is not None]
    assert [h["edition"] for h in results] == ["2021-05", "2021-06"]
    for point in results:
        title = (
            f"Palmarès de {fr_month(point['edition'])} : Ariège, "
            f"{fr_ordinal(point['rank'])} des départements"
        )
        entry = entries[title]
        assert entry.updated == point["published_at"]
        assert entry.link == f"{site.base}/classements/{CATEGORY}?edition={point['edition']}"
        assert f"sur {point['total']}" in entry.summary
    # Its rank that day: 5th of 7 on 28 June, then 1st of 1 on 6 July (alone measured).
    daily = httpx.get(f"{site.base}/api/v1/territories/{DEAD}/history").json()["points"]
    assert [(p["date"], p["rank"]) for p in daily][-2:] == [("2021-06-28", 5), ("2021-07-06", 1)]
    move = entries["Ariège gagne 4 places : 1er des départements le 6 juillet 2021"]
    assert move.updated == "2021-07-06T06:00:00Z"
    assert move.link == f"{site.base}/territories/{DEAD}#quotidien".replace(
        "territories", "territoires"
    )
    assert "1er rang sur 1 départements relevés ce jour-là" in move.summary
    assert "5e rang le 28 juin 2021" in move.summary
    assert len(feed.entries) == 5
    times = [e.updated_parsed for e in feed.entries]
    assert times == sorted(times, reverse=True)


def test_feeds_are_cacheable_and_unknown_names_answer_404_json(site: Site):
    for path in (f"/flux/{CATEGORY}.atom", f"/flux/territoires/{DEAD}.atom"):
        first = httpx.get(site.base + path)
        assert first.headers["cache-control"] == "public, max-age=300"
        etag = first.headers["etag"]
        again = httpx.get(site.base + path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
    for path, code in (
        ("/flux/cantons.atom", "unknown_category"),
        ("/flux/territoires/dep-999.atom", "unknown_territory"),
        ("/badges/dep-999.svg", "unknown_territory"),
    ):
        # JSON whatever the client accepts: a feed reader or an <img> is not a browser tab.
        response = httpx.get(site.base + path, headers={"Accept": "text/html"})
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]["code"] == code


def _badge(base: str, tid: str) -> tuple[httpx.Response, ET.Element, str]:
    response = httpx.get(f"{base}/badges/{tid}.svg")
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    text = " | ".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))
    return response, root, text


def test_the_badge_gives_the_rank_in_the_latest_edition_and_is_cacheable(site: Site):
    latest = httpx.get(f"{site.base}/api/v1/editions").json()["latest"]
    assert latest == "2021-06"
    for tid in ("dep-32", DEAD):
        detail = httpx.get(f"{site.base}/api/v1/territories/{tid}").json()
        rank = next(h["rank"] for h in detail["history"] if h["edition"] == latest)
        response, root, text = _badge(site.base, tid)
        assert response.headers["content-type"] == "image/svg+xml"
        assert response.headers["cache-control"] == "public, max-age=3600"
        assert root.tag == f"{SVG}svg" and root.get("role") == "img"
        title = root.find(f"{SVG}title")
        assert title is not None and root[0] is title  # the accessible name, first
        what = f"{fr_ordinal(rank)} des départements · juin 2021"
        assert what in text
        assert (
            title.text
            == f"{REGISTRY[tid].name} : {what} (Observatoire des territoires sur Instagram)"
        )
        again = httpx.get(
            f"{site.base}/badges/{tid}.svg", headers={"If-None-Match": response.headers["etag"]}
        )
        assert again.status_code == 304
    newcomer = NEWCOMERS[0]  # ranked live, absent from the June edition
    live = httpx.get(f"{site.base}/api/v1/territories/{newcomer}").json()["ranks"]["national"]
    _, _, text = _badge(site.base, newcomer)
    assert f"{fr_ordinal(live['rank'])} des départements · classement en direct" in text


def test_the_badge_says_classement_en_direct_before_any_edition(
    redis_server: RedisServer, tmp_path_factory
):
    settings = _settings(redis_server, 13, tmp_path_factory, "badge-live")
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    try:
        gers, paris = REGISTRY["dep-32"], REGISTRY["dep-75"]
        asyncio.run(
            rank_accounts(
                settings.redis_url,
                [gers, paris],
                handle_prefix="live",
                followers=lambda index: 10_000 * (index + 1),
                interactions=lambda index: 500,
            )
        )
        with live_api(settings) as base:
            assert httpx.get(f"{base}/api/v1/editions").json()["latest"] is None
            for territory in (gers, paris):
                live = httpx.get(f"{base}/api/v1/territories/{territory.id}").json()
                rank = live["ranks"]["national"]["rank"]
                _, root, text = _badge(base, territory.id)
                assert f"{fr_ordinal(rank)} des départements · classement en direct" in text
                title = root.find(f"{SVG}title")
                assert title is not None and "classement en direct" in (title.text or "")
            _, _, text = _badge(base, "dep-31")  # no account: not ranked
            assert "non classé · classement en direct" in text
    finally:
        client.flushdb()
        client.close()


def test_the_pages_offer_the_feeds_and_the_badge_with_its_snippet(site: Site):
    html = httpx.get(f"{site.base}/classements/{CATEGORY}", headers={"Accept": "text/html"}).text
    head = html.split("</head>", 1)[0]
    assert f'<link rel="alternate" type="application/atom+xml" href="/flux/{CATEGORY}.atom"' in head
    assert (
        f'<a href="/flux/{CATEGORY}.atom" type="application/atom+xml">S’abonner (Atom)</a>' in html
    )

    page = httpx.get(f"{site.base}/territoires/dep-32", headers={"Accept": "text/html"}).text
    head = page.split("</head>", 1)[0]
    assert (
        '<link rel="alternate" type="application/atom+xml" href="/flux/territoires/dep-32.atom"'
        in head
    )
    assert "S’abonner (Atom)</a>" in page
    assert "Afficher ce classement sur votre site" in page
    assert '<img src="/badges/dep-32.svg"' in page
    snippet = unescape(page.split("<pre><code>", 1)[1].split("</code></pre>", 1)[0])
    # An <img> inside a link to the territory's page, absolute addresses (no iframe).
    match = re.fullmatch(
        r'<a href="([^"]+)"><img src="([^"]+)" alt="([^"]+)" height="28"></a>', snippet
    )
    assert match is not None, snippet
    href, src, alt = match.groups()
    assert href == f"{site.base}/territoires/dep-32"
    assert src == f"{site.base}/badges/dep-32.svg"
    assert alt.startswith("Gers")
