"""A TCP proxy that can cut a broker off from every client, as a network partition does.

Tansu has one listener and advertises one address, so a drill starts it advertising this
proxy's port: every Kafka client, after its bootstrap, connects to the advertised address, and
every byte between a client and the broker goes through here.

`cut()` severs every proxied connection (both sides) and then blackholes new ones: a client's
TCP connect still succeeds, but nothing it sends is answered, as when packets are dropped, so
each client meets its own request timeouts rather than a quick "connection refused".
`restore()` closes the blackholed connections (the broker never saw them) and forwards again.
The forwarding itself is tests/fakes/tcp_proxy.py's `TcpProxy`, stopped while cut.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from tests.fakes.tcp_proxy import TcpProxy

_ACCEPT_POLL = 0.05
_BIND_SECONDS = 5.0


class CuttableProxy(TcpProxy):
    """Forwards 127.0.0.1:`port` to `target`; `cut()` and `restore()` partition the broker."""

    def __init__(self, target: tuple[str, int], port: int, host: str = "127.0.0.1") -> None:
        super().__init__(target, port, host)
        self.blackholed = 0  # connections accepted and left unanswered while cut
        self._hole: socket.socket | None = None
        self._held: list[socket.socket] = []
        self._hole_thread: threading.Thread | None = None
        self._cut = threading.Event()

    @property
    def is_cut(self) -> bool:
        return self._cut.is_set()

    def cut(self) -> None:
        """Sever every connection through the proxy; from now on accept and never answer."""
        self.stop()  # TcpProxy: stops listening, shuts down both sides of every connection
        self._hole = _listen(self.host, self.port)
        self._cut.set()
        self._hole_thread = threading.Thread(target=self._swallow, daemon=True)
        self._hole_thread.start()

    def restore(self) -> None:
        """Close what was blackholed and forward to the broker again."""
        self._cut.clear()
        if self._hole_thread is not None:
            self._hole_thread.join(2)
            self._hole_thread = None
        if self._hole is not None:
            self._hole.close()
            self._hole = None
        for sock in self._held:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._held = []
        self.start()

    def close(self) -> None:
        """Stop everything (the end of a drill)."""
        if self.is_cut:
            self.restore()
        self.stop()

    def _swallow(self) -> None:
        hole = self._hole
        assert hole is not None
        while self._cut.is_set():
            try:
                client, _ = hole.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(client)  # read by nobody: the client's requests time out
            self.blackholed += 1


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (retried while the port is still being released)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    deadline = time.monotonic() + _BIND_SECONDS
    while True:
        try:
            listener.bind((host, port))
            break
        except OSError:
            if time.monotonic() > deadline:
                listener.close()
                raise
            time.sleep(0.05)
    listener.listen(64)
    listener.settimeout(_ACCEPT_POLL)
    return listener
