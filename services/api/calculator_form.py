"""The calculator form of `/methodologie`: its five fields, reading what a reader typed (French
digit grouping welcome), the French message next to a field that cannot be read, and the lines
the page shows. Pure; the score itself is services/common/calculator.py's."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from services.api.formatting import INDICATOR_LABELS, THIN_SPACE, fr_decimal, fr_int
from services.common.calculator import MAX_RECENT_POSTS, score_totals
from services.common.methodology import WEIGHTS, Score


@dataclass(frozen=True, slots=True)
class CalculatorField:
    """One input: its query parameter, the argument of `score_totals` it feeds, its label,
    its hint, its largest accepted value (and why), the worked example's value."""

    name: str
    argument: str
    label: str
    hint: str
    maximum: int
    too_large: str
    example: int


# The worked example of ARCHITECTURE.md and docs/methodology.md (section 5): the form's default.
FIELDS: Final = (
    CalculatorField(
        "abonnes",
        "followers",
        "Abonnés",
        "Nombre d’abonnés (followers) du compte.",
        1_000_000_000,
        "au plus 1 000 000 000 : aucun compte Instagram n’en a autant",
        15_000,
    ),
    CalculatorField(
        "abonnements",
        "follows",
        "Abonnements",
        "Nombre de comptes que le compte suit.",
        1_000_000_000,
        "au plus 1 000 000 000",
        300,
    ),
    CalculatorField(
        "publications",
        "posts",
        "Publications sur 30 jours",
        f"n : publications des 30 derniers jours (au plus {MAX_RECENT_POSTS}).",
        MAX_RECENT_POSTS,
        f"au plus {MAX_RECENT_POSTS} : un relevé retient au plus {MAX_RECENT_POSTS} publications",
        20,
    ),
    CalculatorField(
        "interactions",
        "interactions",
        "Interactions sur ces publications",
        "J’aime et commentaires reçus par ces publications, en tout.",
        1_000_000_000_000,
        "au plus 1 000 000 000 000",
        9_000,
    ),
    CalculatorField(
        "population",
        "population",
        "Population du territoire",
        "Nombre d’habitants (0 : portée non définie).",
        100_000_000,
        "au plus 100 000 000 : aucun territoire français n’est aussi peuplé",
        200_000,
    ),
)
FIELD_NAMES: Final = tuple(f.name for f in FIELDS)
EXAMPLE: Final = {f.name: str(f.example) for f in FIELDS}

# Spaces a reader may group digits with: ordinary, no-break, narrow no-break, thin.
_GROUPING: Final = re.compile("[ \u00a0\u202f\u2009]")
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
_DECIMAL: Final = re.compile(r"[+-]?[0-9]*[.,][0-9]*")
_MAX_LENGTH: Final = 40  # characters read at most; longer is never a count we accept


@dataclass(frozen=True, slots=True)
class FormReading:
    """What the form says: the values as typed (to show them again), each field's error, and
    the counts when every field could be read."""

    typed: dict[str, str]
    errors: dict[str, str]
    values: dict[str, int] | None


def read_count(text: str | None, field: CalculatorField) -> tuple[int | None, str | None]:
    """A field's value, or the French message saying why it cannot be used."""
    if text is None or not text.strip():
        return None, "Indiquez un nombre."
    if len(text) > _MAX_LENGTH:
        return None, f"Nombre trop grand ({field.too_large})."
    compact = _GROUPING.sub("", text.strip())
    if _INTEGER.fullmatch(compact) is None:
        if _DECIMAL.fullmatch(compact) and any(c in "0123456789" for c in compact):
            return None, "Indiquez un nombre entier, sans virgule."
        return None, "Ce n’est pas un nombre : indiquez des chiffres (par exemple 15 000)."
    value = int(compact)
    if value < 0:
        return None, "Indiquez un nombre positif ou nul."
    if value > field.maximum:
        return None, f"Nombre trop grand ({field.too_large})."
    return value, None


def read_form(query: Mapping[str, str | None]) -> FormReading:
    """Read the five fields; a field missing or unreadable gets its message. Interactions
    need a post to carry them."""
    typed = {f.name: (query.get(f.name) or "")[:_MAX_LENGTH] for f in FIELDS}
    values: dict[str, int] = {}
    errors: dict[str, str] = {}
    for f in FIELDS:
        value, error = read_count(query.get(f.name), f)
        if error is not None:
            errors[f.name] = error
        elif value is not None:
            values[f.name] = value
    if values.get("publications") == 0 and values.get("interactions", 0) > 0:
        errors["interactions"] = (
            "Sans publication, il n’y a pas d’interaction : indiquez 0, ou le nombre de "
            "publications."
        )
    return FormReading(typed, errors, None if errors else values)


def calculate(values: Mapping[str, int]) -> Score:
    """The score of the form's counts (read by `read_form`)."""
    return score_totals(**{f.argument: values[f.name] for f in FIELDS})


def _percent(value: float, digits: int = 4) -> str:
    return f"{fr_decimal(value * 100, digits)}{THIN_SPACE}%"


def raw_value_text(indicator: str, value: float | int | None) -> str:
    """An indicator's raw value as the calculator shows it (four decimals where it has any)."""
    if value is None:
        if indicator == "engagement":
            return "non défini (aucune publication ou aucun abonné)"
        return "non définie (population nulle)"
    if indicator == "engagement":
        return f"E = {_percent(value)} des abonnés par publication"
    if indicator == "reach":
        return f"R = {_percent(value)} de la population"
    if indicator == "activity":
        return f"A = {fr_decimal(value, 4)} publication par jour"
    if indicator == "audience":
        return f"F = {fr_int(value)} abonnés"
    return f"Q = {fr_decimal(value, 4)} abonnés par abonnement"


def result_lines(score: Score) -> list[dict[str, Any]]:
    """The five lines of the result: label, raw value, points (4 decimals and unrounded),
    weight."""
    indicators = score.indicators_dict()
    return [
        {
            "indicator": name,
            "label": INDICATOR_LABELS[name],
            "value": raw_value_text(name, indicators[name]["value"]),
            "points": indicators[name]["points"],
            "points_text": fr_decimal(indicators[name]["points"], 4),
            "weight": weight,
        }
        for name, weight in WEIGHTS.items()
    ]
