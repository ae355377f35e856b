"""The simulator: deterministic, plausible, marked, never in the future, with incidents."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from services.collector.sim_run import demo_start
from services.collector.simulator import (
    DEFAULT_CATEGORIES,
    RENAME_NOTICED_AFTER,
    SimulatedWorld,
    chosen_territories,
)
from services.common.clock import parse_timestamp, utcnow
from services.common.contracts import CATEGORY_IDS
from services.common.territories import load_registry
from services.common.validation import Rejection, validate_account, validate_metrics

EPOCH = datetime(2021, 4, 1, tzinfo=UTC)
# A share of every category, so that each is covered (petites villes: ~690 communes).
ALL_SHARES = {
    "regions": 1.0,
    "departements": 1.0,
    "metropoles": 1.0,
    "communautes-agglomeration": 0.3,
    "communautes-communes": 0.1,
    "grandes-villes": 1.0,
    "villes-moyennes": 0.25,
    "petites-villes": 0.02,
}


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def _ranks(values: list[float]) -> list[float]:
    """Ranks from 1, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(xs: list[float], ys: list[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the (tie-averaged) ranks."""
    rx, ry = _ranks(xs), _ranks(ys)
    n = len(xs)
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    return cov / (vx * vy) ** 0.5


def orjson_dumps(obj: object) -> bytes:
    return orjson.dumps(obj)


def test_spearman_is_computed_right():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    assert spearman([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486832980505138)


def test_same_seed_same_events_other_seed_other_events(registry):
    moment = EPOCH + timedelta(days=50, hours=6)
    kwargs = {"epoch": EPOCH, "dead_links": 2, "renames": 1}
    first = SimulatedWorld(registry, seed=7, **kwargs)
    again = SimulatedWorld(registry, seed=7, **kwargs)
    other = SimulatedWorld(registry, seed=8, **kwargs)
    ids = [e["event_id"] for e in first.snapshots(moment)]
    assert ids == [e["event_id"] for e in again.snapshots(moment)]
    assert first.account_records() == again.account_records()
    assert first.dead_links == again.dead_links and first.renames == again.renames
    assert not set(ids) & {e["event_id"] for e in other.snapshots(moment)}


def test_default_world_covers_the_four_categories_without_real_accounts(registry):
    world = SimulatedWorld(registry, seed=2021, real_handles={"dep-32"}, epoch=EPOCH)
    expected = sum(len(registry.by_category(c)) for c in DEFAULT_CATEGORIES) - 1
    assert len(world.accounts) == expected
    assert "dep-32" not in {a.territory_id for a in world.accounts}
    for record in world.account_records():
        assert record["simulated"] is True and record["handle"].startswith("sim.")
        assert not isinstance(validate_account(orjson_dumps(record), None), Rejection)


def test_a_share_of_a_category_is_chosen_by_the_seed(registry):
    communes = registry.by_category("villes-moyennes")
    chosen = chosen_territories(1, communes, 0.1)
    assert len(chosen) == round(0.1 * len(communes))
    assert chosen == chosen_territories(1, communes, 0.1)
    assert chosen != chosen_territories(2, communes, 0.1)
    assert chosen_territories(1, communes, 0.0) == []
    assert chosen_territories(1, communes, 1.0) == list(communes)


@pytest.fixture(scope="module")
def big_world(registry):
    return SimulatedWorld(registry, seed=2021, shares=ALL_SHARES, epoch=EPOCH)


@pytest.mark.parametrize("seed", [2021, 1, 2])
def test_followers_grow_with_population_in_every_category(registry, big_world, seed):
    world = (
        big_world
        if seed == 2021
        else SimulatedWorld(registry, seed=seed, shares=ALL_SHARES, epoch=EPOCH)
    )
    moment = EPOCH + timedelta(days=40)
    by_category: dict[str, list[tuple[int, int]]] = {}
    for account in world.accounts:
        territory = registry[account.territory_id]
        event = world.snapshot(account, moment)
        by_category.setdefault(territory.category, []).append(
            (territory.population, event["followers"])
        )
    assert set(by_category) == set(CATEGORY_IDS)
    report = {}
    for category, pairs in by_category.items():
        populations, followers = zip(*pairs, strict=True)
        report[category] = rho = spearman(list(populations), list(followers))
        assert rho > 0.5, (category, rho, len(pairs))
    print(
        f"seed {seed}: Spearman(followers, population):",
        {k: round(v, 3) for k, v in report.items()},
    )


def test_engagement_posting_and_hidden_likes_are_plausible(big_world):
    moment = EPOCH + timedelta(days=40)
    events = [big_world.snapshot(a, moment) for a in big_world.accounts[:400]]
    rates, posts, hidden = [], [], 0
    for event in events:
        posts.append(len(event["recent_posts"]))
        hidden += any(p["likes_hidden"] for p in event["recent_posts"])
        for post in event["recent_posts"]:
            rates.append((post["likes"] + post["comments"]) / max(event["followers"], 1))
    rates.sort()
    median = rates[len(rates) // 2]
    assert 0.005 < median < 0.08  # a few per cent, the Observatoire's "good" is ~5 %
    assert 5 < sorted(posts)[len(posts) // 2] < 40  # about one post every one to six days
    assert 0.03 < hidden / len(events) < 0.3


def test_no_event_time_is_ever_in_the_future(registry):
    now = utcnow()
    world = SimulatedWorld(
        registry,
        seed=3,
        epoch=now - timedelta(days=70),
        dead_links=2,
        renames=2,
        shares={"regions": 1.0, "metropoles": 1.0},
    )
    now_ms = int(now.timestamp() * 1000)
    for moment in (now - timedelta(days=20), now):
        for event in world.snapshots(moment):
            assert parse_timestamp(event["observed_at"]) <= moment
            for post in event.get("recent_posts", []):
                assert post["published_at"] <= event["observed_at"]
            # what a consumer would accept, judged against a record written now
            assert not isinstance(validate_metrics(orjson_dumps(event), now_ms), Rejection)
    for record in world.account_changes(world.epoch, now):
        assert parse_timestamp(record["changed_at"]) <= now
    assert demo_start(now) < now


def test_a_dead_link_answers_not_found_from_its_day_on(registry):
    world = SimulatedWorld(registry, seed=5, epoch=EPOCH, dead_links=1)
    [dead] = world.dead_links.values()
    account = next(a for a in world.accounts if a.territory_id == dead.territory_id)
    before = world.snapshot(account, dead.since - timedelta(hours=2))
    after = world.snapshot(account, dead.since + timedelta(days=1, hours=2))
    assert before["status"] == "ok" and before["handle"] == dead.handle
    assert after["status"] == "not_found" and after["handle"] == dead.handle
    assert after["followers"] is None and "recent_posts" not in after


def test_a_rename_keeps_the_account_id_and_is_registered_later(registry):
    world = SimulatedWorld(registry, seed=5, epoch=EPOCH, renames=1)
    [rename] = world.renames.values()
    account = next(a for a in world.accounts if a.territory_id == rename.territory_id)
    hour = timedelta(hours=2)
    old = world.snapshot(account, rename.renamed_at - hour)
    gone = world.snapshot(account, rename.renamed_at + RENAME_NOTICED_AFTER / 2)
    new = world.snapshot(account, rename.registered_at + hour)
    assert (old["status"], old["handle"]) == ("ok", rename.old_handle)
    assert (gone["status"], gone["handle"]) == ("not_found", rename.old_handle)
    assert (new["status"], new["handle"]) == ("ok", rename.new_handle)
    assert new["account_id"] == old["account_id"]
    [record] = world.account_changes(EPOCH, rename.registered_at)
    assert record["id"] == rename.territory_id and record["handle"] == rename.new_handle
    assert record["simulated"] is True
    assert world.account_changes(rename.registered_at, rename.registered_at + hour) == []


def test_incidents_are_counted_as_asked(registry):
    world = SimulatedWorld(registry, seed=9, epoch=EPOCH, dead_links=3, renames=2)
    moment = EPOCH + timedelta(days=65)
    statuses = Counter(e["status"] for e in world.snapshots(moment))
    assert statuses["not_found"] == 3  # the dead ones; the renamed ones are registered again
    assert len(world.renames) == 2
