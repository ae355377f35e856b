"""The shutdown watchdog: a service whose graceful stop hangs still exits, and says so."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.services import REPO_ROOT

HANGING_SERVICE = """
import logging, signal, time
from services.common.lifecycle import arm_shutdown_watchdog, configure_logging
log = configure_logging("hanging")
signal.signal(signal.SIGTERM, lambda *_: arm_shutdown_watchdog("hanging", 1.0, log))
print("ready", flush=True)
while True:  # a graceful stop that never completes
    time.sleep(0.05)
"""


def test_watchdog_exits_a_service_whose_stop_hangs_and_logs_it():
    proc = subprocess.Popen(
        [sys.executable, "-c", HANGING_SERVICE],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    started = time.monotonic()
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    took = time.monotonic() - started
    assert proc.returncode == 3
    assert 0.9 <= took < 5, took
    assert "stop requested" in err
    assert "graceful stop took over 1.0 s; exiting now (watchdog)" in err
