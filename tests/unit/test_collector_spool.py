"""The on-disk spool: durable, ordered, bounded, exclusive, and it survives a restart."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from services.collector.spool import Spool, SpoolInterrupted, SpoolLocked


def _records(start: int, count: int, pad: int = 0) -> list[tuple[str, str, dict]]:
    return [
        ("obs.metrics.v1", f"instagram:h{i}", {"event_id": f"e{i}", "pad": "x" * pad})
        for i in range(start, start + count)
    ]


def _ids(spool: Spool, limit: int = 10_000) -> list[str]:
    return [entry.value["event_id"] for entry in spool.peek(limit).entries]


def test_records_come_back_in_order_until_committed(tmp_path: Path):
    spool = Spool(tmp_path, max_bytes=10**6, segment_bytes=300)  # several segments
    spool.append(_records(0, 10))
    spool.append(_records(10, 5))
    assert spool.records == 15 and spool.size > 0
    assert _ids(spool) == [f"e{i}" for i in range(15)]
    batch = spool.peek(4)
    assert [e.key for e in batch.entries] == [f"instagram:h{i}" for i in range(4)]
    spool.commit(batch)
    assert spool.records == 11
    assert _ids(spool) == [f"e{i}" for i in range(4, 15)]
    spool.commit(spool.peek(100))
    assert spool.records == 0 and spool.size == 0 and spool.oldest_age() == 0.0
    assert len(list(tmp_path.glob("*.spool"))) == 1  # confirmed segments are deleted
    spool.close()


def test_what_was_not_confirmed_survives_a_restart(tmp_path: Path):
    spool = Spool(tmp_path, max_bytes=10**6, segment_bytes=200)
    spool.append(_records(0, 8))
    spool.commit(spool.peek(3))
    spool.close()
    again = Spool(tmp_path, max_bytes=10**6, segment_bytes=200)
    assert again.records == 5
    assert _ids(again) == [f"e{i}" for i in range(3, 8)]
    again.append(_records(8, 2))
    assert _ids(again) == [f"e{i}" for i in range(3, 10)]
    again.close()


def test_a_torn_last_record_is_cut_when_the_spool_opens(tmp_path: Path):
    spool = Spool(tmp_path, max_bytes=10**6)
    spool.append(_records(0, 3))
    spool.close()
    [segment] = tmp_path.glob("*.spool")
    with open(segment, "ab") as handle:
        handle.write(b'{"at": 1, "topic": "obs.metr')  # a crash in the middle of an append
    again = Spool(tmp_path, max_bytes=10**6)
    assert again.records == 3 and _ids(again) == ["e0", "e1", "e2"]
    again.append(_records(3, 1))
    assert _ids(again) == ["e0", "e1", "e2", "e3"]
    again.close()


def test_a_second_process_cannot_use_the_same_spool(tmp_path: Path):
    spool = Spool(tmp_path, max_bytes=10**6)
    with pytest.raises(SpoolLocked, match="in use by another collector"):
        Spool(tmp_path, max_bytes=10**6)
    spool.close()
    Spool(tmp_path, max_bytes=10**6).close()


def test_a_full_spool_makes_the_writer_wait_until_records_are_confirmed(tmp_path: Path):
    spool = Spool(tmp_path, max_bytes=2000)
    spool.append(_records(0, 5, pad=300))  # ~2 KB: full
    done = threading.Event()

    def write() -> None:
        spool.append(_records(5, 1, pad=300))
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    assert not done.wait(0.5)  # bounded: the writer waits
    spool.commit(spool.peek(5))
    assert done.wait(5)
    writer.join()
    assert _ids(spool) == ["e5"]
    spool.close()


def test_a_stop_interrupts_a_writer_waiting_for_room(tmp_path: Path):
    spool = Spool(tmp_path, max_bytes=1000)
    spool.append(_records(0, 5, pad=300))
    stop = threading.Event()
    stop.set()
    with pytest.raises(SpoolInterrupted):
        spool.append(_records(5, 1, pad=300), stop)
    assert spool.records == 5
    spool.close()


def test_an_empty_spool_takes_a_batch_larger_than_its_bound(tmp_path: Path):
    spool = Spool(tmp_path, max_bytes=100)
    assert spool.append(_records(0, 3, pad=100)) == 3
    spool.close()


def test_the_age_of_the_oldest_record_is_measured(tmp_path: Path):
    now = [1000.0]
    spool = Spool(tmp_path, max_bytes=10**6, clock=lambda: now[0])
    spool.append(_records(0, 2))
    now[0] = 1030.0
    spool.append(_records(2, 1))
    now[0] = 1060.0
    assert spool.oldest_age() == 60.0
    spool.commit(spool.peek(2))
    assert spool.oldest_age() == 30.0
    spool.close()
