"""What the collector takes as an account's attempt at start: log records and spooled ones."""

from __future__ import annotations

from pathlib import Path

import orjson

from services.collector.recent_attempts import logged_attempts, spooled_attempts
from services.collector.scheduler import Attempt
from services.collector.spool import Spool
from services.common.clock import to_epoch
from services.common.events import SnapshotStatus, build_metrics_event

AT = "2026-03-01T06:00:00Z"


def _snapshot(handle: str, status: SnapshotStatus = "ok") -> dict:
    count = 100 if status == "ok" else None
    return build_metrics_event(
        handle=handle,
        observed_at=AT,
        status=status,
        source="graph",
        followers=count,
        follows=count,
        media_count=count,
    )


def test_log_records_give_their_handle_time_and_status():
    epoch = to_epoch(AT)
    records = [
        (orjson.dumps(_snapshot("gers")), epoch * 1000),
        (orjson.dumps(_snapshot("gone", status="not_found")), epoch * 1000 + 5),
        (orjson.dumps(_snapshot("late")), (epoch - 300) * 1000),  # 5 min ahead: accepted
        (orjson.dumps(_snapshot("future")), (epoch - 301) * 1000),  # refused by consumers
        (b"not json", epoch * 1000),
        (None, epoch * 1000),  # a tombstone
        (orjson.dumps({"handle": "x", "status": "ok"}), epoch * 1000),
    ]
    assert list(logged_attempts(records)) == [
        Attempt("gers", float(epoch), "ok"),
        Attempt("gone", float(epoch), "not_found"),
        Attempt("late", float(epoch), "ok"),
    ]


def test_snapshots_waiting_in_the_spool_count_as_attempts(tmp_path: Path):
    spool = Spool(tmp_path, max_bytes=10**6, segment_bytes=2_000)  # several segments
    spool.append([("obs.metrics.v1", "instagram:a", _snapshot("a", status="error"))])
    spool.append([("obs.accounts.v1", "dep-32", {"id": "dep-32", "handle": "b"})])
    spool.append([("obs.metrics.v1", f"instagram:h{i}", _snapshot(f"h{i}")) for i in range(6)])
    spool.commit(spool.peek(1))  # "a" was confirmed: it is in the log, not in the spool
    attempts = list(spooled_attempts(spool.pending()))
    assert [a.handle for a in attempts] == [f"h{i}" for i in range(6)]
    assert {(a.at, a.status) for a in attempts} == {(float(to_epoch(AT)), "ok")}
    spool.close()
    again = Spool(tmp_path, max_bytes=10**6)  # and after a restart
    assert len(list(spooled_attempts(again.pending()))) == 6
    again.close()
