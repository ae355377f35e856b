"""A drill's verdict: what was sent, applied, dead-lettered, lost and doubled, how long the
stack took to recover, whether the standings equal `replay --batch`'s; exact or not.

Pure: the plugin (tests/drills/plugin.py) prints the lines and the table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

COLUMNS: Final = (
    "drill",
    "verdict",
    "sent",
    "applied",
    "dead-lettered",
    "lost",
    "doubled",
    "recovered in",
    "= replay --batch",
    "figures",
)


@dataclass(slots=True)
class Verdict:
    """Filled by a drill as it runs; a field left None does not apply to the drill."""

    drill: str
    sent: int | None = None
    applied: int | None = None
    dead_lettered: int | None = None
    lost: int | None = None
    doubled: int | None = None
    recover_seconds: float | None = None
    equal_to_batch: bool | None = None
    figures: dict[str, str] = field(default_factory=dict)  # other measures, e.g. p99
    failures: list[str] = field(default_factory=list)  # what was not exact, in words
    error: str | None = None  # the drill stopped on an error (its test failed)

    def expect(self, condition: bool, failure: str) -> None:
        """Record a failure unless `condition` holds (the drill goes on to report)."""
        if not condition:
            self.failures.append(failure)

    @property
    def exact(self) -> bool:
        return (
            self.error is None
            and not self.failures
            and self.lost in (None, 0)
            and self.doubled in (None, 0)
            and self.equal_to_batch is not False
        )

    def cells(self) -> list[str]:
        def count(value: int | None) -> str:
            return "—" if value is None else f"{value:,}"

        return [
            self.drill,
            "exact" if self.exact else "NOT EXACT",
            count(self.sent),
            count(self.applied),
            count(self.dead_lettered),
            count(self.lost),
            count(self.doubled),
            "—" if self.recover_seconds is None else f"{self.recover_seconds:.1f} s",
            {None: "—", True: "yes", False: "no"}[self.equal_to_batch],
            "; ".join(
                [f"{k} {v}" for k, v in self.figures.items()]
                + self.failures
                + ([f"error: {self.error}"] if self.error else [])
            )
            or "—",
        ]

    def line(self) -> str:
        """`DRILL <name>: exact | NOT EXACT — sent … applied … …`: one line a person reads."""
        cells = dict(zip(COLUMNS, self.cells(), strict=True))
        parts = [f"{k} {v}" for k, v in cells.items() if k not in ("drill", "verdict") and v != "—"]
        return f"DRILL {self.drill}: {cells['verdict']} — " + ", ".join(parts)


def table(verdicts: list[Verdict]) -> str:
    """The summary: a Markdown table, one row per drill, and a last line."""
    rows = [list(COLUMNS), ["---"] * len(COLUMNS)] + [v.cells() for v in verdicts]
    lines = ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    exact = sum(v.exact for v in verdicts)
    lines.append("")
    lines.append(f"{exact} of {len(verdicts)} drills exact.")
    return "\n".join(lines)
