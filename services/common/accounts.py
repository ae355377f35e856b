"""The bundled accounts: which handle each territory uses, as listed in the seed article.

`data/accounts.csv` (header `territory_id,handle,name_in_source`, `#` comment lines) keeps the
handles exactly as the source printed them. Loading normalises each one and reports every row
it cannot use (malformed handle, malformed or unknown territory id, duplicate territory) with
its line number, then loads the rest: a bad row never stops the others, and nothing is fixed.
`observatoire topics create` turns the result into `obs.accounts.v1` records.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, NamedTuple

from services.common.events import TERRITORY_ID_PATTERN, build_account_record
from services.common.handles import InvalidHandle, normalise_handle

HEADER: Final = ("territory_id", "handle", "name_in_source")
_TERRITORY_ID: Final = re.compile(TERRITORY_ID_PATTERN)


class Account(NamedTuple):
    """A territory and the normalised handle it uses."""

    territory_id: str
    handle: str


@dataclass(frozen=True, slots=True)
class AccountProblem:
    """A row not loaded: its line in the file (1-based), what was written and why."""

    line: int
    territory_id: str
    raw: str  # the handle cell as written; the whole line when the column count is wrong
    reason: str


@dataclass(frozen=True, slots=True)
class AccountsLoad:
    """The usable accounts in file order and the rows that were not loaded."""

    accounts: tuple[Account, ...]
    problems: tuple[AccountProblem, ...]

    def handles_by_territory(self) -> dict[str, str]:
        """Territory id -> normalised handle."""
        return dict(self.accounts)


def bundled_accounts_path() -> Path:
    """Path of the accounts file shipped with the package."""
    return Path(__file__).resolve().parent / "data" / "accounts.csv"


def load_accounts(
    path: Path | str | None = None, *, known_territories: Container[str] | None = None
) -> AccountsLoad:
    """Load an accounts CSV (default: the bundled one), reporting the rows it cannot use.

    Territory ids are checked against `known_territories`, by default the territory
    registry when `services.common.territories` is installed. A missing or wrong header
    raises ValueError: that is not an accounts file at all.
    """
    source = Path(path) if path is not None else bundled_accounts_path()
    if known_territories is None:
        known_territories = _registry()
    lines = source.read_text(encoding="utf-8-sig").split("\n")
    accounts: list[Account] = []
    problems: list[AccountProblem] = []
    first_line_of: dict[str, int] = {}
    header_seen = False
    for number, raw_line in enumerate(lines, start=1):
        line = raw_line.removesuffix("\r")
        if not line.strip() or line.startswith("#"):
            continue
        cells = next(csv.reader([line]))
        if not header_seen:
            if tuple(cells) != HEADER:
                raise ValueError(f"{source}:{number}: expected the header {','.join(HEADER)}")
            header_seen = True
            continue
        if len(cells) != len(HEADER):
            problems.append(
                AccountProblem(
                    number, cells[0], line, f"expected {len(HEADER)} columns, found {len(cells)}"
                )
            )
            continue
        territory_id, raw_handle, _name_in_source = cells
        reason = _territory_problem(territory_id, known_territories, first_line_of)
        first_line_of.setdefault(territory_id, number)
        if reason is None:
            try:
                accounts.append(Account(territory_id, normalise_handle(raw_handle)))
                continue
            except InvalidHandle as invalid:
                reason = invalid.reason
        problems.append(AccountProblem(number, territory_id, raw_handle, reason))
    if not header_seen:
        raise ValueError(f"{source}: no header {','.join(HEADER)}")
    return AccountsLoad(tuple(accounts), tuple(problems))


def account_records(load: AccountsLoad, changed_at: str | datetime) -> list[dict[str, Any]]:
    """The `obs.accounts.v1` records (simulated=False, with event ids) of the loaded accounts."""
    return [
        build_account_record(territory_id=territory_id, handle=handle, changed_at=changed_at)
        for territory_id, handle in load.accounts
    ]


def _territory_problem(
    territory_id: str, known: Container[str] | None, first_line_of: dict[str, int]
) -> str | None:
    """Why this row's territory id cannot be used, or None."""
    if not _TERRITORY_ID.fullmatch(territory_id):
        return "malformed territory id (expected reg-, dep-, com- or epci- and a code)"
    if known is not None and territory_id not in known:
        return "unknown territory id"
    if territory_id in first_line_of:
        return f"duplicate territory id (first on line {first_line_of[territory_id]})"
    return None


def _registry() -> Container[str] | None:
    """The territory registry if its module is available (it is built concurrently)."""
    try:
        from services.common.territories import load_registry
    except ImportError:
        return None
    registry: Container[str] = load_registry()
    return registry
