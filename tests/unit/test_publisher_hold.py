"""The publisher's hold gate: closing waits for the writes under way, records how far each
input partition was applied, and keeps later writers waiting until it opens."""

from __future__ import annotations

import asyncio

from services.publisher.hold import Applied, HoldGate, wait_closed


async def test_closing_waits_for_the_writes_under_way_and_holds_the_next_ones():
    gate = HoldGate()
    order: list[str] = []
    release = asyncio.Event()

    async def write(name: str, records: list[Applied], wait: asyncio.Event | None = None):
        async with gate.writing(records):
            order.append(f"{name} starts")
            if wait is not None:
                await wait.wait()
            order.append(f"{name} ends")

    applied = [Applied("m", 0, 4), Applied("m", 0, 5)]
    first = asyncio.create_task(write("first", applied, release))
    await asyncio.sleep(0)
    closing = asyncio.create_task(gate.close())
    await asyncio.sleep(0)
    second = asyncio.create_task(write("second", [Applied("m", 1, 9)]))
    await asyncio.sleep(0.01)
    assert not closing.done() and order == ["first starts"]  # the write under way goes on
    release.set()
    positions = await closing
    assert positions == {"m:0": 6}  # past the last applied record; nothing from m:1 yet
    await asyncio.sleep(0.01)
    assert order == ["first starts", "first ends"] and not second.done()  # held
    gate.open()
    await second
    await first
    assert order[-2:] == ["second starts", "second ends"]
    assert gate.positions == {"m:0": 6, "m:1": 10}


async def test_a_failed_write_applies_nothing():
    gate = HoldGate()
    try:
        async with gate.writing([Applied("m", 2, 7)]):
            raise ConnectionError("redis away")
    except ConnectionError:
        pass
    assert gate.positions == {}
    assert await gate.close() == {}


async def test_a_write_that_does_not_end_in_time_reopens_the_gate():
    gate = HoldGate()
    stuck = asyncio.Event()

    async def write():
        async with gate.writing():
            await stuck.wait()

    task = asyncio.create_task(write())
    await asyncio.sleep(0)
    assert await wait_closed(gate, 0.05) is None
    assert not gate.closed
    stuck.set()
    await task
    assert await wait_closed(gate, 1.0) == {}
    assert gate.closed
