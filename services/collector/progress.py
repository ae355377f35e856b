"""How a collector run reports progress: the CLI shows a bar, the service shows nothing."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """A progress display: one phase at a time."""

    def begin(self, description: str, total: float | None = None) -> None:
        """Start a phase (`total` None: unknown, a spinner)."""

    def advance(self, amount: float = 1.0) -> None:
        """Count `amount` more units of the current phase."""

    def update(self, completed: float) -> None:
        """Set the units completed in the current phase."""

    def note(self, message: str) -> None:
        """Say something about the run (printed above the bar)."""


class NullProgress:
    """Reports nothing (the service, logging-only runs)."""

    def begin(self, description: str, total: float | None = None) -> None:
        return None

    def advance(self, amount: float = 1.0) -> None:
        return None

    def update(self, completed: float) -> None:
        return None

    def note(self, message: str) -> None:
        return None
