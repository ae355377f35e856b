"""Serve the API with uvicorn; stop within 10 s of SIGTERM, saying so.

On SIGTERM the event streams end at once (their clients reconnect elsewhere with
`Last-Event-ID`), so the graceful stop waits only for ordinary requests; a watchdog exits
anyway after `shutdown_watchdog_seconds`. With `api_workers` > 1, uvicorn's supervisor runs
that many processes on one socket (each reads the settings from the environment); the
supervisor passes SIGTERM on, and each worker ends its streams the same way.
"""

from __future__ import annotations

import gc
import logging
import resource
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from services.api.connections import ApiConfig, ConnectionLimits
from services.api.streams import stop_all_streams
from services.common.lifecycle import arm_shutdown_watchdog, configure_logging, log_stopped
from services.common.settings import Settings, get_settings

SERVICE = "api"
GRACEFUL_SECONDS = 3


def freeze_startup_objects() -> None:
    """Keep what startup built (the 36,000 territories, the app) out of the cyclic GC.

    Those objects live as long as the process; left in the GC's generations, every full
    collection walks them all, a pause of tens of milliseconds in the latency tail."""
    gc.collect()
    gc.freeze()


def _end_streams_on_stop_signals() -> None:
    """In a worker process: on SIGTERM/SIGINT, end the event streams, then let uvicorn's own
    handler (installed before the app starts) begin its graceful shutdown."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(
            number: int, frame: FrameType | None, previous: Callable[..., Any] = previous
        ) -> None:
            stop_all_streams()
            previous(number, frame)

        signal.signal(sig, handler)


def app_from_environment() -> FastAPI:
    """The app factory uvicorn's worker processes call (settings from the environment)."""
    from services.api.app import create_app

    configure_logging(SERVICE, get_settings().log_level)
    app = create_app(get_settings())
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with inner(app) as state:
            _end_streams_on_stop_signals()
            yield state

    app.router.lifespan_context = lifespan
    freeze_startup_objects()
    return app


class ApiServer(uvicorn.Server):
    """uvicorn's server, ending event streams and arming the watchdog on the first signal."""

    def __init__(self, config: uvicorn.Config, settings: Settings, log: logging.Logger) -> None:
        super().__init__(config)
        self.settings = settings
        self.log = log

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        arm_shutdown_watchdog(SERVICE, self.settings.shutdown_watchdog_seconds, self.log)
        stop_all_streams()
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        # uvicorn re-raises the captured signal after run() returns: say it here.
        log_stopped(SERVICE, self.log)


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's handling of X-Forwarded-For/-Proto, from `forwarded_allow_ips` alone.

    With proxies listed, uvicorn wraps the app in its own ProxyHeadersMiddleware
    (uvicorn.middleware.proxy_headers): when the TCP peer is one of them, the request's
    client (`scope["client"]`, which the rate limiter keys on) becomes the address the
    proxies report. Without, the headers are ignored: uvicorn's defaults would trust
    127.0.0.1 and ::1, or its FORWARDED_ALLOW_IPS variable, so that any local process could
    pick its rate-limit key."""
    if not settings.forwarded_allow_ips:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": settings.forwarded_allow_ips}


def raise_open_files_limit(settings: Settings, log: logging.Logger) -> None:
    """Let the process hold `api_max_connections` sockets: raise the soft limit on open files
    towards the hard one (a soft limit of 1,024 is common), and say when it is still short."""
    wanted = settings.api_max_connections + 256  # Redis, the broker, logs, the listener
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if target > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warning(
            "open-files limit %d is below OBS_API_MAX_CONNECTIONS=%d plus a margin: accepting "
            "will fail before the cap is reached (raise `ulimit -n`)",
            soft,
            settings.api_max_connections,
        )


def run_api(settings: Settings) -> None:
    """Run the API in the foreground until SIGTERM/SIGINT."""
    log = configure_logging(SERVICE, settings.log_level)
    raise_open_files_limit(settings, log)
    common: dict[str, Any] = {
        "host": settings.api_host,
        "port": settings.api_port,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": GRACEFUL_SECONDS,
        "lifespan": "on",
        "limits": ConnectionLimits.from_settings(settings),
        **proxy_options(settings),
    }
    if settings.forwarded_allow_ips == "*":
        log.warning(
            "OBS_FORWARDED_ALLOW_IPS=*: every peer's X-Forwarded-For is believed; safe only if "
            "nothing but the reverse proxy can reach %s",
            settings.api_url,
        )
    if settings.api_workers > 1:
        config = ApiConfig(
            "services.api.main:app_from_environment",
            factory=True,
            workers=settings.api_workers,
            **common,
        )
        sock = config.bind_socket()
        supervisor = Multiprocess(config, sockets=[sock])

        def on_signal(sig: int, frame: FrameType | None) -> None:
            arm_shutdown_watchdog(SERVICE, settings.shutdown_watchdog_seconds, log)
            supervisor.signal_queue.append(sig)

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
        log.info("api listening on %s with %d worker processes", settings.api_url, config.workers)
        supervisor.run()
        log_stopped(SERVICE, log)
        return

    from services.api.app import create_app

    config = ApiConfig(create_app(settings), **common)
    freeze_startup_objects()
    log.info("api listening on %s", settings.api_url)
    ApiServer(config, settings, log).run()
