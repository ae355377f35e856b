"""The territory registry: counts, ids, populations, membership, load time, CLI, shipped data."""

from __future__ import annotations

import dataclasses
import importlib.util
import time
from collections import Counter
from importlib import resources
from pathlib import Path
from types import ModuleType

import orjson
import pytest
import typer
from typer.testing import CliRunner

from services.cli import territories as territories_cli
from services.common.contracts import CATEGORY_IDS
from services.common.territories import (
    CATEGORY_KINDS,
    CREDIT,
    POPULATION_OVERRIDES,
    Registry,
    Territory,
    commune_category,
    load_registry,
    territory_id,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "regenerate_territories.py"
TARBALL = Path("/tmp/etalab/etalab-decoupage-administratif-6.0.0.tgz")

EXPECTED_COUNTS = {
    "regions": 18,
    "departements": 101,
    "metropoles": 22,
    "communautes-agglomeration": 244,
    "communautes-communes": 989,
    "grandes-villes": 42,
    "villes-moyennes": 442,
    "petites-villes": 34_391,
}
MEUSE_ZERO_POPULATION = {
    "com-55039": "Beaumont-en-Verdunois",
    "com-55050": "Bezonvaux",
    "com-55139": "Cumières-le-Mort-Homme",
    "com-55189": "Fleury-devant-Douaumont",
    "com-55239": "Haumont-près-Samogneux",
    "com-55307": "Louvemont-Côte-du-Poivre",
}
METROPOLE_DE_LYON = "epci-200046977"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("regenerate_territories", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shipped_document() -> dict:
    raw = resources.files("services.common").joinpath("data/territories.json").read_bytes()
    return orjson.loads(raw)


def _communes(registry: Registry) -> list[Territory]:
    return [t for t in registry.all() if t.kind == "com"]


# Counts and categories


def test_each_category_has_its_expected_count(registry: Registry) -> None:
    counts = {category: len(registry.by_category(category)) for category in CATEGORY_IDS}
    assert counts == EXPECTED_COUNTS


def test_every_territory_belongs_to_exactly_one_category(registry: Registry) -> None:
    everything = registry.all()
    ids = [t.id for t in everything]
    assert len(ids) == len(set(ids)) == len(registry) == sum(EXPECTED_COUNTS.values())
    for category in CATEGORY_IDS:
        assert all(t.category == category for t in registry.by_category(category))


def test_ids_are_kind_dash_code_and_kinds_match_categories(registry: Registry) -> None:
    for t in registry.all():
        assert t.id == territory_id(t.kind, t.code)
        assert t.kind == CATEGORY_KINDS[t.category]
        assert registry[t.id] is t


def test_loaded_territories_equal_ones_built_by_the_dataclass(registry: Registry) -> None:
    gers = registry["dep-32"]
    rebuilt = dataclasses.replace(gers)
    assert rebuilt == gers and hash(rebuilt) == hash(gers)
    assert rebuilt == Territory(
        id="dep-32",
        kind="dep",
        code="32",
        name="Gers",
        category="departements",
        population=gers.population,
        regions=("76",),
        departements=("32",),
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        gers.population = 0  # type: ignore[misc]


def test_categories_are_sorted_by_id(registry: Registry) -> None:
    for category in CATEGORY_IDS:
        ids = [t.id for t in registry.by_category(category)]
        assert ids == sorted(ids)


def test_commune_classes_follow_the_population_thresholds(registry: Registry) -> None:
    assert min(t.population for t in registry.by_category("grandes-villes")) >= 100_000
    moyennes = [t.population for t in registry.by_category("villes-moyennes")]
    assert min(moyennes) >= 20_000 and max(moyennes) < 100_000
    assert max(t.population for t in registry.by_category("petites-villes")) < 20_000
    assert commune_category(100_000) == "grandes-villes"
    assert commune_category(99_999) == "villes-moyennes"
    assert commune_category(20_000) == "villes-moyennes"
    assert commune_category(19_999) == "petites-villes"
    assert commune_category(0) == "petites-villes"


def test_overseas_collectivities_are_left_out(registry: Registry) -> None:
    for code in ("975", "977", "978", "984", "986", "987", "988", "989"):
        assert f"reg-{code}" not in registry
        assert f"dep-{code}" not in registry
    assert "com-98818" not in registry  # Nouméa
    assert registry["dep-976"].name == "Mayotte"
    assert registry["reg-06"].departements == ("976",)


# Known facts


def test_occitanie_and_the_gers(registry: Registry) -> None:
    occitanie = registry["reg-76"]
    assert occitanie.name == "Occitanie"
    assert occitanie.category == "regions"
    gers = registry["dep-32"]
    assert gers.name == "Gers"
    assert gers.regions == ("76",)
    assert gers.departements == ("32",)
    assert "32" in occitanie.departements
    assert registry["reg-32"].name == "Hauts-de-France"  # the same code, another kind


def test_corse_du_sud_has_a_lettered_code(registry: Registry) -> None:
    corse_du_sud = registry["dep-2A"]
    assert corse_du_sud.name == "Corse-du-Sud"
    assert corse_du_sud.regions == ("94",)
    assert {"2A", "2B"} <= registry.departement_codes()


def test_paris_departement_population_equals_paris_commune(registry: Registry) -> None:
    assert registry["dep-75"].population == registry["com-75056"].population == 2_103_778


def test_rhone_population_excludes_the_metropole_de_lyon(registry: Registry) -> None:
    rhone_communes = sum(t.population for t in _communes(registry) if t.departements == ("69",))
    lyon = registry[METROPOLE_DE_LYON]
    assert lyon.departements == ("69",)
    assert registry["dep-69"].population == rhone_communes - lyon.population
    assert [o.territory_id for o in POPULATION_OVERRIDES] == ["dep-69"]
    (applied,) = _shipped_document()["overrides"]
    assert applied["id"] == "dep-69"
    assert applied["excluded_members_of"] == METROPOLE_DE_LYON
    assert applied["communes_excluded"] == 58
    assert applied["population_cog"] == rhone_communes


def test_other_populations_are_sums_of_their_communes(registry: Registry) -> None:
    by_departement: Counter[str] = Counter()
    by_region: Counter[str] = Counter()
    for commune in _communes(registry):
        by_departement[commune.departements[0]] += commune.population
        by_region[commune.regions[0]] += commune.population
    for dep in registry.by_category("departements"):
        if dep.id != "dep-69":
            assert dep.population == by_departement[dep.code], dep.id
    for region in registry.by_category("regions"):  # Auvergne-Rhône-Alpes keeps Lyon
        assert region.population == by_region[region.code], region.id


def test_six_meuse_communes_have_zero_population(registry: Registry) -> None:
    zero = {t.id: t for t in _communes(registry) if t.population == 0}
    assert {tid: t.name for tid, t in zero.items()} == MEUSE_ZERO_POPULATION
    assert all(t.departements == ("55",) and t.category == "petites-villes" for t in zero.values())


def test_metropole_de_lyon_is_a_metropole(registry: Registry) -> None:
    lyon = registry[METROPOLE_DE_LYON]
    assert lyon.name == "Métropole de Lyon"
    assert lyon in registry.by_category("metropoles")


# Membership


def test_regions_list_themselves_and_their_departements(registry: Registry) -> None:
    departements = registry.by_category("departements")
    for region in registry.by_category("regions"):
        assert region.regions == (region.code,)
        assert region.departements == tuple(
            sorted(d.code for d in departements if d.regions == (region.code,))
        )


def test_departements_and_communes_list_themselves_and_their_region(registry: Registry) -> None:
    for dep in registry.by_category("departements"):
        assert dep.departements == (dep.code,)
        assert len(dep.regions) == 1 and dep.regions[0] in registry.region_codes()
    for commune in _communes(registry):
        (dep_code,) = commune.departements
        assert commune.regions == registry[f"dep-{dep_code}"].regions


def test_epci_membership_is_derived_from_member_communes(registry: Registry) -> None:
    grand_paris = registry["epci-200054781"]
    assert grand_paris.regions == ("11",)
    assert grand_paris.departements == ("75", "91", "92", "93", "94", "95")
    aire_sur_adour = registry["epci-200030435"]  # astride the Landes and the Gers
    assert aire_sur_adour.regions == ("75", "76")
    assert aire_sur_adour.departements == ("32", "40")
    for t in registry.all():
        if t.kind == "epci":
            assert list(t.departements) == sorted(set(t.departements))
            assert t.regions == tuple(
                sorted({registry[f"dep-{d}"].regions[0] for d in t.departements})
            )


def test_region_and_departement_codes(registry: Registry) -> None:
    assert len(registry.region_codes()) == 18
    assert len(registry.departement_codes()) == 101
    assert "76" in registry.region_codes() and "975" not in registry.departement_codes()


# API edges


def test_unknown_ids_and_categories_are_reported(registry: Registry) -> None:
    assert registry.get("dep-99") is None
    assert "dep-99" not in registry
    assert 32 not in registry
    with pytest.raises(KeyError, match="dep-99"):
        registry["dep-99"]
    with pytest.raises(ValueError, match="petites-villes"):
        registry.by_category("villages")


def test_territory_id_formats_and_validates() -> None:
    assert territory_id("dep", "2A") == "dep-2A"
    assert territory_id("epci", "200000172") == "epci-200000172"
    with pytest.raises(ValueError, match="kind"):
        territory_id("region", "76")


def test_registry_refuses_duplicate_ids(registry: Registry) -> None:
    gers = registry["dep-32"]
    with pytest.raises(ValueError, match="dep-32"):
        Registry([gers, gers])


def test_fresh_load_is_fast() -> None:
    load_registry.cache_clear()
    started = time.perf_counter()
    registry = load_registry()
    registry.all()
    elapsed_ms = (time.perf_counter() - started) * 1000
    print(f"fresh load of {len(registry)} territories: {elapsed_ms:.1f} ms")
    assert elapsed_ms < 200
    assert load_registry() is registry


# CLI


def test_cli_json_lists_a_category() -> None:
    result = CliRunner().invoke(territories_cli.app, ["list", "--category", "regions", "--json"])
    assert result.exit_code == 0, result.output
    records = orjson.loads(result.stdout)
    assert len(records) == 18
    occitanie = next(r for r in records if r["id"] == "reg-76")
    assert set(occitanie) == {
        "id",
        "code",
        "name",
        "category",
        "population",
        "regions",
        "departements",
        "handle",
    }
    assert occitanie["code"] == "76"
    assert occitanie["name"] == "Occitanie"
    assert occitanie["category"] == "regions"
    assert occitanie["regions"] == ["76"]
    assert "32" in occitanie["departements"]
    assert occitanie["handle"] is None
    assert occitanie["population"] == load_registry()["reg-76"].population


def test_cli_unknown_category_exits_2_listing_valid_ids() -> None:
    result = CliRunner().invoke(territories_cli.app, ["list", "--category", "villages"])
    assert result.exit_code == 2
    for category in CATEGORY_IDS:
        assert category in result.stderr


def test_cli_table_shows_the_territories(monkeypatch: pytest.MonkeyPatch) -> None:
    rich = CliRunner().invoke(territories_cli.app, ["list", "-c", "metropoles"])
    assert rich.exit_code == 0
    assert "Métropoles (22)" in rich.stdout and "epci-200046977" in rich.stdout
    monkeypatch.setattr(territories_cli, "RICH_TABLE_MAX_ROWS", 5)
    plain = CliRunner().invoke(territories_cli.app, ["list", "-c", "regions"])
    assert plain.exit_code == 0
    assert any(line.startswith("reg-76  Occitanie") for line in plain.stdout.splitlines())
    assert CREDIT in plain.stdout


def test_cli_mounts_as_the_territories_group() -> None:
    root = typer.Typer()
    root.add_typer(territories_cli.app, name="territories")
    result = CliRunner().invoke(root, ["territories", "list", "-c", "departements", "--json"])
    assert result.exit_code == 0, result.output
    assert len(orjson.loads(result.stdout)) == 101


# Shipped data


def test_shipped_data_matches_its_checksums(script: ModuleType) -> None:
    assert script.verify_checksums() == []


def test_regenerate_reproduces_the_shipped_files(script: ModuleType) -> None:
    if not TARBALL.is_file():
        # No tarball here (and no network in unit tests): the shipped files must at least be
        # the ones their checksum file, written by the same run, describes.
        assert script.verify_checksums() == []
        return
    files = script.build(TARBALL.read_bytes())
    assert set(files) == {"territories.json", "CREDITS.txt", "territories.sha256"}
    for name, content in files.items():
        assert (script.DATA_DIR / name).read_bytes() == content, f"{name} is stale"


def test_regenerate_refuses_a_tarball_with_another_checksum(script: ModuleType) -> None:
    with pytest.raises(script.RegenerationError, match=script.TARBALL_SHA256):
        script.build(b"not the pinned tarball")


def test_credit_is_shipped_with_the_data(script: ModuleType) -> None:
    assert _shipped_document()["credit"] == CREDIT
    assert CREDIT in (script.DATA_DIR / "CREDITS.txt").read_text()
    assert CREDIT == (
        "Sources : INSEE (COG, populations légales), DGCL, "
        "via Etalab decoupage-administratif 6.0.0, Licence Ouverte"
    )
