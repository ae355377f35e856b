"""« Ma collectivité »: a territory's detail and page say who is around it (percentile and
neighbours in every scope), what it takes to pass the next one, its follower gains and its
records, all read from a real Redis written by the real scorer and publisher.

The story of test_api_story.py (départements, May and June published), then thirteen petites
villes (eight in Gers, three in Haute-Garonne, two in the Landes) observed in September 2021,
L'Isle-Jourdain also at the end of July and of August, and Gers once more in September. Every
expected value is read another way: the standings endpoint for the neighbours, the pure
functions on what Redis holds for the gaps and the gains, the editions for the records.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from services.api.app import create_app
from services.api.formatting import THIN_SPACE, fr_decimal, fr_int
from services.api.schemas import TerritoryDetail
from services.common.events import AccountRecord, build_account_record, build_metrics_event
from services.common.gap import gaps_to_pass
from services.common.localstack import RedisServer
from services.common.methodology import follower_gains, ranking_key, score_summary
from services.common.settings import Settings
from services.common.territories import load_registry
from services.common.view.entries import decode_entry, decode_month_summaries
from services.common.view.keys import ViewKeys
from services.publisher.core import Publisher
from services.scorer.standings import StandingsUpdater
from services.scorer.store import ScorerStore
from tests.integration.test_api_story import OFFSETS, Story, apply, posts, snapshot, tell_story
from tests.signing import COMMAND_KEYS

rk = ViewKeys(0)
CATEGORY = "petites-villes"
FOCUS = "com-32160"  # L'Isle-Jourdain (Gers, Occitanie)
JULY, AUGUST, NOW = "2021-07-31T06:00:00Z", "2021-08-29T06:00:00Z", "2021-09-05T06:00:00Z"
FOCUS_FOLLOWERS = {JULY: 2_000, AUGUST: 2_300, NOW: 2_450}
GERS_NOW = 17_000  # Gers (the département) in September: May had 15,000, June 16,000
# Followers in September as a share of the population (reach): the focus has 2,450 / 9,537.
SHARES = {
    "com-32107": 0.6,  # Condom
    "com-32132": 0.5,  # Fleurance
    "com-32119": 0.15,  # Eauze
    "com-32208": 0.4,  # Lectoure
    "com-32462": 0.1,  # Vic-Fezensac
    "com-32256": 0.07,  # Mirande
    "com-32147": 0.05,  # Gimont
    "com-31044": 0.3,  # Balma
    "com-31113": 0.05,  # Castanet-Tolosan
    "com-31446": 0.2,  # Ramonville-Saint-Agne
    "com-40046": 0.4,  # Biscarrosse
    "com-40279": 0.02,  # Saint-Paul-lès-Dax
}


def handle_of(tid: str) -> str:
    return f"ville.{tid[4:]}"


def commune_snapshot(tid: str, observed_at: str, followers: int) -> dict:
    return build_metrics_event(
        handle=handle_of(tid),
        observed_at=observed_at,
        status="ok",
        source="graph",
        followers=followers,
        follows=150,
        media_count=300,
        recent_posts=posts(observed_at, round(followers * 0.02)),
    )


async def seed(url: str) -> None:
    """The départements' story, then the petites villes and Gers again."""
    await tell_story(url)
    redis = Redis.from_url(url)
    try:
        registry = load_registry()
        story = Story()
        story.updater = StandingsUpdater(ScorerStore(redis, rk), registry)
        story.publisher = Publisher(
            redis, rk, registry, story.sent, grace_hours=24, command_keys=COMMAND_KEYS
        )
        await story.publisher.load()
        for tid in [FOCUS, *SHARES]:
            record = build_account_record(
                territory_id=tid,
                handle=handle_of(tid),
                changed_at="2021-07-01T00:00:00Z",
                simulated=False,
            )
            await story.updater.apply_account(tid, handle_of(tid), False, version=next(OFFSETS))
            await story.publisher.links.apply_account(AccountRecord.model_validate(record))
        for moment in (JULY, AUGUST):
            await apply(story, [commune_snapshot(FOCUS, moment, FOCUS_FOLLOWERS[moment])])
        await apply(
            story,
            [
                commune_snapshot(FOCUS, NOW, FOCUS_FOLLOWERS[NOW]),
                *(
                    commune_snapshot(tid, NOW, round(registry[tid].population * share))
                    for tid, share in SHARES.items()
                ),
                snapshot("dep-32", NOW, GERS_NOW),
            ],
        )
    finally:
        await redis.aclose()


@pytest.fixture(scope="module")
def url(redis_server: RedisServer) -> str:
    address = f"{redis_server.url.rsplit('/', 1)[0]}/14"
    asyncio.run(seed(address))
    return address


@pytest.fixture(scope="module")
def client(url: str, tmp_path_factory) -> Iterator[TestClient]:
    settings = Settings(
        _env_file=None,
        redis_url=url,
        rate_limit_enabled=False,
        run_dir=tmp_path_factory.mktemp("territory-neighbours"),
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def redis(url: str) -> Iterator[SyncRedis]:
    client = SyncRedis.from_url(url)
    yield client
    client.close()


def detail(client: TestClient, tid: str) -> dict:
    response = client.get(f"/api/v1/territories/{tid}")
    assert response.status_code == 200
    return response.json()


def text_of(page: str) -> str:
    """The page's text, blanks collapsed (the narrow no-break spaces of French figures kept)."""
    return html.unescape(re.sub(r"[ \t\r\n]+", " ", re.sub(r"<[^>]+>", " ", page)))


def neighbour(item: dict) -> dict:
    return {key: item[key] for key in ("rank", "national_rank", "id", "name", "score")}


# --- neighbours and percentile ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "query", "total"),
    [("national", "", 13), ("regions", "&region=76", 11), ("departements", "&departement=32", 8)],
)
def test_percentile_and_neighbours_in_each_scope_are_those_of_its_standings(
    client, scope, query, total
):
    body = detail(client, FOCUS)
    ranks = body["ranks"][scope] if scope == "national" else body["ranks"][scope][0]
    standings = client.get(f"/api/v1/standings/{CATEGORY}?limit=100{query}").json()
    ids = [item["id"] for item in standings["items"]]
    position = ids.index(FOCUS) + 1
    assert (ranks["rank"], ranks["total"]) == (position, standings["total"]) == (position, total)
    assert ranks["percentile"] == round(100 * (total - position) / (total - 1), 1)
    assert 0 < ranks["percentile"] < 100  # neither first nor last, by the story's design
    items = standings["items"]
    assert ranks["neighbours"] == {
        "above": [neighbour(item) for item in items[max(0, position - 4) : position - 1]],
        "below": [neighbour(item) for item in items[position : position + 3]],
    }
    assert ranks["neighbours"]["above"] and ranks["neighbours"]["below"]


def test_the_three_scopes_rank_among_different_territories(client):
    body = detail(client, FOCUS)
    national = body["ranks"]["national"]
    (occitanie,) = body["ranks"]["regions"]
    (gers,) = body["ranks"]["departements"]
    assert (occitanie["code"], gers["code"]) == ("76", "32")
    assert (national["total"], occitanie["total"], gers["total"]) == (13, 11, 8)
    # in Gers every neighbour is a commune of Gers, in Occitanie one of Occitanie
    registry = load_registry()
    for side in ("above", "below"):
        assert all("32" in registry[n["id"]].departements for n in gers["neighbours"][side])
        assert all("76" in registry[n["id"]].regions for n in occitanie["neighbours"][side])
    # a local neighbour's rank is its place in the scope, its national rank the category's
    for n in gers["neighbours"]["above"] + gers["neighbours"]["below"]:
        assert n["national_rank"] >= n["rank"]
    assert {n["national_rank"] for n in national["neighbours"]["above"]} == set(
        range(national["rank"] - len(national["neighbours"]["above"]), national["rank"])
    )


def test_alone_is_ahead_of_everyone_and_unranked_has_no_place(client):
    gers = detail(client, "dep-32")  # the only département observed within 30 days
    assert gers["status"] == "ranked"
    assert gers["ranks"]["national"] == {
        "rank": 1,
        "total": 1,
        "percentile": 100.0,
        "neighbours": {"above": [], "below": []},
    }
    assert gers["next"] is None and gers["gaps"] is None
    paris = detail(client, "dep-75")  # last observed in July: inactive now
    assert paris["status"] == "inactive"
    assert paris["ranks"]["national"]["percentile"] is None
    assert paris["ranks"]["national"]["neighbours"] is None
    assert paris["next"] is None and paris["gaps"] is None
    corse = detail(client, "dep-2A")  # never observed
    assert corse["status"] == "unranked" and corse["ranks"]["regions"][0]["percentile"] is None
    assert corse["ranks"]["regions"][0]["neighbours"] is None
    assert corse["follower_gains"] == [None, None, None, None]
    assert corse["records"] == {"best_rank": None, "months_first": 0, "published": 2}


@pytest.mark.parametrize("tid", [FOCUS, "com-40279", "dep-32", "dep-75", "dep-2A"])
def test_each_detail_conforms_to_its_documented_model(client, tid):
    body = detail(client, tid)
    dumped = TerritoryDetail.model_validate(body).model_dump(mode="json")
    # the new fields are documented whole: none is left out of their models
    for field in ("ranks", "next", "gaps", "follower_gains", "history", "records"):
        assert dumped[field] == body[field], field
    assert len(body["follower_gains"]) == 4


# --- the next one and what it takes ---------------------------------------------------------


def test_next_is_the_one_just_above_and_the_gaps_are_the_pure_functions(client, redis):
    body = detail(client, FOCUS)
    above = body["ranks"]["national"]["neighbours"]["above"][-1]
    assert body["next"] == {key: above[key] for key in ("id", "name", "rank", "score")}
    assert body["next"]["rank"] == body["ranks"]["national"]["rank"] - 1
    raw = redis.hget(rk.entry_key(rk.view_prefix(CATEGORY, None)), FOCUS)
    summary = decode_entry(raw).summary
    population = load_registry()[FOCUS].population
    expected = gaps_to_pass(summary, population, FOCUS, above["score"], above["id"])
    assert body["gaps"] == {name: gap.to_dict() for name, gap in expected.items()}
    # and they hold: the posts that pass would rank it right above the next one
    activity = body["gaps"]["activity"]
    assert activity["possible"] and activity["before"] == summary.posts
    assert ranking_key(FOCUS, activity["score"]) < ranking_key(above["id"], above["score"])
    assert ranking_key(above["id"], above["score"]) < ranking_key(FOCUS, body["current"]["score"])
    followers = body["gaps"]["audience"]
    assert followers["before"] == FOCUS_FOLLOWERS[NOW] and followers["possible"]
    assert score_summary(summary, population).score == body["current"]["score"]


def test_the_first_has_nobody_to_pass(client):
    standings = client.get(f"/api/v1/standings/{CATEGORY}?limit=1").json()
    leader = detail(client, standings["items"][0]["id"])
    assert leader["ranks"]["national"]["rank"] == 1
    assert leader["ranks"]["national"]["neighbours"]["above"] == []
    assert len(leader["ranks"]["national"]["neighbours"]["below"]) == 3
    assert leader["next"] is None and leader["gaps"] is None


# --- follower gains -------------------------------------------------------------------------


def test_follower_gains_compare_with_the_month_summaries(client, redis):
    body = detail(client, FOCUS)
    assert body["follower_gains"] == [
        {
            "days": 7,
            "since": AUGUST,
            "followers_then": 2_300,
            "gain": 150,
            "gain_pct": 100 * 150 / 2_300,
        },
        {"days": 30, "since": JULY, "followers_then": 2_000, "gain": 450, "gain_pct": 22.5},
        None,  # nothing of the account in June or before
        None,
    ]
    handle = handle_of(FOCUS)
    months = decode_month_summaries(redis.hget(rk.summaries_key("instagram", handle), handle))
    assert sorted(months) == ["2021-07", "2021-08", "2021-09"]
    earlier = [(s.observed_at, s.followers) for s in months.values()]
    gains = follower_gains(NOW, FOCUS_FOLLOWERS[NOW], earlier)
    assert body["follower_gains"] == [None if g is None else g.to_dict() for g in gains]


def test_follower_gains_reach_back_to_the_snapshots_published_editions_ranked(client, redis):
    handle = "gersledepartement"
    months = decode_month_summaries(redis.hget(rk.summaries_key("instagram", handle), handle))
    assert sorted(months) == ["2021-09"]  # the published months' summaries are dropped
    body = detail(client, "dep-32")
    assert [h["observed_at"] for h in body["history"]] == [
        "2021-05-20T06:00:00Z",
        "2021-06-28T06:00:00Z",
    ]
    seven, thirty, ninety, year = body["follower_gains"]
    assert seven is None and thirty is None and year is None
    # t − 90 days is 7 June; June's snapshot (28 June) is after it, May's within 22.5 days
    assert ninety == {
        "days": 90,
        "since": "2021-05-20T06:00:00Z",
        "followers_then": 15_000,
        "gain": 2_000,
        "gain_pct": 100 * 2_000 / 15_000,
    }


# --- records -----------------------------------------------------------------------------------


def test_records_are_the_best_rank_and_the_editions_led(client):
    ranks: dict[str, dict[str, int]] = {}
    for month in ("2021-05", "2021-06"):
        edition = client.get(f"/api/v1/editions/{month}/departements?limit=100").json()
        for item in edition["items"]:
            ranks.setdefault(item["id"], {})[month] = item["rank"]
    assert len(ranks) == 7
    for tid, by_month in ranks.items():
        best = min(by_month.values())
        assert detail(client, tid)["records"] == {
            "best_rank": {
                "rank": best,
                "editions": [month for month, rank in sorted(by_month.items()) if rank == best],
            },
            "months_first": sum(1 for rank in by_month.values() if rank == 1),
            "published": 2,
        }, tid
    assert detail(client, "dep-32")["records"]["months_first"] == 2


# --- the page -------------------------------------------------------------------------------


def section(page: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}"[^>]*>(.*?)</section>', page, re.S)
    assert match, section_id
    return match.group(1)


def test_the_page_shows_who_is_around_what_it_takes_gains_and_records(client):
    body = detail(client, FOCUS)
    page = client.get(f"/territoires/{FOCUS}").text
    around = section(page, "autour")
    text = text_of(around)
    assert "Autour de L'Isle-Jourdain" in text
    national = body["ranks"]["national"]
    percent = f"{fr_decimal(national['percentile'], 1)}{THIN_SPACE}%"
    assert f"devant {percent} des petites villes" in text
    gers = body["ranks"]["departements"][0]
    assert f"devant {fr_decimal(gers['percentile'], 1)}{THIN_SPACE}% des petites villes" in text
    current = re.findall(r'<tr class="itself" aria-current="page">(.*?)</tr>', around, re.S)
    assert len(current) == 3 and all("L&#39;Isle-Jourdain" in row for row in current)
    for n in national["neighbours"]["above"] + national["neighbours"]["below"]:
        assert f'href="/territoires/{n["id"]}"' in around
    assert 'href="/territoires/com-32160"' not in around  # itself is no link

    passing = text_of(section(page, "depasser"))
    nxt = body["next"]
    assert f"Pour dépasser {nxt['name']}" in passing
    activity = body["gaps"]["activity"]
    steps = activity["steps"]
    posts_word = "publication" if steps == 1 else "publications"
    assert (
        f"Activité : +{steps} {posts_word} sur 30 jours "
        f"(de {activity['before']} à {activity['after']})" in passing
    )
    audience = body["gaps"]["audience"]
    added = audience["after"] - audience["before"]
    assert f"Audience : +{audience['steps']}{THIN_SPACE}% d’abonnés (+{fr_int(added)})" in passing

    gains = text_of(section(page, "gains"))
    assert "+150 abonnés en 7 jours (depuis le 29 août 2021)" in gains
    assert "+450 abonnés en 30 jours (depuis le 31 juillet 2021)" in gains
    assert "En 90 jours : données insuffisantes" in gains
    assert "En 365 jours : données insuffisantes" in gains

    records = text_of(section(page, "records"))
    assert "Classé dans aucun palmarès mensuel publié pour l’instant." in records
    assert "style=" not in page and "<script>" not in page  # the CSP allows neither


def test_the_page_of_a_leader_says_there_is_nobody_to_pass_and_shows_its_records(client):
    page = client.get("/territoires/dep-32").text
    assert "seul territoire classé" in text_of(section(page, "autour"))
    assert "aucun territoire à dépasser" in text_of(section(page, "depasser"))
    records = text_of(section(page, "records"))
    assert "Meilleur rang dans un palmarès publié : 1er (mai 2021 et juin 2021)." in records
    assert "En tête de 2 palmarès mensuels publiés sur 2." in records
    gains = text_of(section(page, "gains"))
    assert f"+2{THIN_SPACE}000 abonnés en 90 jours (depuis le 20 mai 2021)" in gains


def test_an_unranked_page_has_no_neighbourhood_but_says_what_it_lacks(client):
    page = client.get("/territoires/dep-2A").text
    assert 'id="autour"' not in page and 'id="depasser"' not in page
    assert "Données insuffisantes" in text_of(section(page, "gains"))
    assert "Classé dans aucun palmarès" in text_of(section(page, "records"))
