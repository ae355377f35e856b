"""Operator commands (`obs.commands.v1`), each executed once, and the edition publication.

Every command is verified first (`CommandKeys.refusal`: signed with one of the publisher's
keys, over exactly its content): one that is not is answered `refused`, its reason starting
with `unauthenticated`, and changes nothing; a warning says so (never a key or a signature).

A command whose result is already recorded is skipped: results are recorded in Redis after
they are delivered to `obs.command-results.v1`, and at start the publisher copies into Redis
any result the topic holds beyond what Redis reflects (services/publisher/recovery.py), so a
crash between the two never executes a command twice.

Publishing a month (ARCHITECTURE "Editions"): check the rules (services/common/editions.py);
freeze the month in every category FIRST (per-category markers, which the scorer's write
scripts check atomically, then `obs:{meta}:frozen`); only then read the scorer's edition views,
which can no longer change; compute movement and streaks against the previous published
edition; produce every part and await them; store the published edition in Redis; and record
the month as published, last. An interrupted publication is simply executed again (the
command's offset was not committed): the frozen markers keep the first attempt's
`published_at`, so the parts come out identical (same keys, same ids).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final, Literal

import orjson

from services.common.clock import format_timestamp, utcnow
from services.common.commands.keys import CommandKeys
from services.common.commands.sender import Sender
from services.common.contracts import (
    CATEGORY_IDS,
    SCHEMA_VERSION,
    TOPIC_ACCOUNTS,
    TOPIC_COMMAND_RESULTS,
    TOPIC_EDITIONS,
)
from services.common.editions import (
    ALREADY_PUBLISHED,
    RankedEntry,
    auto_publish_candidate,
    auto_publish_due,
    edition_parts,
    edition_standings,
    publication_decision,
)
from services.common.events import (
    MAX_REASON_LENGTH,
    Command,
    PublishEditionArgs,
    SetAccountArgs,
    build_account_record,
    build_command,
    with_event_id,
)
from services.common.territories import Registry
from services.common.view.entries import decode_entry
from services.common.view.values import EditionRecord
from services.publisher import metrics as m
from services.publisher.store import PublisherStore

log = logging.getLogger("publisher.commands")
PUBLISHED: Final = "published"  # the start of a fresh publication's `done` reason


def command_result(
    command_id: str, status: Literal["done", "refused"], reason: str | None, at: str
) -> dict[str, Any]:
    """An `obs.command-results.v1` event with its id (the reason cut to 500 characters)."""
    if reason is not None and len(reason) > MAX_REASON_LENGTH:
        reason = reason[: MAX_REASON_LENGTH - 1] + "…"
    return with_event_id(
        {
            "schema_version": SCHEMA_VERSION,
            "command_id": command_id,
            "status": status,
            "reason": reason,
            "at": at,
        }
    )


class CommandExecutor:
    """Executes `set_account` and `publish_edition` commands once each."""

    def __init__(
        self,
        store: PublisherStore,
        send: Sender,
        registry: Registry,
        *,
        grace_hours: float,
        keys: CommandKeys,
    ) -> None:
        self.store = store
        self.send = send
        self.registry = registry
        self.grace_hours = grace_hours
        self.keys = keys
        self._unsigned_auto_told = False
        self._lock = asyncio.Lock()
        self._auto_requested: set[str] = set()

    async def execute(self, command: Command) -> dict[str, Any] | None:
        """Execute a command unless it already has a result; returns the new result."""
        async with self._lock:
            if await self.store.results.of(command.event_id) is not None:
                log.info("command %s already executed: skipped", command.event_id[:12])
                return None
            await self.store.fence.check_still_active()  # a zombie must not execute it again
            refusal = self.keys.refusal(command.to_dict())
            status: Literal["done", "refused"]
            reason: str | None
            if refusal is not None:
                status, reason = "refused", refusal
            elif isinstance(command.args, SetAccountArgs):
                status, reason = await self._set_account(command, command.args)
            else:
                assert isinstance(command.args, PublishEditionArgs)
                status, reason = await self._publish(command, command.args.edition)
            result = command_result(command.event_id, status, reason, format_timestamp(utcnow()))
            record = orjson.dumps(result)
            delivered = await self.send(TOPIC_COMMAND_RESULTS, command.event_id.encode(), record)
            await self.store.results.save(command.event_id, record)
            await self.store.offsets.advance(
                TOPIC_COMMAND_RESULTS, delivered.partition, delivered.offset + 1
            )
        m.COMMANDS.labels(command.command, status).inc()
        log.log(
            logging.INFO if refusal is None else logging.WARNING,  # a forgery, or a key mix-up
            "command %s %s (%s by %s): %s%s",
            command.event_id[:12],
            command.command,
            command.args.model_dump(),
            command.requested_by,
            status,
            f": {reason}" if reason else "",
        )
        return result

    # --- set_account -------------------------------------------------------------------------
    async def _set_account(
        self, command: Command, args: SetAccountArgs
    ) -> tuple[Literal["done", "refused"], str | None]:
        if args.id not in self.registry:
            return "refused", f"unknown territory {args.id}: no such id in the registry"
        # Always written, even when it looks unchanged: our view of the mapping may lag the
        # topic, and an identical record is harmless (the scorer ignores a mapping it has).
        record = build_account_record(
            territory_id=args.id, handle=args.handle, changed_at=command.requested_at
        )
        await self.send(TOPIC_ACCOUNTS, args.id.encode(), orjson.dumps(record))
        name = self.registry[args.id].name
        if args.handle is None:
            return "done", f"{args.id} ({name}) has no account from now on"
        return "done", f"{args.id} ({name}) uses @{args.handle} from now on"

    # --- publish_edition -----------------------------------------------------------------------
    async def _publish(
        self, command: Command, edition: str
    ) -> tuple[Literal["done", "refused"], str | None]:
        published = await self.store.editions.published()
        decision = publication_decision(
            edition,
            watermark=await self.store.editions.watermark(),
            grace_hours=self.grace_hours,
            published={month: record.published_at for month, record in published.items()},
            months_with_data=await self.store.editions.months_with_data(),
        )
        if decision.action == "refuse":
            return "refused", decision.reason
        if decision.action == "already_published":
            recorded = published[edition]
            if recorded.command_id == command.event_id:  # recorded, result lost: retold
                return "done", _published_reason(edition, recorded)
            return "done", decision.reason
        record = await self.publish(edition, command_id=command.event_id)
        return "done", _published_reason(edition, record)

    async def publish(self, edition: str, *, command_id: str | None) -> EditionRecord:
        """Freeze and publish a month (the rules already checked); returns its summary."""
        published_at = await self.store.editions.freeze(edition, format_timestamp(utcnow()))
        earlier = [month for month in await self.store.editions.published() if month < edition]
        previous_month = max(earlier, default=None)
        per_category: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        for category in CATEGORY_IDS:
            ranked = [
                self._ranked_entry(row.territory_id, row.entry, row.link_status)
                for row in await self.store.editions.read_edition_view(category, edition)
            ]
            previous = (
                None
                if previous_month is None
                else await self.store.editions.previous_edition(category, previous_month)
            )
            standings = edition_standings(ranked, previous)
            parts = edition_parts(
                category=category, edition=edition, published_at=published_at, standings=standings
            )
            per_category[category] = (standings, parts)
        deliveries = await asyncio.gather(
            *(
                self.send(
                    TOPIC_EDITIONS,
                    f"{category}:{edition}:{part['part']}".encode(),
                    orjson.dumps(part),
                )
                for category, (_, parts) in per_category.items()
                for part in parts
            )
        )
        for category, (standings, parts) in per_category.items():
            await self.store.editions.write_published(
                category, edition, published_at=published_at, parts=len(parts), standings=standings
            )
            m.EDITION_PARTS.labels(category).inc(len(parts))
        record = EditionRecord(
            published_at=published_at,
            command_id=command_id,
            categories={c: len(standings) for c, (standings, _) in per_category.items()},
        )
        await self.store.editions.record_published(edition, record)
        await self.store.editions.drop_edition_views([edition])
        for delivered in deliveries:
            await self.store.offsets.advance(
                TOPIC_EDITIONS, delivered.partition, delivered.offset + 1
            )
        m.EDITIONS_PUBLISHED.inc()
        return record

    def _ranked_entry(self, territory_id: str, raw: bytes, link: str | None) -> RankedEntry:
        """A stored edition entry with its score and breakdown (recomputed from the summary
        and the territory's population, as every reader of the views does)."""
        stored = decode_entry(raw)
        score = stored.score(self.registry[territory_id].population)
        entry = {
            "score": score.score,
            "observed_at": stored.summary.observed_at,
            "handle": stored.handle,
            "indicators": score.indicators_dict(),
        }
        return RankedEntry(territory_id, entry, link)

    # --- automatic publication -------------------------------------------------------------------
    async def due_auto_command(self, delay_hours: float) -> dict[str, Any] | None:
        """The `publish_edition` command automatic publication should request now, if any.

        Its `requested_at` is the month's due time in event time, so the command of a month
        is always the same event (same id): requesting it again after a restart is a no-op.
        Signed like every command; without a signing key none is requested (logged once).
        """
        if self.keys.signing is None:
            if not self._unsigned_auto_told:
                self._unsigned_auto_told = True
                log.warning(
                    "automatic publication is on but the publisher has no command key "
                    "(OBS_COMMAND_KEY) to sign its commands with: no edition is requested"
                )
            return None
        published = await self.store.editions.published()
        month = auto_publish_candidate(
            watermark=await self.store.editions.watermark(),
            delay_hours=delay_hours,
            grace_hours=self.grace_hours,
            published=published,
            months_with_data=await self.store.editions.months_with_data(),
        )
        if month is None:
            return None
        due = auto_publish_due(month, delay_hours=delay_hours, grace_hours=self.grace_hours)
        command = build_command(
            command="publish_edition",
            args={"edition": month},
            requested_by="auto",
            requested_at=format_timestamp(due),
            key=self.keys.signing,
        )
        if command["event_id"] in self._auto_requested:
            return None
        if await self.store.results.of(command["event_id"]) is not None:
            return None
        self._auto_requested.add(command["event_id"])
        return command


def _published_reason(edition: str, record: EditionRecord) -> str:
    ranked = sum(record.categories.values())
    filled = sum(1 for count in record.categories.values() if count)
    return (
        f"{PUBLISHED} {edition} at {record.published_at}: {ranked} ranked territories "
        f"in {filled} of {len(record.categories)} categories"
    )


__all__ = ["ALREADY_PUBLISHED", "PUBLISHED", "CommandExecutor", "command_result"]
