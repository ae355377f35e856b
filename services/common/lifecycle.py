"""Process lifecycle shared by the services: JSON-ish logging and the SIGTERM watchdog.

Every service stops within 10 s of SIGTERM. A graceful stop can hang (a faust worker was seen
ignoring SIGTERM for minutes), so the first stop signal also arms a watchdog thread that exits
the process anyway after `shutdown_watchdog_seconds` and says so in the log.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from typing import Any, Final

_armed = threading.Event()
_started_stopping: float | None = None


# C0 and C1 controls, DEL, and the Unicode marks that reorder or split what a terminal or an
# editor shows (bidi embeddings, overrides and isolates, line and paragraph separators).
_CONTROLS: Final = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """`text` with every control or reordering character written as an escape (`\\x1b`,
    `\\u202e`), so that what a client sent cannot colour, rewrite or forge log lines."""
    return _CONTROLS.sub(_escape, text)


class EscapingFormatter(logging.Formatter):
    """One record, one line: controls in the message are escaped; a traceback keeps its
    line breaks and has every other control escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        text = super().formatException(ei)
        return "\n".join(escape_controls(line) for line in text.split("\n"))


def configure_logging(service: str, level: str = "INFO") -> logging.Logger:
    """One line per record, with the service name; returns the service's logger."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        EscapingFormatter(
            f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Client libraries are chatty at INFO about every (re)connection, and kafka-python's admin
    # client logs its whole configuration, SASL password included, at DEBUG.
    for noisy in ("aiokafka", "kafka", "faust", "mode", "uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    return logging.getLogger(service)


def arm_shutdown_watchdog(service: str, seconds: float, log: logging.Logger) -> None:
    """Start (once) a thread that exits the process if it is still alive after `seconds`."""
    global _started_stopping
    if _armed.is_set():
        return
    _armed.set()
    _started_stopping = time.monotonic()
    log.info(
        "%s: stop requested, stopping (watchdog exits in %.1f s if this hangs)", service, seconds
    )

    def _watch() -> None:
        time.sleep(seconds)
        log.error("%s: graceful stop took over %.1f s; exiting now (watchdog)", service, seconds)
        logging.shutdown()
        os._exit(3)

    threading.Thread(target=_watch, name=f"{service}-shutdown-watchdog", daemon=True).start()


def log_stopped(service: str, log: logging.Logger) -> None:
    """Say that the service stopped cleanly, and how long the stop took."""
    if _started_stopping is None:
        log.info("%s: stopped", service)
    else:
        log.info("%s: stopped cleanly in %.1f s", service, time.monotonic() - _started_stopping)
