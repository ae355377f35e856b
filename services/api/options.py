"""The API's internal tunables (limits and timings); operator settings live in Settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ApiOptions:
    """Bounds and timings of the API (defaults for production; tests shorten the timings)."""

    coalesce_reads: bool = True  # identical concurrent standings reads share one Redis read
    max_body_bytes: int = 4096  # operator actions take a tiny JSON body
    sse_heartbeat_seconds: float = 15.0  # a comment line on an idle stream
    sse_poll_seconds: float = 0.25  # how often the hub reads the followed seqs
    sse_retry_ms: int = 3000  # the reconnection delay suggested to EventSource clients
    sse_max_seconds: float = 3600.0  # a stream ends after this (the client resumes)
    sse_max_streams: int = 2000  # per process
    sse_max_streams_per_client: int = 16
    sse_batch: int = 200  # events read per Redis round trip when catching up
