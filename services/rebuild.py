"""`observatoire rebuild` without downtime: a new generation of the view beside the live one.

1. A new generation `N` is prepared (its leftovers dropped, its layout claimed, its geography
   written) and announced as `next` in the generation pointer: from their next batch on, the
   live scorers apply every batch to the current generation and to `N`.
2. The live publisher is asked to hold (services/publisher/hold.py): it finishes the writes
   under way and says up to which offset it applied each input partition.
3. Both parts of `N` are built, `obs.metrics.v1` read once for both by processes sharing its
   partitions (services/common/rebuild.py). The scorer's part from the topics up to their end
   offsets, read after the announcement: every record before them is applied by the rebuild,
   every record after them by the live scorers, and both write through the same idempotent
   compare-and-set scripts. The publisher's part from its own topics (to their ends: nothing
   is produced while it holds) and from `obs.accounts.v1` / `obs.metrics.v1` exactly up to
   the offsets it answered (never past the end offsets, read after its answer).
4. Readers are switched to `N` (`current`); the publisher resumes on `N`, the scorers write
   `N` only. No category's `as_of` goes backwards: `N` holds every record the old one does.
5. After `rebuild_grace_seconds` (reads under way finish) the old generation is dropped.

With no live service the same steps rebuild the view offline. See docs/redis.md
("Generations") and docs/operations.md ("Rebuilding the view").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from redis.asyncio import Redis

from services.common.contracts import CATEGORY_IDS, TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.rebuild import RebuildTimes, rebuild_parts
from services.common.settings import Settings
from services.common.territories import Registry, load_registry
from services.common.view import generations as gen
from services.common.view.client import redis_client
from services.common.view.keys import ViewKeys
from services.common.view.layout import claim_view
from services.common.view.watermark import read_as_of
from services.common.view.wipe import drop_generation
from services.publisher.rebuild import PublisherRebuild, PublisherRebuildReport
from services.publisher.store.lease import LeaseStore
from services.scorer.rebuild import RebuildReport, ScorerRebuild
from services.scorer.store import ScorerStore, geo_fingerprint

log = logging.getLogger("rebuild")
HOLD_ANSWER_SECONDS = 30.0  # a live publisher answers a hold within this (it polls every 0.5 s)
NO_PUBLISHER_SECONDS = 2.0  # without a lease, how long a publisher starting now may answer
AS_OF_WAIT_SECONDS = 10.0  # longest wait for the new generation to catch up at the switch
LINK_INPUTS = (TOPIC_ACCOUNTS, TOPIC_METRICS)  # what the publisher's link status derives from


class RebuildRefused(RuntimeError):
    """A rebuild cannot start or cannot go on (the message says why and what to do)."""


@dataclass(slots=True)
class ViewRebuildReport:
    """What a whole rebuild did."""

    generation: int = 0
    previous: int = 0
    scorer: RebuildReport = field(default_factory=RebuildReport)
    publisher: PublisherRebuildReport = field(default_factory=PublisherRebuildReport)
    publisher_held: bool = False
    dropped: int = 0  # keys of the previous generation dropped
    as_of: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # old, new
    parts: RebuildTimes = field(default_factory=RebuildTimes)  # the two parts' phases
    seconds: float = 0.0


Step = Callable[[str], None]


async def rebuild_view(
    settings: Settings,
    *,
    registry: Registry | None = None,
    progress: Callable[[str, str, int], None] | None = None,
    step: Step | None = None,
    workers: int | None = None,
    restart: bool = False,
    grace_seconds: float | None = None,
) -> ViewRebuildReport:
    """Build a new generation of the view from the topics and switch readers to it.

    `restart` gives up a rebuild left unfinished (its generation is dropped first); without
    it an unfinished one refuses the start (two rebuilds must not race)."""
    say = step or (lambda _: None)
    report = ViewRebuildReport()
    started = time.perf_counter()
    registry = registry or load_registry()
    grace = settings.rebuild_grace_seconds if grace_seconds is None else grace_seconds
    redis = redis_client(settings)
    try:
        pointer = await gen.read_generations(redis)
        await _settle_leftovers(redis, pointer, restart, say)
        pointer = await gen.read_generations(redis)
        report.previous = pointer.current
        new = ViewKeys(max(pointer.current, pointer.next or 0, pointer.retired or 0) + 1)
        report.generation = new.generation
        say(f"preparing generation {new.generation} beside generation {pointer.current}")
        await prepare_generation(settings, redis, new, registry)
        if not await gen.begin_next(redis, new.generation):
            raise RebuildRefused("another rebuild started meanwhile")
        try:
            say("asking the live publisher to hold")
            until = await _hold_publisher(settings, redis, new.generation, report)
            say(
                "scorer's and publisher's parts, obs.metrics.v1 read once for both (the live "
                "scorers write both generations meanwhile)"
            )
            scorer = ScorerRebuild(
                settings, new, registry=registry, progress=_part(progress, "scorer")
            )
            publisher = PublisherRebuild(
                settings,
                new,
                registry=registry,
                progress=_part(progress, "publisher"),
                until=until,
            )
            report.parts = await rebuild_parts(
                settings, [scorer, publisher], rk=new, workers=workers
            )
            report.scorer, report.publisher = scorer.report, publisher.report
            report.scorer.largest_rss_mb = report.parts.largest_rss_mb
            report.scorer.seconds = report.parts.done[scorer.name]
            report.publisher.seconds = report.parts.done[publisher.name]
            report.as_of = await _caught_up(redis, ViewKeys(pointer.current), new)
            say(f"switching readers to generation {new.generation}")
            await gen.switch(redis, new.generation, grace)
        except BaseException:
            await gen.abandon(redis, new.generation)
            raise
        say(f"keeping generation {pointer.current} {grace:g} s for the reads under way")
        await asyncio.sleep(grace)
        report.dropped = await drop_generation(redis, ViewKeys(pointer.current))
        await gen.forget_retired(redis, pointer.current)
        say(f"dropped generation {pointer.current} ({report.dropped} keys)")
    finally:
        await redis.aclose()
    report.seconds = time.perf_counter() - started
    return report


def _part(
    progress: Callable[[str, str, int], None] | None, part: str
) -> Callable[[str, int], None] | None:
    """`progress(part, topic, records)` as one part's `progress(topic, records)`."""
    if progress is None:
        return None
    return lambda topic, records: progress(part, topic, records)


async def _caught_up(
    redis: Redis, old: ViewKeys, new: ViewKeys
) -> dict[str, tuple[str | None, str | None]]:
    """Each category's `as_of` in both generations, once the new one is nowhere behind: the
    live scorers write the current generation first, so a batch may be in the old one and
    not yet in the new for a moment (waits at most AS_OF_WAIT_SECONDS, then says so)."""
    deadline = time.monotonic() + AS_OF_WAIT_SECONDS
    while True:
        pairs = {
            category: (
                await read_as_of(redis, old, category),
                await read_as_of(redis, new, category),
            )
            for category in CATEGORY_IDS
        }
        behind = [c for c, (was, now) in pairs.items() if was is not None and (now or "") < was]
        if not behind or time.monotonic() > deadline:
            if behind:
                log.warning(
                    "generation %d still behind in %s at the switch", new.generation, behind
                )
            return pairs
        await asyncio.sleep(0.05)


async def prepare_generation(
    settings: Settings, redis: Redis, rk: ViewKeys, registry: Registry
) -> None:
    """An empty generation, its layout claimed and its geography written, ready to build."""
    await drop_generation(redis, rk)
    await claim_view(redis, rk, where=settings.redis_where)
    await ScorerStore(redis, rk).views.ensure_geo(registry, geo_fingerprint(registry))


async def _settle_leftovers(
    redis: Redis, pointer: gen.Generations, restart: bool, say: Step
) -> None:
    """An unfinished rebuild's generation refuses the start (or is dropped with `restart`); a
    generation switched away from earlier and never dropped is dropped now."""
    if pointer.next is not None:
        if not restart:
            raise RebuildRefused(
                f"a rebuild of generation {pointer.next} is under way or was interrupted; if "
                "none is running, run `observatoire rebuild --restart`"
            )
        say(f"giving up the unfinished generation {pointer.next}")
        await gen.abandon(redis, pointer.next)
        await drop_generation(redis, ViewKeys(pointer.next))
    if pointer.retired is not None and pointer.retired != pointer.current:
        if pointer.retire_after is not None and pointer.retire_after > time.time():
            await asyncio.sleep(pointer.retire_after - time.time())
        say(f"dropping generation {pointer.retired}, switched away from earlier")
        await drop_generation(redis, ViewKeys(pointer.retired))
        await gen.forget_retired(redis, pointer.retired)


async def _hold_publisher(
    settings: Settings, redis: Redis, generation: int, report: ViewRebuildReport
) -> dict[str, dict[int, int]] | None:
    """Ask the live publisher to hold; the offsets up to which it applied the inputs of link
    status (None: no publisher answered and none holds the lease: read them to their ends)."""
    await gen.request_hold(redis, generation)
    lease = await LeaseStore(redis).holder() is not None
    deadline = time.monotonic() + (HOLD_ANSWER_SECONDS if lease else NO_PUBLISHER_SECONDS)
    while time.monotonic() < deadline:
        held = (await gen.read_generations(redis)).held
        if held is not None:
            report.publisher_held = True
            return _until(settings, held.get("positions", {}))
        await asyncio.sleep(0.1)
    if lease:
        raise RebuildRefused(
            f"the live publisher did not hold within {HOLD_ANSWER_SECONDS:g} s (is it a "
            "version without online rebuilds? stop it and run the rebuild again)"
        )
    return None


def _until(settings: Settings, positions: Mapping[str, int]) -> dict[str, dict[int, int]]:
    """Per input topic and partition, where the held publisher resumes (it reports, per
    partition, the offset past what it applied, or its group's committed offset where it
    applied nothing since it started); a partition it does not report is read to its end."""
    until: dict[str, dict[int, int]] = {}
    for topic in LINK_INPUTS:
        name = settings.topic(topic)
        until[topic] = {
            int(partition): offset
            for key, offset in positions.items()
            for held_topic, _, partition in [key.rpartition(":")]
            if held_topic == name
        }
    return until
