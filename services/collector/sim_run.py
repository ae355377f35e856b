"""The `sim` source: replay the simulated world from a start time, then keep it going.

The simulated accounts are registered on `obs.accounts.v1` first, with their incidents
(dead links, renames) logged; then one round per `sim_step_hours` of event time produces
the account changes and the snapshots of that moment, catching up to now (as fast as the
broker takes it in demo mode) and then following the clock.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from services.collector.producer import SpooledProducer, metrics_key, territory_key
from services.collector.progress import Progress
from services.collector.simulator import SimulatedWorld
from services.common.accounts import load_accounts
from services.common.clock import PARIS, format_timestamp, parse_timestamp, utcnow
from services.common.contracts import TOPIC_ACCOUNTS, TOPIC_METRICS
from services.common.settings import Settings
from services.common.territories import load_registry

DEFAULT_HISTORY = timedelta(days=75)
DEMO_MONTHS = 3


def demo_start(now: datetime) -> datetime:
    """Midnight (Paris) on the first day of the month DEMO_MONTHS before `now`'s month."""
    local = now.astimezone(PARIS)
    month_index = local.year * 12 + local.month - 1 - DEMO_MONTHS
    first = datetime(month_index // 12, month_index % 12 + 1, 1, tzinfo=PARIS)
    return first.astimezone(now.tzinfo)


def simulated_world(settings: Settings, start: datetime) -> SimulatedWorld:
    """The world the simulator source produces, as configured."""
    real = {territory_id for territory_id, _ in load_accounts().accounts}
    return SimulatedWorld(
        load_registry(),
        seed=settings.sim_seed,
        real_handles=real,
        shares=settings.sim_shares,
        epoch=start,
        dead_links=settings.sim_dead_links,
        renames=settings.sim_renames,
    )


def run_sim(
    settings: Settings,
    producer: SpooledProducer,
    stop: threading.Event,
    once: bool,
    progress: Progress,
    log: logging.Logger,
) -> int:
    """Spool the simulated accounts, then round after round of snapshots; return the count."""
    now = utcnow()
    if settings.sim_start:
        start = parse_timestamp(settings.sim_start)
    else:
        start = demo_start(now) if settings.sim_demo else now - DEFAULT_HISTORY
    world = simulated_world(settings, start)
    spooled = producer.submit(
        TOPIC_ACCOUNTS,
        world.account_records(),
        key=territory_key,
        time_field="changed_at",
        stop=stop,
    )
    log.info(
        "simulator: %d simulated accounts registered (seed %d%s), replaying from %s",
        spooled,
        settings.sim_seed,
        ", demo mode" if settings.sim_demo else "",
        format_timestamp(start),
    )
    for dead in world.dead_links.values():
        log.info("simulator: %s goes dead at %s", dead.handle, format_timestamp(dead.since))
    for rename in world.renames.values():
        log.info(
            "simulator: %s becomes %s at %s (registered at %s)",
            rename.old_handle,
            rename.new_handle,
            format_timestamp(rename.renamed_at),
            format_timestamp(rename.registered_at),
        )
    step = timedelta(hours=settings.sim_step_hours)
    rounds = (
        1 if once else max(1, -(-int((now - start).total_seconds()) // int(step.total_seconds())))
    )
    progress.begin("simulator: rounds (event time up to now)", total=rounds)
    moment = start
    while not stop.is_set():
        previous, moment = moment, min(moment + step, utcnow())
        changes = world.account_changes(previous, moment)
        if changes:
            spooled += producer.submit(
                TOPIC_ACCOUNTS, changes, key=territory_key, time_field="changed_at", stop=stop
            )
        sent = producer.submit(
            TOPIC_METRICS,
            world.snapshots(moment),
            key=metrics_key,
            time_field="observed_at",
            stop=stop,
        )
        spooled += sent
        # Tests and operators read this line: the round's snapshots are durably spooled.
        log.info(
            "simulator: round %s: %d snapshots spooled (%d awaiting the broker)",
            format_timestamp(moment),
            sent,
            producer.spool.records,
        )
        progress.advance()
        if once:
            break
        catching_up = moment + step <= utcnow()
        if settings.sim_demo and catching_up:
            # As fast as the broker takes it: the next round once this one is mostly out.
            producer.spool.wait_until(
                lambda spool: spool.records <= len(world.accounts) or stop.is_set(), None
            )
        else:
            stop.wait(settings.sim_interval_seconds)
    return spooled
