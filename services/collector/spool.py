"""A bounded, durable on-disk spool: snapshots wait here until the broker confirmed them.

Every record the collector produces is first appended here (and fsync'd), then sent by the
producer's sender thread, which commits it only once the broker acknowledged it. So a broker
outage, a crash or a restart loses nothing: whatever was not confirmed is sent again, with the
same event id (downstream is idempotent, see ARCHITECTURE "Idempotent by construction").

Layout of the directory (one per collector source, owned by one process at a time):

- `000000000001.spool`, `000000000002.spool`, … segments of JSON lines
  `{"at": <epoch seconds spooled>, "topic": <contract topic>, "key": "...", "value": {event}}`;
  a new segment starts when the current one passes `segment_bytes`;
- `cursor.json`: `{"segment": n, "offset": bytes}`, the first record not yet confirmed,
  replaced atomically; segments before it are deleted;
- `.lock`: an exclusive `flock` held while a process uses the spool.

Bounded: an append waits while the unconfirmed records already hold `max_bytes` (collection
pauses rather than lose or drop anything); a single batch is always accepted by an empty
spool. A torn last line (a crash in the middle of an append, before its fsync returned) is cut
off when the spool is opened: that append never reported success.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from services.collector import metrics as m

log = logging.getLogger("collector.spool")

SEGMENT_SUFFIX = ".spool"
CURSOR_FILE = "cursor.json"
LOCK_FILE = ".lock"
DEFAULT_SEGMENT_BYTES = 8 * 1024 * 1024


class SpoolLocked(RuntimeError):
    """Another process uses this spool directory."""


class SpoolInterrupted(RuntimeError):
    """A stop was requested while waiting for room in a full spool; nothing was appended."""


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One spooled record: its contract topic, key and event, and when it was spooled."""

    topic: str
    key: str
    value: dict[str, Any]
    spooled_at: float


@dataclass(frozen=True, slots=True)
class Batch:
    """Records read from the cursor on; `commit(batch)` moves the cursor past them."""

    entries: list[SpoolEntry]
    end_segment: int
    end_offset: int
    lines: int
    size: int


class Spool:
    """The spool of one collector source (see the module docstring)."""

    def __init__(
        self,
        directory: Path | str,
        *,
        max_bytes: int,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.clock = clock
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_file = self._take_lock()
        self._cond = threading.Condition()
        self._closed = False
        self._tail: IO[bytes] | None = None
        self._segments = sorted(
            int(p.name.removesuffix(SEGMENT_SUFFIX))
            for p in self.directory.glob(f"*{SEGMENT_SUFFIX}")
            if p.name.removesuffix(SEGMENT_SUFFIX).isdigit()
        )
        self._cursor = self._read_cursor()
        self._records = 0
        self._bytes = 0
        self._oldest_at: float | None = None
        self._recover()
        m.SPOOL_LIMIT_BYTES.set(max_bytes)
        m.SPOOL_OLDEST_AGE.set_function(self.oldest_age)
        self._export()
        if self._records:
            log.info(
                "spool %s: %d record(s) (%d bytes) from a previous run will be sent",
                self.directory,
                self._records,
                self._bytes,
            )

    # --- opening -------------------------------------------------------------------------
    def _take_lock(self) -> IO[bytes]:
        handle = open(self.directory / LOCK_FILE, "a+b")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().decode(errors="replace").strip() or "?"
            handle.close()
            raise SpoolLocked(
                f"the spool {self.directory} is in use by another collector (pid {owner}); "
                "stop it first, or give this one another OBS_SPOOL_DIR"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()).encode())
        handle.flush()
        return handle

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:012d}{SEGMENT_SUFFIX}"

    def _read_cursor(self) -> tuple[int, int]:
        try:
            raw = orjson.loads((self.directory / CURSOR_FILE).read_bytes())
            segment, offset = int(raw["segment"]), int(raw["offset"])
        except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            segment, offset = 0, 0
        if segment in self._segments:
            return segment, offset
        later = [s for s in self._segments if s > segment]
        if later:  # the cursor's segment is gone: start at the next one
            return later[0], 0
        return max(segment, 1), 0  # nothing spooled: the next segment starts at offset 0

    def _recover(self) -> None:
        """Delete confirmed segments, cut a torn last line, count what is still pending."""
        cursor_segment, cursor_offset = self._cursor
        for segment in [s for s in self._segments if s < cursor_segment]:
            self._path(segment).unlink(missing_ok=True)
        self._segments = [s for s in self._segments if s >= cursor_segment]
        if self._segments:
            last = self._path(self._segments[-1])
            data = last.read_bytes()
            cut = data.rfind(b"\n") + 1
            if cut != len(data):
                log.warning(
                    "spool %s: cutting a torn last record (%d bytes)", last, len(data) - cut
                )
                with open(last, "r+b") as handle:
                    handle.truncate(cut)
                    os.fsync(handle.fileno())
        for segment in self._segments:
            data = self._path(segment).read_bytes()
            start = cursor_offset if segment == cursor_segment else 0
            pending = data[start:]
            self._records += pending.count(b"\n")
            self._bytes += len(pending)
        self._oldest_at = self._first_pending_time()

    # --- writing -------------------------------------------------------------------------
    def append(
        self,
        records: Iterable[tuple[str, str, dict[str, Any]]],
        stop: threading.Event | None = None,
    ) -> int:
        """Durably append (topic, key, event) records; returns how many. Waits while full."""
        now = self.clock()
        lines = [
            orjson.dumps({"at": now, "topic": topic, "key": key, "value": value}) + b"\n"
            for topic, key, value in records
        ]
        if not lines:
            return 0
        size = sum(len(line) for line in lines)
        with self._cond:
            warned = False
            while self._bytes > 0 and self._bytes + size > self.max_bytes:
                if stop is not None and stop.is_set():
                    raise SpoolInterrupted("stop requested while the spool was full")
                if not warned:
                    log.warning(
                        "spool %s is full (%d of %d bytes): collection waits for the broker",
                        self.directory,
                        self._bytes,
                        self.max_bytes,
                    )
                    warned = True
                self._cond.wait(0.2)
            self._check_open()
            tail = self._tail_for(size)
            tail.write(b"".join(lines))
            tail.flush()
            os.fsync(tail.fileno())
            if self._records == 0:
                self._oldest_at = now
            self._records += len(lines)
            self._bytes += size
            self._export()
            self._cond.notify_all()
        return len(lines)

    def _tail_for(self, size: int) -> IO[bytes]:
        """The segment to append to, starting a new one when the last is large enough."""
        if self._tail is not None and self._tail.tell() + size <= self.segment_bytes:
            return self._tail
        if self._tail is None and self._segments:
            last = self._path(self._segments[-1])
            if last.stat().st_size + size <= self.segment_bytes or last.stat().st_size == 0:
                self._tail = open(last, "ab")  # noqa: SIM115 - closed in close()
                return self._tail
        if self._tail is not None:
            self._tail.close()
        segment = (self._segments[-1] + 1) if self._segments else self._cursor[0]
        self._segments.append(segment)
        self._tail = open(self._path(segment), "ab")  # noqa: SIM115 - closed in close()
        self._fsync_directory()
        return self._tail

    # --- reading and confirming ------------------------------------------------------------
    def peek(self, limit: int) -> Batch:
        """Up to `limit` records from the cursor on, in spool order (nothing is removed)."""
        with self._cond:
            segment, offset = self._cursor
            entries: list[SpoolEntry] = []
            lines = size = 0
            while len(entries) < limit and segment in self._segments:
                exhausted = False
                with open(self._path(segment), "rb") as handle:
                    handle.seek(offset)
                    while len(entries) < limit:
                        line = handle.readline()
                        if not line.endswith(b"\n"):  # appends are whole lines: segment end
                            exhausted = True
                            break
                        offset += len(line)
                        lines += 1
                        size += len(line)
                        entry = _decode(line)
                        if entry is None:
                            log.error(
                                "spool %s: skipping an unreadable record", self._path(segment)
                            )
                            continue
                        entries.append(entry)
                later = [s for s in self._segments if s > segment]
                if not exhausted or not later:
                    break
                segment, offset = later[0], 0
            return Batch(entries, segment, offset, lines, size)

    def pending(self) -> Iterator[SpoolEntry]:
        """The records not yet confirmed, in spool order, read one at a time.

        Runs beside the sender: a record confirmed meanwhile may still be yielded (it was
        pending when the reading began), and one appended meanwhile may be or not.
        """
        with self._cond:
            segment, offset = self._cursor
            segments = [s for s in self._segments if s >= segment]
        for candidate in segments:
            try:
                handle = open(self._path(candidate), "rb")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                continue  # confirmed and deleted meanwhile
            with handle:
                if candidate == segment:
                    handle.seek(offset)
                for line in handle:
                    if not line.endswith(b"\n"):  # an append still being written
                        break
                    entry = _decode(line)
                    if entry is not None:
                        yield entry

    def commit(self, batch: Batch) -> None:
        """The batch's records were confirmed by the broker: move the cursor past them."""
        with self._cond:
            if self._closed:
                return
            self._cursor = (batch.end_segment, batch.end_offset)
            tmp = self.directory / f"{CURSOR_FILE}.tmp"
            with open(tmp, "wb") as handle:
                handle.write(
                    orjson.dumps({"segment": batch.end_segment, "offset": batch.end_offset})
                )
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.directory / CURSOR_FILE)
            for segment in [s for s in self._segments if s < batch.end_segment]:
                self._path(segment).unlink(missing_ok=True)
            self._segments = [s for s in self._segments if s >= batch.end_segment]
            self._fsync_directory()
            self._records = max(0, self._records - batch.lines)
            self._bytes = max(0, self._bytes - batch.size)
            self._oldest_at = self._first_pending_time() if self._records else None
            self._export()
            self._cond.notify_all()

    def _first_pending_time(self) -> float | None:
        segment, offset = self._cursor
        for candidate in [s for s in self._segments if s >= segment]:
            with open(self._path(candidate), "rb") as handle:
                handle.seek(offset if candidate == segment else 0)
                line = handle.readline()
            entry = _decode(line) if line.endswith(b"\n") else None
            if entry is not None:
                return entry.spooled_at
        return None

    # --- state ---------------------------------------------------------------------------
    @property
    def records(self) -> int:
        """Records not yet confirmed by the broker."""
        return self._records

    @property
    def size(self) -> int:
        """Bytes of the records not yet confirmed."""
        return self._bytes

    def oldest_age(self) -> float:
        """Seconds since the oldest unconfirmed record was spooled (0 when none)."""
        oldest = self._oldest_at
        return 0.0 if oldest is None else max(0.0, self.clock() - oldest)

    def wait_until(self, predicate: Callable[[Spool], bool], timeout: float | None) -> bool:
        """Wait (at most `timeout` s) until `predicate(self)` holds; returns whether it does."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(0.2 if remaining is None else min(remaining, 0.2))
            return True

    def close(self) -> None:
        """Release the directory (what is spooled stays for the next run)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            if self._tail is not None:
                self._tail.close()
                self._tail = None
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._cond.notify_all()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the spool {self.directory} is closed")

    def _export(self) -> None:
        m.SPOOL_RECORDS.set(self._records)
        m.SPOOL_BYTES.set(self._bytes)

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _decode(line: bytes) -> SpoolEntry | None:
    try:
        raw = orjson.loads(line)
        return SpoolEntry(str(raw["topic"]), str(raw["key"]), dict(raw["value"]), float(raw["at"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
