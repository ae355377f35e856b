"""The bundled accounts file and its loader: good rows load, bad rows are reported, none fixed."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.accounts import (
    Account,
    AccountProblem,
    account_records,
    bundled_accounts_path,
    load_accounts,
)
from services.common.events import AccountRecord, compute_event_id

SEED_ACCOUNTS = [
    Account("dep-32", "gersledepartement"),
    Account("dep-75", "paris_maville"),
    Account("com-75056", "paris_maville"),
    Account("dep-38", "isere.le.departement"),
    Account("dep-52", "haute_marne"),
    Account("dep-27", "eureennormandie"),
    Account("dep-07", "departement.ardeche"),
    Account("dep-09", "ariegeledpt"),
    Account("dep-87", "hautevienne_dep"),
    Account("dep-17", "ma_charente_maritime"),
    Account("epci-200067478", "cc_comtal_lot_truyere"),
    Account("epci-242900702", "paysbigouden"),
    Account("epci-200033298", "lescoevrons"),
    Account("epci-200066801", "isignyomahaintercom"),
    Account("epci-243200417", "latenareze"),
    Account("epci-241200567", "stylemillau"),
    Account("epci-246000871", "ccpaysdevalois"),
    Account("epci-200067544", "creuseconfluence"),
]


def test_bundled_file_loads_every_good_row_in_file_order() -> None:
    assert list(load_accounts().accounts) == SEED_ACCOUNTS


def test_bundled_file_reports_exactly_the_haute_savoie_row() -> None:
    load = load_accounts()
    assert load.problems == (
        AccountProblem(
            line=10, territory_id="dep-74", raw="@haut Savoie_dep74", reason="contains a space"
        ),
    )
    lines = bundled_accounts_path().read_text(encoding="utf-8").split("\n")
    assert lines[load.problems[0].line - 1] == "dep-74,@haut Savoie_dep74,Haute-Savoie"


def test_bundled_file_keeps_the_handles_as_the_article_printed_them() -> None:
    text = bundled_accounts_path().read_text(encoding="utf-8")
    assert "dep-74,@haut Savoie_dep74," in text
    assert "epci-200066801,@Isignyomahaintercom," in text
    assert text.startswith("#")
    assert "territory_id,handle,name_in_source\n" in text


def test_haute_savoie_gets_no_account_rather_than_a_guessed_one() -> None:
    assert "dep-74" not in load_accounts().handles_by_territory()


def test_paris_departement_and_commune_share_one_account() -> None:
    mapping = load_accounts().handles_by_territory()
    assert mapping["dep-75"] == mapping["com-75056"] == "paris_maville"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "accounts.csv"
    path.write_bytes(text.encode("utf-8"))
    return path


KNOWN = {"dep-32", "dep-75", "com-75056", "dep-2A", "epci-243200417"}


def test_several_bad_rows_are_reported_with_their_lines_and_the_rest_loads(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "# a comment\n"
        "territory_id,handle,name_in_source\n"
        "dep-32,@gersledepartement,Gers\n"  # line 3
        "\n"
        "dep-75,paris maville,Paris\n"  # 5: space
        "dep-99,@someone,Nowhere\n"  # 6: unknown
        "32,@gers,Gers\n"  # 7: malformed id
        "dep-32,@gers_again,Gers\n"  # 8: duplicate
        "# another comment\n"
        "com-75056,@paris_maville\n"  # 10: two columns
        "dep-2A,@corse-du-sud,Corse-du-Sud\n"  # 11: hyphen
        'epci-243200417,@LaTenareze,"Communauté de communes de la Ténarèze, Gers"\n'  # 12
        "dep-75,,Paris\n",  # 13: empty handle (dep-75 seen on line 5 already)
    )
    load = load_accounts(path, known_territories=KNOWN)
    assert load.accounts == (
        Account("dep-32", "gersledepartement"),
        Account("epci-243200417", "latenareze"),
    )
    assert [(p.line, p.territory_id, p.raw) for p in load.problems] == [
        (5, "dep-75", "paris maville"),
        (6, "dep-99", "@someone"),
        (7, "32", "@gers"),
        (8, "dep-32", "@gers_again"),
        (10, "com-75056", "com-75056,@paris_maville"),
        (11, "dep-2A", "@corse-du-sud"),
        (13, "dep-75", ""),
    ]
    reasons = [p.reason for p in load.problems]
    assert reasons[0] == "contains a space"
    assert reasons[1] == "unknown territory id"
    assert reasons[2].startswith("malformed territory id")
    assert reasons[3] == "duplicate territory id (first on line 3)"
    assert reasons[4] == "expected 3 columns, found 2"
    assert reasons[5].startswith("contains '-'")
    assert reasons[6] == "duplicate territory id (first on line 5)"


def test_crlf_file_loads_like_lf(tmp_path: Path) -> None:
    path = write(tmp_path, "territory_id,handle,name_in_source\r\ndep-32,@Gers,Gers\r\n")
    load = load_accounts(path, known_territories=KNOWN)
    assert load.accounts == (Account("dep-32", "gers"),)
    assert load.problems == ()


def test_cells_are_not_trimmed_into_validity(tmp_path: Path) -> None:
    path = write(tmp_path, "territory_id,handle,name_in_source\ndep-32, @gers,Gers\ndep-75 ,x,P\n")
    load = load_accounts(path, known_territories=KNOWN)
    assert load.accounts == ()
    assert load.problems[0].reason == "contains a space"
    assert load.problems[1].reason.startswith("malformed territory id")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "id,handle\ndep-32,gers\n"])
def test_a_file_without_the_header_is_not_an_accounts_file(tmp_path: Path, text: str) -> None:
    with pytest.raises(ValueError, match="header"):
        load_accounts(write(tmp_path, text), known_territories=KNOWN)


def test_account_records_are_valid_obs_accounts_events() -> None:
    load = load_accounts()
    records = account_records(load, "2021-07-01T00:00:00Z")
    assert [(r["id"], r["handle"]) for r in records] == [tuple(a) for a in SEED_ACCOUNTS]
    for record in records:
        assert AccountRecord.model_validate(record).simulated is False
        assert record["changed_at"] == "2021-07-01T00:00:00Z"
        assert record["event_id"] == compute_event_id(record)
