"""Corroborating accounts for tests that observe only one or two accounts.

The watermark is the K-th newest account's time (K = 3, services/common/watermark.py): a test
whose batches observe one or two accounts would have none, so nobody would become inactive and
no edition would be publishable. `with_witnesses` adds, to a batch, K − 1 accounts that no
territory uses, observed (`error`: no summary, no link state) at the batch's newest
`observed_at`, so that time moves as the test's own snapshots say, as it did when the
watermark was the newest event of all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.common.events import MetricsSnapshot, build_metrics_event
from services.common.watermark import K

WITNESS_HANDLES = tuple(f"temoin_{i}" for i in range(1, K))


def witnesses(observed_at: str) -> list[dict[str, Any]]:
    """K − 1 `error` snapshots of unused accounts observed at `observed_at`."""
    return [
        build_metrics_event(handle=handle, observed_at=observed_at, status="error", source="sim")
        for handle in WITNESS_HANDLES
    ]


def with_witnesses(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The batch and the witnesses of its newest `observed_at` (none for an empty batch)."""
    if not events:
        return list(events)
    return [*events, *witnesses(max(event["observed_at"] for event in events))]


def watermark_set(epoch: int) -> dict[str, int]:
    """Members of `obs:{meta}:watermark` that make the watermark `epoch` (K accounts there), for
    tests that set the scorer's time directly: `redis.zadd(WATERMARK_KEY, watermark_set(t))`."""
    return {f"instagram:temoin_{i}": epoch for i in range(K)}


def corroborated(snapshots: Sequence[MetricsSnapshot]) -> list[MetricsSnapshot]:
    """A batch of validated snapshots with the witnesses of its newest `observed_at`."""
    if not snapshots:
        return list(snapshots)
    newest = max(snapshot.observed_at for snapshot in snapshots)
    return [*snapshots, *(MetricsSnapshot.model_validate(w) for w in witnesses(newest))]
