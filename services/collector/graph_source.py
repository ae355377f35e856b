"""The Graph collector loop: schedule (stalest first), observe under budget, spool snapshots.

Wires the pure policy (`Schedule`) to the client (`GraphClient`, whose `BudgetPool` grants
every call) and to the spool (`submit`). An account is taken only when a worker is free;
the call itself waits for the budget, so the budget is never exceeded however the work
grows, and the accounts are served stalest first. The handles to observe come from a
callable (the `obs.accounts.v1` follower at run time) and are re-read whenever it changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from services.collector import metrics as m
from services.collector.budget import NoUsableToken
from services.collector.graph import GraphClient, Observation
from services.collector.progress import NullProgress, Progress
from services.collector.scheduler import Schedule
from services.collector.spool import SpoolInterrupted

log = logging.getLogger("collector.graph")
POLL_SECONDS = 0.2
SAVE_EVERY_SECONDS = 5.0
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
        state_path: Path | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.client = client
        self.schedule = schedule
        self.handles = handles
        self.submit = submit
        self.concurrency = concurrency
        self.version = version
        self.clock = clock
        self.state_path = state_path
        self.progress = progress or NullProgress()
        self.report = GraphReport()
        self._seen_version: int | None = None
        self._saved_state = self._load_state()
        self._dirty = False
        self._last_save = time.monotonic()

    # --- the loop --------------------------------------------------------------------------
    async def run(self, stop: threading.Event, *, once: bool = False) -> GraphReport:
        """Observe until `stop` (with `once`: every account due at the start, then return)."""
        self._sync(force=True)
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
                self._save_state()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._save_state(force=True)
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
        self._dirty = True
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
        if added and self._saved_state:
            self.schedule.restore(self._saved_state)
        if added or removed:
            log.info(
                "graph: %d account(s) to observe (%d new, %d dropped)",
                len(self.schedule),
                len(added),
                len(removed),
            )
        m.ACCOUNTS_SCHEDULED.set(len(self.schedule))

    # --- state across restarts -------------------------------------------------------------
    def _load_state(self) -> dict[str, Any]:
        if self.state_path is None:
            return {}
        try:
            state = orjson.loads(self.state_path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return {}
        return state if isinstance(state, dict) else {}

    def _save_state(self, *, force: bool = False) -> None:
        if self.state_path is None or not self._dirty:
            return
        if not force and time.monotonic() - self._last_save < SAVE_EVERY_SECONDS:
            return
        state = self.schedule.to_json()
        kept = self._saved_state.get("accounts", {}) if self._saved_state else {}
        state["accounts"] = {**kept, **state["accounts"]}
        self._saved_state = state
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(state))
        os.replace(tmp, self.state_path)
        self._dirty = False
        self._last_save = time.monotonic()
