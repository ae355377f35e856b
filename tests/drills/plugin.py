"""The drills' pytest plugin: the `drill` fixture (a Verdict, and progress lines shown while
the drill runs, through pytest's capture), each verdict's line when its drill ends, and the
summary table at the end of the run (also written to test-artifacts/drills.md).

Every test marked `drills` gets a row: those that fill a `drill` verdict with their figures,
the others (older scenarios asserting their own figures) with their outcome and duration."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.drills.verdict import Verdict, table

_VERDICTS = pytest.StashKey[list[Verdict]]()
_ARTIFACT = Path("test-artifacts") / "drills.md"


class Drill(Verdict):
    """A Verdict that can also show progress as the drill goes."""

    __slots__ = ("_started", "_write")

    def __init__(self, name: str, write: Any) -> None:
        super().__init__(name)
        self._write = write
        self._started = time.monotonic()

    def progress(self, what: str) -> None:
        """A line on the terminal now, with the time since the drill started."""
        self._write(f"  [{self.drill} +{time.monotonic() - self._started:6.1f} s] {what}")


def _write_line(config: pytest.Config) -> Any:
    """Write a line on the terminal, past pytest's output capture (progress shows live)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        if reporter is None:
            return
        if capture is None:
            reporter.write_line(line)
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)

    return write


@pytest.fixture
def drill(request: pytest.FixtureRequest) -> Iterator[Drill]:
    """The verdict of this drill; it is printed and kept for the summary when it ends."""
    name = request.node.name.removeprefix("test_drill_").removeprefix("test_")
    verdict = Drill(name, _write_line(request.config))
    request.node.stash[_VERDICTS] = [verdict]
    yield verdict


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_VERDICTS] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if item.get_closest_marker("drills") is None or (
        report.when != "call" and not (report.when == "setup" and report.failed)
    ):
        return report
    own = item.stash.get(_VERDICTS, None)
    verdict = own[0] if own else Verdict(item.name.removeprefix("test_"))
    if not own:
        verdict.figures["took"] = f"{report.duration:.0f} s"
    if report.failed:
        message = str(call.excinfo.value) if call.excinfo else "failed"
        verdict.error = message.splitlines()[0][:200] if message else "failed"
    item.config.stash[_VERDICTS].append(verdict)
    _write_line(item.config)(verdict.line())
    if own and not verdict.exact and not report.failed:
        # A drill whose figures are not exact fails, even if it asserted nothing else.
        report.outcome = "failed"
        report.longrepr = f"drill not exact: {verdict.line()}"
    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    verdicts = config.stash.get(_VERDICTS, [])
    if not verdicts:
        return
    summary = table(verdicts)
    terminalreporter.section("drills")
    terminalreporter.write_line(summary)
    _ARTIFACT.parent.mkdir(exist_ok=True)
    _ARTIFACT.write_text(f"# Drills, {time.strftime('%Y-%m-%d %H:%M')}\n\n{summary}\n")
