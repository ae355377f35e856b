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

The caps are checked twice: at `accept()` by `GuardedListener`, where refusing costs almost
nothing (a flood of refused connections must not delay the others), and in the protocol,
for a server started on a plain socket. The limits travel on the uvicorn config
(`ApiConfig`) and on the listener, both pickled into uvicorn's worker processes; each
process counts its own connections (`connection_table`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing import reduction
from typing import Any, Final

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from services.api.metrics import CONNECTIONS_CLOSED, CONNECTIONS_OPEN
from services.common.settings import Settings

log = logging.getLogger("api.connections")

# At most one warning per reason per this many seconds (a flood is one line, not thousands).
_WARN_EVERY_SECONDS: Final = 60.0

_NOT_RECEIVING: Final = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)


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
        # Peers (address, port) the listener admitted, whose protocol has not started yet.
        self.handed_over: set[tuple[str, int]] = set()
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
    """This process's table for these limits (the listener and the protocols share it; each
    worker process has its own)."""
    table = _TABLES.get(limits)
    if table is None:
        table = _TABLES[limits] = ConnectionTable(limits)
    return table


# A refusal is a reset (SO_LINGER 0): nothing is kept for the peer, no TIME_WAIT.
_RESET: Final = struct.pack("ii", 1, 0)
# Refusals per accept() call before the event loop gets its turn back.
_REFUSALS_PER_CALL: Final = 256


class GuardedListener(socket.socket):
    """A listening socket whose `accept()` resets, at once, connections over a cap.

    asyncio's server loop calls `accept()` on the socket it was given; refusing here costs a
    system call or two, where a refused connection that reaches the protocol has cost a task,
    a transport and a future. Admitted peers are handed to `GuardedH11Protocol` through the
    table, which counted them."""

    limits: ConnectionLimits

    def accept(self) -> tuple[socket.socket, Any]:
        table = connection_table(self.limits)
        for _ in range(_REFUSALS_PER_CALL):
            conn, peer = super().accept()  # BlockingIOError when none is waiting
            address = str(peer[0])
            refused = table.admit(address)
            if refused is None:
                table.handed_over.add((address, peer[1]))
                return conn, peer
            table.closed(refused, address)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            conn.close()
        raise BlockingIOError("refused a burst; more on the next turn of the event loop")


def guarded_listener(sock: socket.socket, limits: ConnectionLimits) -> GuardedListener:
    """`sock` (bound and listening) as a GuardedListener; `sock` itself is detached."""
    listener = GuardedListener(sock.family, sock.type, sock.proto, fileno=sock.detach())
    listener.limits = limits
    return listener


def _rebuild_listener(
    fd: Any, family: int, kind: int, proto: int, limits: ConnectionLimits
) -> GuardedListener:
    listener = GuardedListener(family, kind, proto, fileno=fd.detach())
    listener.limits = limits
    return listener


def _reduce_listener(listener: GuardedListener) -> tuple[Any, tuple[Any, ...]]:
    # uvicorn's worker processes receive the listening socket pickled: keep its class.
    fd = reduction.DupFd(listener.fileno())
    return _rebuild_listener, (fd, listener.family, listener.type, listener.proto, listener.limits)


reduction.register(GuardedListener, _reduce_listener)


class ApiConfig(uvicorn.Config):
    """uvicorn's config carrying the connection limits to `GuardedH11Protocol`."""

    def __init__(self, app: Any, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, http="services.api.connections:GuardedH11Protocol", **kwargs)
        self.limits = limits

    def guarded_socket(self) -> GuardedListener:
        """Bind the configured address, as a listener that refuses connections over a cap."""
        return guarded_listener(self.bind_socket(), self.limits)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request deadline, a stalled-reader timeout and caps."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        # uvicorn's own set-up (an h11 connection, two logger look-ups under logging's lock)
        # waits until the connection is admitted: a flood of refused connections costs only
        # their transports. Measured: a burst of 2,000 connections delayed other clients by
        # about a third less.
        if not isinstance(config, ApiConfig):
            raise TypeError("GuardedH11Protocol needs an ApiConfig (the connection limits)")
        self._deferred = (config, server_state, app_state, _loop)
        self.table = connection_table(config.limits)
        self.limits = config.limits
        self.address: str | None = None  # set once the connection is counted
        self.request_timer: asyncio.TimerHandle | None = None
        self.stall_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else "unknown"
        key = (address, peer[1] if peer else 0)
        if key in self.table.handed_over:  # counted by the GuardedListener
            self.table.handed_over.discard(key)
        else:
            refused = self.table.admit(address)
            if refused is not None:
                self.table.closed(refused, address)
                transport.abort()
                return
        super().__init__(*self._deferred)
        self.address = address
        super().connection_made(transport)
        self._arm_request_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.address is None:
            return  # refused: uvicorn never knew of it
        self.table.release(self.address)
        self.address = None
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow_request()

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
        # A reset, like a refusal: a client that does not read would otherwise keep what is
        # unsent in the kernel, and close() would wait for its buffer to drain.
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        self.transport.abort()

    def _cancel_timers(self) -> None:
        for timer in (self.request_timer, self.stall_timer):
            if timer is not None:
                timer.cancel()
        self.request_timer = self.stall_timer = None
