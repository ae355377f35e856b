"""Failover: two publishers may run, exactly one is active (docs/publisher.md, "Failover").

The active one holds a lease in Redis (services/publisher/store/lease.py) and renews it every
third of its time to live from a thread of its own (so that recovery, faust's start and a busy
event loop never delay a renewal). A standby polls for the lease and does nothing else: it
neither recovers nor starts its faust worker, so it never joins the consumer group. Once it
takes the lease (a new token, greater than every earlier one) it claims every slot it writes
(services/publisher/store/fence.py), then recovers from its topics' tails and starts.

A publisher that loses its lease, cannot renew it in time, or finds one of its writes refused
(a newer token claimed the slot: it was paused while another took over) stands down: it logs
why and exits at once with `EXIT_LEASE_LOST`, without a graceful stop that could still write.
Everything it leaves half done is a crash, which the recovery of the new active repairs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from typing import NoReturn

from redis.exceptions import RedisError

from services.common.settings import Settings
from services.common.view.client import redis_client
from services.publisher import metrics as m
from services.publisher.store.lease import Held, LeaseStore

log = logging.getLogger("publisher.lease")
EXIT_LEASE_LOST = 75  # EX_TEMPFAIL: a supervisor restarts it, as a standby


def stand_down(reason: str) -> NoReturn:
    """Exit now: this publisher is no longer the active one."""
    m.ACTIVE.set(0)
    log.critical("publisher: standing down (exit %d): %s", EXIT_LEASE_LOST, reason)
    logging.shutdown()
    os._exit(EXIT_LEASE_LOST)


def candidate_name() -> str:
    """How this process names itself in the lease: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _ttl_ms(settings: Settings) -> int:
    return int(settings.publisher_lease_ttl_seconds * 1000)


async def wait_for_lease(settings: Settings, name: str) -> Held:
    """Poll until this process holds the lease (a standby until then); returns it."""
    redis = redis_client(settings)
    store = LeaseStore(redis)
    told: str | None = None
    m.ACTIVE.set(0)
    try:
        while True:
            try:
                got = await store.acquire(name, _ttl_ms(settings))
            except (RedisError, OSError) as exc:
                log.error("standby: cannot reach Redis to take the lease: %r", exc)
                got = told or ""
            if isinstance(got, Held):
                m.ACTIVE.set(1)
                m.LEASE_TOKEN.set(got.token)
                log.info(
                    "acquired the lease: token %d (%s); claiming, recovering, then starting",
                    got.token,
                    name,
                )
                return got
            if got and got != told:
                token, _, holder = got.partition(" ")
                log.info(
                    "standby: the lease is held by %s (token %s); taking over when it lapses "
                    "(ttl %g s, polling every %g s)",
                    holder,
                    token,
                    settings.publisher_lease_ttl_seconds,
                    settings.publisher_lease_poll_seconds,
                )
                told = got
            await asyncio.sleep(settings.publisher_lease_poll_seconds)
    finally:
        await redis.aclose()


class LeaseKeeper(threading.Thread):
    """Renews the held lease every third of its time to live; stands down when it cannot."""

    def __init__(self, settings: Settings, held: Held) -> None:
        super().__init__(name="publisher-lease", daemon=True)
        self.settings, self.held = settings, held
        self._stopping = threading.Event()

    def run(self) -> None:
        asyncio.run(self._keep())

    async def _keep(self) -> None:
        ttl = self.settings.publisher_lease_ttl_seconds
        interval = ttl / 3
        redis = redis_client(self.settings, socket_timeout=interval)
        store = LeaseStore(redis)
        renewed = time.monotonic()  # the lease was taken (or renewed) at most this long ago
        log.info(
            "holding the lease: token %d, renewed every %.1f s (ttl %g s)",
            self.held.token,
            interval,
            ttl,
        )
        try:
            while not self._stopping.is_set():
                await asyncio.sleep(min(0.1, interval))
                if time.monotonic() - renewed < interval:
                    continue
                try:
                    kept = await store.renew(self.held, _ttl_ms(self.settings))
                except (RedisError, OSError) as exc:
                    # Stop before the lease can lapse in Redis and a standby take it.
                    if time.monotonic() - renewed > ttl - interval:
                        stand_down(
                            f"could not renew the lease (token {self.held.token}) for "
                            f"{time.monotonic() - renewed:.1f} s: {exc!r}"
                        )
                    log.error("could not renew the lease (retrying): %r", exc)
                    continue
                if not kept:
                    holder = await store.holder()
                    stand_down(
                        f"lost the lease (token {self.held.token}); it is now held by "
                        f"{holder or 'nobody'}"
                    )
                renewed = time.monotonic()
            if await store.release(self.held):
                log.info("released the lease (token %d)", self.held.token)
        except (RedisError, OSError) as exc:
            log.error("could not release the lease (it lapses by itself): %r", exc)
        finally:
            m.ACTIVE.set(0)
            await redis.aclose()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop renewing and give the lease up (a clean stop: a standby takes over at once)."""
        self._stopping.set()
        self.join(timeout)
