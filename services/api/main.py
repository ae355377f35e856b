"""Serve the API with uvicorn; stop within 10 s of SIGTERM, saying so."""

from __future__ import annotations

import socket
from types import FrameType

import uvicorn

from services.common.lifecycle import arm_shutdown_watchdog, configure_logging, log_stopped
from services.common.settings import Settings

SERVICE = "api"


def run_api(settings: Settings) -> None:
    """Run the API in the foreground until SIGTERM/SIGINT."""
    log = configure_logging(SERVICE, settings.log_level)
    from services.api.app import create_app

    config = uvicorn.Config(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=3,
        lifespan="on",
    )

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            arm_shutdown_watchdog(SERVICE, settings.shutdown_watchdog_seconds, log)
            super().handle_exit(sig, frame)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await super().shutdown(sockets)
            # uvicorn re-raises the captured signal after run() returns: say it here.
            log_stopped(SERVICE, log)

    log.info("api listening on %s", settings.api_url)
    Server(config).run()
