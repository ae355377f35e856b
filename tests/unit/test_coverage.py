"""Coverage counts (services/common/coverage.py): per category, per région (a territory in each
région it lies in) and in all, from the accounts, the ranked and the dead."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.common.contracts import CATEGORY_IDS
from services.common.coverage import count_coverage, registry_sizes
from services.common.territories import Registry, Territory, load_registry


def territory(tid: str, category: str, regions: tuple[str, ...]) -> Territory:
    kind, code = tid.split("-", 1)
    return Territory(tid, kind, code, tid, category, 1000, regions, ())


# Two régions (names out of code order, one accented), an EPCI astride both.
SMALL = Registry(
    [
        Territory("reg-11", "reg", "11", "Île-de-France", "regions", 1, ("11",), ()),
        Territory("reg-24", "reg", "24", "Centre-Val de Loire", "regions", 1, ("24",), ()),
        Territory("reg-93", "reg", "93", "Provence", "regions", 1, ("93",), ()),
        territory("epci-1", "communautes-communes", ("11", "24")),
        territory("epci-2", "communautes-communes", ("24",)),
        territory("com-1", "petites-villes", ("11",)),
        territory("com-2", "petites-villes", ("11",)),
        territory("com-3", "petites-villes", ("24",)),
    ]
)


def test_registry_sizes_count_each_region_a_territory_lies_in():
    sizes = registry_sizes(SMALL)
    assert sizes.per_category["communautes-communes"] == 2
    assert sizes.per_region["communautes-communes"] == {"11": 1, "24": 2}
    assert sizes.per_region["petites-villes"] == {"11": 2, "24": 1}
    assert list(sizes.region_names) == ["24", "11", "93"]  # Centre, Île (accent ignored), P


def test_counts_per_category_region_and_in_all():
    coverage = count_coverage(
        SMALL,
        accounts={"epci-1": False, "com-1": True, "com-3": False, "com-404": False},
        measured=["epci-1", "com-1", "com-1", "nowhere-1"],
        dead=["com-3"],
    )
    by_category = {c.category: c for c in coverage.categories}
    cc = by_category["communautes-communes"]
    assert cc.counts.to_dict() == {
        "territories": 2,
        "with_account": 1,
        "simulated": 0,
        "measured": 1,
        "dead_links": 0,
    }
    assert [(r.code, r.counts.territories, r.counts.measured) for r in cc.regions] == [
        ("24", 2, 1),
        ("11", 1, 1),
    ]
    pv = by_category["petites-villes"]
    assert (pv.counts.with_account, pv.counts.simulated, pv.counts.measured) == (2, 1, 1)
    assert pv.counts.dead_links == 1
    assert [r.code for r in pv.regions] == ["24", "11"]  # régions without any are left out
    assert by_category["grandes-villes"].regions == []
    assert coverage.totals.to_dict() == {
        "territories": 8,
        "with_account": 3,
        "simulated": 1,
        "measured": 2,
        "dead_links": 1,
    }
    across = {r.code: r.counts for r in coverage.regions}
    assert across["11"].territories == 1 + 1 + 2  # reg-11, epci-1, com-1, com-2
    assert across["24"].territories == 1 + 2 + 1
    assert across["93"].territories == 1
    assert across["11"].measured == 2 and across["24"].measured == 1


def test_nothing_measured_counts_the_registry_only():
    registry = load_registry()
    coverage = count_coverage(registry, accounts={}, measured=[], dead=[])
    assert coverage.totals.territories == len(registry)
    assert [c.counts.territories for c in coverage.categories] == [
        len(registry.by_category(category)) for category in CATEGORY_IDS
    ]
    assert [c.counts.territories for c in coverage.categories][:6] == [18, 101, 22, 244, 989, 42]
    assert coverage.totals.measured == coverage.totals.with_account == 0
    assert len(coverage.regions) == 18


@given(
    picks=st.lists(
        st.tuples(st.integers(0, 7), st.booleans(), st.booleans(), st.booleans(), st.booleans()),
        max_size=40,
    )
)
def test_each_count_is_the_members_of_its_list(picks):
    ids = [t.id for t in SMALL.all()]
    accounts = {ids[i]: simulated for i, has, simulated, _, _ in picks if has}
    measured = [ids[i] for i, _, _, ranked, _ in picks if ranked]
    dead = [ids[i] for i, _, _, _, is_dead in picks if is_dead]
    coverage = count_coverage(SMALL, accounts=accounts, measured=measured, dead=dead)
    for c in coverage.categories:
        members = {t.id for t in SMALL.by_category(c.category)}
        assert c.counts.with_account == len(members & set(accounts))
        assert c.counts.simulated == sum(accounts[t] for t in members & set(accounts))
        assert c.counts.measured == len(members & set(measured))
        assert c.counts.dead_links == len(members & set(dead))
        for r in c.regions:
            inside = {t.id for t in SMALL.by_category(c.category) if r.code in t.regions}
            assert r.counts.measured == len(inside & set(measured))
    assert coverage.totals.measured == len(set(measured))
