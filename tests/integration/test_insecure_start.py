"""A service on the kafka profile refuses to start without Kafka credentials, a Redis password
and the command key, before it reaches any broker; with OBS_ALLOW_INSECURE=true it starts and
its log says what it runs without.

No broker runs here: the refusal comes first, and the API reaches Kafka only to send a
command. The session Redis (no password) serves the API.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from services.common.localstack import RedisServer, free_port
from services.common.settings import Settings
from tests.services import ServiceProcess, service_env, wait_for

MISSING = (
    "without: Kafka credentials (OBS_KAFKA_SECURITY_PROTOCOL is PLAINTEXT: set SASL_SSL, with "
    "OBS_KAFKA_USERNAME and OBS_KAFKA_PASSWORD); a Redis password (OBS_REDIS_PASSWORD); the "
    "command key that signs operator commands (OBS_COMMAND_KEY)"
)


def _kafka_profile(tmp_path: Path, **values: object) -> Settings:
    """The kafka profile with nothing that authenticates, and a broker address where nothing
    listens."""
    return Settings(
        _env_file=None,
        broker_profile="kafka",
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        run_dir=tmp_path / "run",
        spool_dir=tmp_path / "spool",
        **values,
    )


def test_a_service_on_the_kafka_profile_without_credentials_exits_2_saying_what_is_missing(
    tmp_path: Path,
) -> None:
    env = service_env(_kafka_profile(tmp_path))
    publisher = ServiceProcess(["service", "publisher"], env, tmp_path / "publisher.log").start()
    try:
        code = publisher.wait(30)
    finally:
        publisher.kill()
    log = publisher.log()

    assert code == 2, log
    assert f"error: service publisher refuses to start on the kafka profile {MISSING}. " in log
    assert "or OBS_ALLOW_INSECURE=true to start anyway" in log
    assert "Traceback" not in log


def test_with_allow_insecure_the_service_starts_and_logs_a_warning_naming_what_is_missing(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    port = free_port()
    settings = _kafka_profile(tmp_path, redis_url=redis_server.url, api_port=port)
    env = service_env(settings, OBS_ALLOW_INSECURE="true")
    api = ServiceProcess(["service", "api"], env, tmp_path / "api.log").start()
    try:
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200,
            timeout=30,
            what=f"the API to answer /healthz:\n{api.log()[-2000:]}",
        )
    finally:
        api.terminate()
    lines = api.log().splitlines()

    warnings = [line for line in lines if " WARNING api " in line and "OBS_ALLOW_INSECURE" in line]
    assert len(warnings) == 1, lines
    assert warnings[0].endswith(
        f"OBS_ALLOW_INSECURE=true: service api starts on the kafka profile {MISSING}"
    )
    # Said at start: before the API listens.
    listening = next(i for i, line in enumerate(lines) if "api listening on" in line)
    assert lines.index(warnings[0]) < listening
