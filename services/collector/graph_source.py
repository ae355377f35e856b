"""The Graph collector loop: schedule (stalest first), observe under budget, spool snapshots.

Wires the pure policy (`Schedule`) to the client (`GraphClient`, whose `BudgetPool` grants
every call) and to the spool (`submit`). An account is taken only when a worker is free;
the call itself waits for the budget, so the budget is never exceeded however the work
grows, and the accounts are served stalest first. The handles to observe come from a
callable (the `obs.accounts.v1` follower at run time) and are re-read whenever it changes.
What was observed before this process started (`recent`, read from `obs.metrics.v1` and the
spool by services/collector/recent_attempts.py) seeds the schedule of every handle, including
one that appears later; nothing of the schedule is written anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.collector import metrics as m
from services.collector.budget import NoUsableToken
from services.collector.graph import GraphClient, Observation
from services.collector.progress import NullProgress, Progress
from services.collector.scheduler import Attempt, Schedule
from services.collector.spool import SpoolInterrupted

log = logging.getLogger("collector.graph")
POLL_SECONDS = 0.2
NO_TOKEN_REMINDER_SECONDS = 600.0


@dataclass(slots=True)
class GraphReport:
    """What a Graph run did."""

    observed: Counter[str] = field(default_factory=Counter)  # by snapshot status
    calls: int = 0
    no_usable_token: str | None = None  # the error, when every token was rejected


class GraphCollector:
    """Observes the scheduled accounts with a GraphClient and hands the snapshots to `submit`."""

    def __init__(
        self,
        client: GraphClient,
        schedule: Schedule,
        *,
        handles: Callable[[], Iterable[str]],
        submit: Callable[[list[dict[str, Any]]], object],
        concurrency: int = 4,
        version: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.time,
        recent: Mapping[str, Attempt] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.client = client
        self.schedule = schedule
        self.handles = handles
        self.submit = submit
        self.concurrency = concurrency
        self.version = version
        self.clock = clock
        self.recent = recent or {}
        self.progress = progress or NullProgress()
        self.report = GraphReport()
        self._seen_version: int | None = None

    # --- the loop --------------------------------------------------------------------------
    async def run(self, stop: threading.Event, *, once: bool = False) -> GraphReport:
        """Observe until `stop` (with `once`: every account due at the start, then return)."""
        self._sync(force=True)
        due = len(self.schedule.due(self.clock()))
        log.info(
            "graph: %d of %d account(s) observed recently (obs.metrics.v1 and the spool), "
            "not due yet; %d due now",
            len(self.schedule) - due,
            len(self.schedule),
            due,
        )
        round_of: set[str] | None = None
        if once:
            round_of = set(self.schedule.due(self.clock()))
            self.progress.begin("graph: accounts observed", total=len(round_of))
            log.info("graph: one round over %d account(s)", len(round_of))
        tasks: set[asyncio.Task[None]] = set()
        next_reminder = 0.0
        try:
            while not stop.is_set():
                if not once:
                    self._sync()
                if self.report.no_usable_token is None:
                    while len(tasks) < self.concurrency:
                        handle = self.schedule.take(self.clock(), round_of)
                        if handle is None:
                            break
                        if round_of is not None:
                            round_of.discard(handle)  # once: each account at most once
                        tasks.add(asyncio.create_task(self._observe(handle)))
                m.ACCOUNTS_DUE.set(len(self.schedule.due(self.clock())))
                if once and not tasks:
                    break
                if tasks:
                    done, tasks = await asyncio.wait(
                        tasks, timeout=POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in done:
                        self._collect(task)
                else:
                    await asyncio.sleep(POLL_SECONDS)
                if self.report.no_usable_token is not None:
                    if once and not tasks:
                        break
                    if time.monotonic() >= next_reminder:
                        log.error(
                            "graph: %s; nothing is collected until the collector restarts "
                            "with valid tokens",
                            self.report.no_usable_token,
                        )
                        next_reminder = time.monotonic() + NO_TOKEN_REMINDER_SECONDS
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        return self.report

    def _collect(self, task: asyncio.Task[None]) -> None:
        error = task.exception()
        if isinstance(error, NoUsableToken):
            self.report.no_usable_token = str(error)
        elif isinstance(error, SpoolInterrupted):
            pass  # stopping while the spool was full: observed again by the next run
        elif error is not None:
            log.error("graph: an observation failed unexpectedly: %r", error)

    async def _observe(self, handle: str) -> None:
        try:
            observation: Observation = await self.client.observe(handle)
            await asyncio.to_thread(self.submit, [observation.event])
        except BaseException:
            self.schedule.release(handle)  # not observed: due again as before
            raise
        self.schedule.record(handle, self.clock(), observation.status)
        self.report.observed[observation.status] += 1
        self.report.calls += observation.calls
        self.progress.advance()
        if observation.status == "not_found":
            log.info("graph: %s answered not_found (unknown, renamed or personal)", handle)

    # --- following the mapping -------------------------------------------------------------
    def _sync(self, *, force: bool = False) -> None:
        version = self.version() if self.version is not None else None
        if not force and version is not None and version == self._seen_version:
            return
        self._seen_version = version
        added, removed = self.schedule.sync(self.handles())
        if added and self.recent:
            self.schedule.restore(self.recent)
        if added or removed:
            log.info(
                "graph: %d account(s) to observe (%d new, %d dropped)",
                len(self.schedule),
                len(added),
                len(removed),
            )
        m.ACCOUNTS_SCHEDULED.set(len(self.schedule))
