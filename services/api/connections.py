"""Connection guards of the API's HTTP server: a deadline for each request, caps on open
connections, and an end to responses nobody reads.

uvicorn 0.54 has none of these: `timeout_keep_alive` starts only once a response is complete,
so a connection that sends nothing, or half a request, or a body shorter than its
`Content-Length`, is held forever; `limit_concurrency` answers 503 to everyone once reached.
`GuardedH11Protocol` is uvicorn's own h11 protocol with three additions:

- **request deadline**: from a new connection, or from the first byte of a later request on a
  kept-alive one, the complete request (headers and body) must arrive within
  `request_timeout` seconds; otherwise the connection is closed. Between requests the idle
  keep-alive timeout is uvicorn's, as before. A request that has arrived in full is never
  timed: an event stream lasts as long as its client reads it.
- **stalled reader**: when the client has stopped reading (the transport's write buffer stays
  above its high-water mark) for `stalled_reader` seconds, the connection is aborted; this is
  how an event stream whose client went silent ends.
- **caps**: at most `per_address` open connections from one TCP peer and `total` in all; a
  connection beyond either is aborted as soon as it is accepted. Reverse proxies (the
  trusted `forwarded_allow_ips`) carry many clients, so they count only towards `total`.

A flood of connections must not delay the other clients (decisions §67). The server runs on
uvloop (`API_LOOP`), which accepts and builds each connection's transport in C; the caps are
checked as the protocol starts; uvicorn's own set-up, and so the app, wait for the first
request to be in whole (its header block and a `Content-Length` body, up to 16 KiB kept),
so a connection that never completes one costs a timer and a buffer. The limits travel on
the uvicorn config (`ApiConfig`), pickled into uvicorn's worker processes; each process counts
its own connections (`connection_table`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE, H11Protocol
from uvicorn.server import ServerState

from services.api.metrics import CONNECTIONS_CLOSED, CONNECTIONS_OPEN
from services.common.settings import Settings

log = logging.getLogger("api.connections")

# uvicorn's name for the event loop the API runs on.
API_LOOP: Final = "uvloop"

# At most one warning per reason per this many seconds (a flood is one line, not thousands).
_WARN_EVERY_SECONDS: Final = 60.0

_NOT_RECEIVING: Final = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)

# The end of a request's header block, as h11 finds it (a blank line, CRLF or LF).
_END_OF_HEAD: Final = re.compile(rb"\n\r?\n")
# A first request this long (header block and body), still incomplete, goes to uvicorn
# anyway: h11's own bound for a header block, four times the API's largest body.
_FIRST_REQUEST_LIMIT: Final = DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
_CONTENT_LENGTH: Final = re.compile(
    rb"\ncontent-length:[ \t]*([0-9]+)[ \t]*(?=\r?\n)", re.IGNORECASE
)
# A body that is chunked, or that the client sends only once told to continue, is not waited
# for.
_NOT_WAITED_FOR: Final = re.compile(rb"\n(?:transfer-encoding|expect)[ \t]*:", re.IGNORECASE)


def first_request_end(head: bytes | bytearray, block_end: int) -> int:
    """Where the first request in `head` ends, given the end of its header block: after its
    `Content-Length` body; 0 when uvicorn should have it at once (a chunked body, an
    `Expect`, several or too long lengths: h11 and the app answer those as they always do)."""
    block = bytes(head[:block_end])
    if _NOT_WAITED_FOR.search(block):
        return 0
    lengths = _CONTENT_LENGTH.findall(block)
    if not lengths:
        return block_end
    if len(lengths) > 1 or len(lengths[0]) > 9:
        return 0
    end = block_end + int(lengths[0])
    return end if end <= _FIRST_REQUEST_LIMIT else 0


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The guards' settings (seconds and counts)."""

    request_timeout: float = 30.0
    stalled_reader: float = 30.0
    per_address: int = 64
    total: int = 2048
    # Addresses and networks counted only towards `total` (the trusted reverse proxies).
    proxies: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        proxies = settings.forwarded_allow_ips
        return cls(
            request_timeout=settings.api_request_timeout_seconds,
            stalled_reader=settings.api_stalled_reader_seconds,
            per_address=settings.api_max_connections_per_address,
            total=settings.api_max_connections,
            proxies=tuple(p for p in proxies.split(",") if p) if proxies else (),
        )


class ConnectionTable:
    """Open connections of one process, by peer address; says which to refuse."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.by_address: Counter[str] = Counter()
        self.total = 0
        self._trust_all = limits.proxies == ("*",)
        self._proxies = [ipaddress.ip_network(p, strict=False) for p in limits.proxies if p != "*"]
        self._closed_by = {reason: CONNECTIONS_CLOSED.labels(reason) for reason in _REASONS}
        self._warned: dict[str, tuple[float, int]] = {}

    def _is_proxy(self, address: str) -> bool:
        if self._trust_all:
            return True
        if not self._proxies:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._proxies)

    def admit(self, address: str) -> str | None:
        """Count a new connection from `address`, or return why it is refused."""
        if self.total >= self.limits.total:
            return "total_cap"
        proxy = self._is_proxy(address)
        if not proxy and self.by_address[address] >= self.limits.per_address:
            return "address_cap"
        self.total += 1
        CONNECTIONS_OPEN.inc()
        if not proxy:
            self.by_address[address] += 1
        return None

    def release(self, address: str) -> None:
        """A counted connection closed."""
        self.total -= 1
        CONNECTIONS_OPEN.dec()
        if address in self.by_address:
            left = self.by_address[address] - 1
            if left > 0:
                self.by_address[address] = left
            else:
                del self.by_address[address]

    def closed(self, reason: str, address: str) -> None:
        """Count a connection the guards closed; warn at most once a minute per reason."""
        self._closed_by[reason].inc()
        now = time.monotonic()
        since, count = self._warned.get(reason, (-_WARN_EVERY_SECONDS, 0))
        count += 1
        if now - since < _WARN_EVERY_SECONDS:
            self._warned[reason] = (since, count)
            return
        self._warned[reason] = (now, 0)
        log.warning(
            "closed %d connection(s): %s (latest from %s); at most one such line a minute, "
            "obs_api_connections_closed_total counts them all",
            count,
            _REASONS[reason].format(limits=self.limits),
            address,
        )


_REASONS: Final = {
    "total_cap": "over {limits.total} open connections",
    "address_cap": "over {limits.per_address} open connections from one address",
    "request_timeout": "request not received within {limits.request_timeout:g} s",
    "stalled_reader": "client stopped reading for {limits.stalled_reader:g} s",
}

_TABLES: dict[ConnectionLimits, ConnectionTable] = {}


def connection_table(limits: ConnectionLimits) -> ConnectionTable:
    """This process's table for these limits (the protocols share it; each worker process has
    its own)."""
    table = _TABLES.get(limits)
    if table is None:
        table = _TABLES[limits] = ConnectionTable(limits)
    return table


# A guard's close is a reset (SO_LINGER 0): nothing is kept for the peer (no TIME_WAIT), and
# what a client that does not read has left unsent is dropped, not drained.
_RESET: Final = struct.pack("ii", 1, 0)


def reset(transport: asyncio.Transport) -> None:
    """Close `transport` with a reset."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    transport.abort()


class ApiConfig(uvicorn.Config):
    """uvicorn's config carrying the connection limits to `GuardedH11Protocol`, on uvloop."""

    def __init__(self, app: Any, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(
            app,
            http="services.api.connections:GuardedH11Protocol",
            loop=API_LOOP,
            **kwargs,
        )
        self.limits = limits


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request deadline, a stalled-reader timeout and caps."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        # uvicorn's own set-up (an h11 connection, two logger look-ups under logging's lock,
        # two socket calls for the addresses) and the app wait until the connection is
        # admitted and its first request is in whole: a refused connection costs its transport
        # (built by uvloop in C) and the check, a silent or half-sent one a timer and a buffer.
        if not isinstance(config, ApiConfig):
            raise TypeError("GuardedH11Protocol needs an ApiConfig (the connection limits)")
        self._deferred = (config, server_state, app_state, _loop)
        self.table = connection_table(config.limits)
        self.limits = config.limits
        self.address: str | None = None  # set once the connection is counted
        # The first request's bytes until it is in whole; None once uvicorn's set-up is done.
        self._head: bytearray | None = None
        self._request_end: int | None = None  # known once the header block is in
        self.request_timer: asyncio.TimerHandle | None = None
        self.stall_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else "unknown"
        refused = self.table.admit(address)
        if refused is not None:
            self.table.closed(refused, address)
            reset(transport)
            return
        self.address = address
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self._head = bytearray()
        self._arm_request_timer()

    def _set_up(self) -> None:
        """uvicorn's own set-up, once the first request is in."""
        transport = self.transport
        super().__init__(*self._deferred)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.address is None:
            return  # refused: uvicorn never knew of it
        self.table.release(self.address)
        self.address = None
        self._cancel_timers()
        if self._head is None:
            super().connection_lost(exc)  # uvicorn's set-up was done

    def data_received(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            searched = len(head)
            head += data
            if not self._first_request_in(head, searched):
                return
            self._head = None
            self._set_up()
            data = bytes(head)
        super().data_received(data)
        self._follow_request()

    def _first_request_in(self, head: bytearray, searched: int) -> bool:
        """Whether uvicorn's set-up starts: the first request is in whole, or is not waited
        for (see `first_request_end`), or has reached `_FIRST_REQUEST_LIMIT`."""
        if self._request_end is None:
            if len(head) >= _FIRST_REQUEST_LIMIT:
                return True
            # A blank line may straddle two reads.
            blank = _END_OF_HEAD.search(head, max(0, searched - 2))
            if blank is None:
                return False
            self._request_end = first_request_end(head, blank.end())
        return len(head) >= self._request_end

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_request()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.stall_timer is None and self.address is not None:
            self.stall_timer = self.loop.call_later(
                self.limits.stalled_reader, self._close, "stalled_reader"
            )

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.stall_timer is not None:
            self.stall_timer.cancel()
            self.stall_timer = None

    # --- the request deadline ---------------------------------------------------------------
    def _follow_request(self) -> None:
        """Arm the deadline while part of a request is in, disarm it once all of it is."""
        state = self.conn.their_state
        receiving = state is h11.SEND_BODY or (
            state is h11.IDLE and bool(self.conn.trailing_data[0])
        )
        if state in _NOT_RECEIVING or not receiving:
            if self.request_timer is not None:
                self.request_timer.cancel()
                self.request_timer = None
        elif self.request_timer is None:
            self._arm_request_timer()

    def _arm_request_timer(self) -> None:
        if self.address is not None and not self.transport.is_closing():
            self.request_timer = self.loop.call_later(
                self.limits.request_timeout, self._close, "request_timeout"
            )

    def _close(self, reason: str) -> None:
        if reason == "request_timeout":
            self.request_timer = None
        else:
            self.stall_timer = None
        if self.transport.is_closing() and reason != "stalled_reader":
            return
        self.table.closed(reason, self.address or "unknown")
        reset(self.transport)

    def _cancel_timers(self) -> None:
        for timer in (self.request_timer, self.stall_timer):
            if timer is not None:
                timer.cancel()
        self.request_timer = self.stall_timer = None
