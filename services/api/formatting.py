"""How the public pages write numbers, months, dates and ranks in French (pure functions)."""

from __future__ import annotations

from typing import Final

from services.common.clock import PARIS, parse_timestamp

MONTHS: Final = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
# The five indicators as the pages name and explain them.
INDICATOR_LABELS: Final = {
    "engagement": "Engagement",
    "reach": "Portée",
    "activity": "Activité",
    "audience": "Audience",
    "ratio": "Ratio abonnés / abonnements",
}
INDICATOR_HELP: Final = {
    "engagement": "Interactions (j’aime et commentaires) par publication, rapportées aux "
    "abonnés, sur 30 jours.",
    "reach": "Abonnés rapportés à la population du territoire.",
    "activity": "Publications par jour sur 30 jours.",
    "audience": "Nombre d’abonnés.",
    "ratio": "Abonnés divisés par abonnements.",
}
THIN_SPACE: Final = "\u202f"  # French thousands separator and space before % (narrow, no-break)


def fr_int(value: int | float | None) -> str:
    """`15000` → `15 000` (narrow no-break spaces)."""
    if value is None:
        return "—"
    return f"{round(value):,}".replace(",", THIN_SPACE)


def fr_decimal(value: float | None, digits: int = 2) -> str:
    """`63.0373` → `63,04`."""
    if value is None:
        return "—"
    text = f"{value:,.{digits}f}"
    return text.replace(",", THIN_SPACE).replace(".", ",")


def fr_percent(value: float | None, digits: int = 2) -> str:
    """A fraction as a percentage: `0.03` → `3,00 %`."""
    if value is None:
        return "—"
    return f"{fr_decimal(value * 100, digits)}{THIN_SPACE}%"


def fr_month(edition: str | None) -> str:
    """`2021-06` → `juin 2021`."""
    if not edition:
        return ""
    year, month = edition.split("-")
    return f"{MONTHS[int(month) - 1]} {year}"


def fr_month_short(edition: str) -> str:
    """`2021-06` → `06/21` (chart axes)."""
    year, month = edition.split("-")
    return f"{month}/{year[2:]}"


def fr_datetime(timestamp: str | None) -> str:
    """`2021-06-30T06:00:00Z` → `30 juin 2021 à 08 h 00` (heure de Paris)."""
    if not timestamp:
        return "—"
    moment = parse_timestamp(timestamp).astimezone(PARIS)
    day = "1er" if moment.day == 1 else str(moment.day)
    return f"{day} {MONTHS[moment.month - 1]} {moment.year} à {moment:%H} h {moment:%M}"


def fr_date(timestamp: str | None) -> str:
    """`2021-06-30T06:00:00Z` → `30 juin 2021` (Paris calendar)."""
    if not timestamp:
        return "—"
    moment = parse_timestamp(timestamp).astimezone(PARIS)
    day = "1er" if moment.day == 1 else str(moment.day)
    return f"{day} {MONTHS[moment.month - 1]} {moment.year}"


def fr_day(day: str) -> str:
    """`2026-03-02` (a calendar date) → `2 mars 2026`; `fr_day_short` → `2 mars`."""
    year, month, number = int(day[:4]), int(day[5:7]), int(day[8:10])
    return f"{'1er' if number == 1 else number} {MONTHS[month - 1]} {year}"


def fr_day_short(day: str) -> str:
    return fr_day(day).rsplit(" ", 1)[0]


def fr_ordinal(rank: int | None) -> str:
    """`1` → `1er`, `2` → `2e`."""
    if rank is None:
        return "—"
    return "1er" if rank == 1 else f"{rank}e"


def fr_movement(movement: int | None) -> tuple[str, str, str]:
    """(css class, symbol, spoken text) of a movement in places."""
    if movement is None:
        return "new", "•", "nouveau dans le classement"
    if movement > 0:
        plural = "s" if movement > 1 else ""
        return "up", f"▲ {movement}", f"gagne {movement} place{plural}"
    if movement < 0:
        plural = "s" if movement < -1 else ""
        return "down", f"▼ {-movement}", f"perd {-movement} place{plural}"
    return "same", "=", "même rang"
