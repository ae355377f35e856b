"""The API's connection guards against a real server process: stalled sockets from many
addresses are all closed within the request deadline, while another client is served fast."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from bench.connections import ATTACKERS, STALLED, STALLED_PARTS, probe_healthz
from services.api.connections import ApiConfig, ConnectionLimits
from services.common.localstack import free_port
from services.common.settings import Settings
from tests.services import ServiceProcess, service_env, wait_for

DEADLINE_SECONDS = 2.0
PER_ADDRESS = 64
# Closing is asynchronous on a 2-core machine running the attacker too: allowed lateness.
TOLERANCE_SECONDS = 1.0


@contextlib.contextmanager
def serving_api(
    settings: Settings, tmp_path: Path, **env: str
) -> Iterator[tuple[str, ServiceProcess]]:
    """`observatoire service api` on a free port (rate limiting off), with `env`; yields its
    base URL and process, and checks that it stops within 10 s of SIGTERM."""
    port = free_port()
    process = ServiceProcess(
        ["service", "api"],
        service_env(
            settings.model_copy(update={"api_port": port}), OBS_RATE_LIMIT_ENABLED="false", **env
        ),
        tmp_path / "api.log",
    ).start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: httpx.get(f"{base}/healthz").status_code == 200,
            timeout=30,
            what=f"the API to answer /healthz:\n{process.log()[-2000:]}",
        )
        # The guards' figures below hold for the API's event loop, uvloop (decisions §67).
        assert "event loop: uvloop" in process.log(), process.log()[-2000:]
        yield base, process
    finally:
        took = process.terminate()
        assert took < 10, process.log()[-2000:]
        assert "api: stopped" in process.log()


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[str]:
    with serving_api(
        settings,
        tmp_path,
        OBS_API_REQUEST_TIMEOUT_SECONDS=str(DEADLINE_SECONDS),
        OBS_API_MAX_CONNECTIONS_PER_ADDRESS=str(PER_ADDRESS),
        OBS_API_MAX_CONNECTIONS="1024",
    ) as (base, _):
        yield base


def test_stalled_sockets_are_closed_within_the_deadline_while_healthz_stays_fast(api):
    # The attack and the probe are the benchmark's (bench/connections.py), run once here.
    port = int(api.rsplit(":", 1)[1])
    healthz, closures = probe_healthz(port, attack=True, deadline=DEADLINE_SECONDS)
    print(json.dumps({"healthz": healthz, "closures": closures}))

    assert closures["still_open"] == 0, closures
    assert closures["closed"] == STALLED
    assert closures["longest_open_s"] <= DEADLINE_SECONDS + TOLERANCE_SECONDS, closures
    assert healthz["probes"] > 100  # every probe answered 200 (the others are not counted)

    metrics = httpx.get(f"{api}/metrics").text
    closed = {
        reason: float(value)
        for reason, value in re.findall(
            r'obs_api_connections_closed_total\{reason="(\w+)"\} ([0-9.]+)', metrics
        )
    }
    over_cap = STALLED - PER_ADDRESS * len(ATTACKERS)
    assert closed["address_cap"] == over_cap == closures["reset_at_once"]
    assert closed["request_timeout"] == PER_ADDRESS * len(ATTACKERS)

    # One probe's worst case is one scheduling hiccup on 2 shared cores away from the bound:
    # a slow guard is slow in every attack, a hiccup is not. Up to three attacks, the best kept.
    worst = [healthz["max_ms"]]
    while min(worst) >= 100 and len(worst) < 3:
        again, _ = probe_healthz(port, attack=True, deadline=DEADLINE_SECONDS)
        print(json.dumps({"healthz_again": again}))
        assert again["probes"] > 100
        worst.append(again["max_ms"])
    assert min(worst) < 100, f"/healthz took up to {worst} ms in {len(worst)} attacks"


def _response(sock: socket.socket) -> bytes:
    """One whole HTTP response (headers and a Content-Length body) from `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length: *([0-9]+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def test_a_slow_but_complete_request_is_served_and_keep_alive_still_works(api):
    port = int(api.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(DEADLINE_SECONDS / 2)
        sock.sendall(b"Host: slow\r\n\r\n")
        assert _response(sock).startswith(b"HTTP/1.1 200 OK")
        # A second request on the same connection has its own deadline, from its first byte.
        time.sleep(DEADLINE_SECONDS * 0.75)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: slow\r\n\r\n")
        assert _response(sock).startswith(b"HTTP/1.1 200 OK")


@pytest.mark.parametrize(
    "parts",
    [
        # The blank line that ends the header block straddles two reads.
        [b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r", b"\n"],
        [b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"\r\n"],
        # Bare LF line endings, which h11 accepts, one byte at a time.
        [bytes([b]) for b in b"GET /healthz HTTP/1.1\nHost: x\n\n"],
    ],
    ids=["crlf-split-in-blank-line", "crlf-split-before-blank-line", "lf-byte-by-byte"],
)
def test_a_header_block_in_pieces_is_answered(api, parts):
    # uvicorn's set-up waits for the end of the header block: wherever the reads split it.
    port = int(api.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for part in parts:
            sock.sendall(part)
            time.sleep(0.01)
        assert _response(sock).startswith(b"HTTP/1.1 200 OK")


def _status(sock: socket.socket) -> bytes:
    reply = b""
    with contextlib.suppress(ConnectionResetError):
        while b"\r\n" not in reply and (chunk := sock.recv(4096)):
            reply += chunk
    return reply.split(b"\r\n", 1)[0]


def test_a_body_in_pieces_gets_the_answer_it_gets_whole(api):
    # The first request reaches the app once its body is in, whatever the reads.
    port = int(api.rsplit(":", 1)[1])
    body = b'{"handle": "gers_32"}'
    request = (
        b"PUT /api/v1/territories/dep-32/account HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    statuses = []
    for cuts in ([], [len(request) - len(body) - 2, len(request) - 5]):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for start, end in zip([0, *cuts], [*cuts, len(request)], strict=True):
                sock.sendall(request[start:end])
                time.sleep(0.05)
            statuses.append(_status(sock))
    assert statuses[0].startswith(b"HTTP/1.1 ") and statuses[1] == statuses[0], statuses


def test_a_client_waiting_to_be_told_to_continue_is_answered_before_the_deadline(api):
    # With `Expect: 100-continue` the body comes only after an answer: never waited for.
    port = int(api.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_SECONDS / 2) as sock:
        sock.sendall(
            b"PUT /api/v1/territories/dep-32/account HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 21\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        assert _status(sock).startswith(b"HTTP/1.1 "), "no answer before the deadline"


def test_a_header_block_over_h11s_bound_is_refused_as_before(api):
    # Kept while incomplete only up to h11's own bound; beyond it h11 answers as it always has.
    port = int(api.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * (20 * 1024))
        reply = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(4096):
                reply += chunk
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:200]


def test_the_api_stops_within_seconds_while_connections_wait_for_their_first_request(
    settings: Settings, tmp_path: Path
):
    # Connections not yet handed to uvicorn (silent, half-sent headers, a short body) must not
    # hold the service past SIGTERM: the deadline here (30 s) is far beyond the stop's bound.
    held: list[socket.socket] = []
    with serving_api(settings, tmp_path) as (base, process):
        port = int(base.rsplit(":", 1)[1])
        try:
            for part in STALLED_PARTS:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(part)
                held.append(sock)
            time.sleep(0.2)
            took = process.terminate()
            print(json.dumps({"stopped_in_s": round(took, 2), "held": len(held)}))
            assert took < 10, process.log()[-2000:]
        finally:
            for sock in held:
                sock.close()


def test_a_response_whose_client_stopped_reading_is_closed():
    """A client that stops reading an endless response (as a silent event-stream client
    would) has its connection closed after the stalled-reader timeout, and the response
    ends on the server."""
    stalled_reader = 0.5
    ended = threading.Event()

    async def endless(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        await receive()  # the request
        await send({"type": "http.response.start", "status": 200, "headers": []})

        async def body() -> None:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
                await asyncio.sleep(0)

        writing = asyncio.ensure_future(body())
        message = await receive()  # as Starlette's streaming responses do: wait for the end
        writing.cancel()
        if message["type"] == "http.disconnect":
            ended.set()

    port = free_port()
    config = ApiConfig(
        endless,
        limits=ConnectionLimits(request_timeout=5, stalled_reader=stalled_reader),
        host="127.0.0.1",
        port=port,
        log_config=None,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10, what="the server to start")
    try:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        assert ended.wait(stalled_reader + 5), "the response never ended"
        took = time.monotonic() - started
        assert stalled_reader <= took < stalled_reader + 2, took
        sock.settimeout(5)
        with pytest.raises(ConnectionResetError):
            while sock.recv(1 << 20):
                pass
        sock.close()
    finally:
        ended.set()
        server.should_exit = True
        thread.join(10)
