"""The stream hub's wait (services/api/streams.py) when streams leave the way clients do: the
request's task is cancelled, and cancelled again at each step until it ends (anyio's cancel
scopes), while the poller wakes every stream and the others take the hub's lock in turn."""

from __future__ import annotations

import asyncio
import random

from services.api.streams import StreamHub

CATEGORY = "regions"


def _hub() -> StreamHub:
    # wait_after reads no Redis; the poller, which does, is played by the test.
    return StreamHub(None, None, poll_seconds=0.25, max_streams=50, max_streams_per_client=50)  # type: ignore[arg-type]


async def _steps(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_streams_leaving_while_the_poller_wakes_them_leave_the_hub_usable():
    hub = _hub()
    rng = random.Random(19)
    errors: list[str] = []

    async def stream() -> None:
        seq = 0
        while True:
            try:
                if await hub.wait_after(CATEGORY, seq, 0.5):
                    seq = hub._seq[CATEGORY]
            except RuntimeError as exc:  # "Lock is not acquired." before the fix
                errors.append(repr(exc))
                return

    async def poller() -> None:  # what StreamHub._poll does once it has read a new seq
        while True:
            hub._seq[CATEGORY] = hub._seq.get(CATEGORY, 0) + 1
            async with hub._changed:
                hub._changed.notify_all()
            await _steps(rng.randrange(1, 4))

    notifying = asyncio.create_task(poller())
    streams = [asyncio.create_task(stream()) for _ in range(20)]
    for _ in range(300):
        await _steps(rng.randrange(0, 6))
        index = rng.randrange(len(streams))
        leaving = streams[index]
        leaving.cancel()
        await _steps(rng.randrange(0, 3))
        leaving.cancel()  # again, before it has ended
        await asyncio.gather(leaving, return_exceptions=True)
        assert leaving.cancelled() or leaving.done()
        streams[index] = asyncio.create_task(stream())
    notifying.cancel()
    for task in streams:
        task.cancel()
    await asyncio.gather(notifying, *streams, return_exceptions=True)

    assert errors == []
    assert not hub._changed.locked()  # nobody holds the lock once every stream has ended
    # A new stream waits its heartbeat period and hears nothing (no lock held forever).
    assert await asyncio.wait_for(hub.wait_after(CATEGORY, 10**6, 0.05), 2) is False


async def test_a_wait_times_out_after_its_period_and_can_wait_again():
    hub = _hub()
    assert await hub.wait_after("departements", 3, 0.02) is False
    assert await hub.wait_after("departements", 3, 0.02) is False
