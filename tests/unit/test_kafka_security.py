"""Kafka connection security: what every client kind receives for each protocol and SASL
mechanism, the combinations refused, and the password kept out of every repr and message.

Pure: options are read from `services.common.kafka.clients` (no broker). aiokafka clients are
constructed, never started; faust's own translation (`credentials_to_aiokafka_auth`, which
its consumers and producers use) is applied to the app's credentials.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

import certifi
import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import AuthProtocol, SASLMechanism
from pydantic import SecretStr

from services.common.kafka import clients
from services.common.kafka.profiles import InvalidKafkaSecurity, Security
from services.common.lifecycle import configure_logging
from services.common.settings import Settings

PASSWORD = "s3cret-Pa55word"
CAFILE = Path(certifi.where())  # a real CA bundle


def _settings(tmp_path: Path, **security: Any) -> Settings:
    return Settings(
        _env_file=None,
        kafka_bootstrap="kafka-1:9093,kafka-2:9093",
        broker_profile="kafka",
        run_dir=tmp_path,
        **security,
    )


def _sasl(protocol: str, mechanism: str, **extra: Any) -> dict[str, Any]:
    return {
        "kafka_security_protocol": protocol,
        "kafka_sasl_mechanism": mechanism,
        "kafka_username": "scorer",
        "kafka_password": PASSWORD,
        **extra,
    }


# Every accepted combination: (settings, kafka-python options, aiokafka options without the
# context, whether aiokafka gets a TLS context, with which CA file).
CASES = {
    "plaintext": ({}, {}, {}, None),
    "ssl, system trust": (
        {"kafka_security_protocol": "SSL"},
        {"security_protocol": "SSL", "ssl_cafile": None, "ssl_check_hostname": True},
        {"security_protocol": "SSL"},
        "system",
    ),
    "ssl, CA file": (
        {"kafka_security_protocol": "SSL", "kafka_ssl_cafile": CAFILE},
        {"security_protocol": "SSL", "ssl_cafile": str(CAFILE), "ssl_check_hostname": True},
        {"security_protocol": "SSL"},
        "cafile",
    ),
    **{
        f"sasl_plaintext, {mechanism}": (
            _sasl("SASL_PLAINTEXT", mechanism),
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": mechanism,
                "sasl_plain_username": "scorer",
                "sasl_plain_password": PASSWORD,
            },
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": mechanism,
                "sasl_plain_username": "scorer",
                "sasl_plain_password": PASSWORD,
            },
            None,
        )
        for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256")
    },
    **{
        f"sasl_ssl, {mechanism}, {trust}": (
            _sasl("SASL_SSL", mechanism, **({"kafka_ssl_cafile": CAFILE} if cafile else {})),
            {
                "security_protocol": "SASL_SSL",
                "ssl_cafile": str(CAFILE) if cafile else None,
                "ssl_check_hostname": True,
                "sasl_mechanism": mechanism,
                "sasl_plain_username": "scorer",
                "sasl_plain_password": PASSWORD,
            },
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": mechanism,
                "sasl_plain_username": "scorer",
                "sasl_plain_password": PASSWORD,
            },
            trust,
        )
        for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
        for cafile, trust in ((False, "system"), (True, "cafile"))
    },
}

SYNC_KINDS = {
    "kafka-python producer": clients.producer_config,
    "kafka-python consumer": clients.consumer_config,
    "kafka-python group consumer": lambda s: clients.consumer_config(s, group_id="g"),
    "kafka-python admin": clients.admin_config,
}
ASYNC_KINDS = {
    "aiokafka event producer": clients.event_producer_config,
    "aiokafka scores producer": clients.scores_producer_config,
    "aiokafka bulk consumer": clients.bulk_consumer_config,
}


def _check_tls_context(context: Any, trust: str) -> None:
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    if trust == "cafile":
        assert len(context.get_ca_certs()) > 100  # certifi's bundle, loaded


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", SYNC_KINDS)
def test_kafka_python_clients_get_exactly_the_security_options(
    tmp_path: Path, case: str, kind: str
) -> None:
    security, expected, _aiokafka, _tls = CASES[case]
    build = SYNC_KINDS[kind]
    plain = build(_settings(tmp_path))

    assert build(_settings(tmp_path, **security)) == plain | expected
    assert plain["bootstrap_servers"] == ["kafka-1:9093", "kafka-2:9093"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", ASYNC_KINDS)
def test_aiokafka_clients_get_exactly_the_security_options(
    tmp_path: Path, case: str, kind: str
) -> None:
    security, _kafka_python, expected, tls = CASES[case]
    build = ASYNC_KINDS[kind]
    plain = build(_settings(tmp_path))

    config = build(_settings(tmp_path, **security))
    context = config.pop("ssl_context", None)

    assert config == plain | expected
    if tls is None:
        assert context is None
    else:
        _check_tls_context(context, tls)


@pytest.mark.parametrize("case", CASES)
async def test_aiokafka_takes_the_options_as_given(tmp_path: Path, case: str) -> None:
    security, _kafka_python, expected, tls = CASES[case]
    settings = _settings(tmp_path, **security)
    producer = clients.event_producer(settings)
    consumer = clients.bulk_consumer(settings)
    try:
        for client in (producer.client, consumer._client):
            assert client._security_protocol == expected.get("security_protocol", "PLAINTEXT")
            if "sasl_mechanism" in expected:
                assert client._sasl_mechanism == expected["sasl_mechanism"]
                assert client._sasl_plain_username == "scorer"
                assert client._sasl_plain_password == PASSWORD
            assert (client._ssl_context is not None) == (tls is not None)
    finally:
        await producer.stop()
        await consumer.stop()


@pytest.mark.parametrize("case", CASES)
def test_faust_gets_credentials_that_its_transport_turns_into_the_same_options(
    tmp_path: Path, case: str
) -> None:
    security, _kafka_python, expected, tls = CASES[case]
    settings = _settings(tmp_path, **security)
    plain = clients.faust_settings(_settings(tmp_path))
    options = clients.faust_settings(settings)
    credentials = options.pop("broker_credentials", None)
    assert options == plain

    app = clients.faust_app("scorer", settings)
    assert type(app.conf.broker_credentials) is type(credentials)
    credentials = app.conf.broker_credentials
    # What faust's aiokafka transport hands every consumer (and, below, producer) it builds.
    consumer_auth = dict(credentials_to_aiokafka_auth(credentials, app.conf.ssl_context))
    producer_auth = dict(app.producer._settings_auth())
    for auth in (consumer_auth, producer_auth):
        context = auth.pop("ssl_context", None)
        assert auth == {"security_protocol": "PLAINTEXT"} | expected
        if tls is None:
            assert context is None
        else:
            _check_tls_context(context, tls)


def test_faust_credentials_carry_the_scram_mechanism_and_the_protocol(tmp_path: Path) -> None:
    credentials = clients.faust_settings(_settings(tmp_path, **_sasl("SASL_SSL", "SCRAM-SHA-256")))[
        "broker_credentials"
    ]
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.mechanism is SASLMechanism.SCRAM_SHA_256
    assert credentials.protocol is AuthProtocol.SASL_SSL
    tls_only = clients.faust_settings(_settings(tmp_path, kafka_security_protocol="SSL"))
    assert isinstance(tls_only["broker_credentials"], faust.SSLCredentials)
    assert tls_only["broker_credentials"].protocol is AuthProtocol.SSL


# --- refused combinations -----------------------------------------------------------------
REFUSED = {
    "sasl without username": (
        {"kafka_security_protocol": "SASL_SSL", "kafka_password": PASSWORD},
        "set OBS_KAFKA_USERNAME",
    ),
    "sasl without password": (
        {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_username": "scorer"},
        "set OBS_KAFKA_PASSWORD",
    ),
    "sasl without either": (
        {"kafka_security_protocol": "SASL_SSL"},
        "set OBS_KAFKA_USERNAME and OBS_KAFKA_PASSWORD",
    ),
    "plain without tls": (
        _sasl("SASL_PLAINTEXT", "PLAIN"),
        "PLAIN sends the password itself: only with OBS_KAFKA_SECURITY_PROTOCOL=SASL_SSL",
    ),
    "ca file without tls": (
        {"kafka_security_protocol": "PLAINTEXT", "kafka_ssl_cafile": CAFILE},
        "OBS_KAFKA_SECURITY_PROTOCOL=PLAINTEXT uses no TLS",
    ),
    "ca file with sasl_plaintext": (
        _sasl("SASL_PLAINTEXT", "SCRAM-SHA-512", kafka_ssl_cafile=CAFILE),
        "OBS_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT uses no TLS",
    ),
}


@pytest.mark.parametrize("case", REFUSED)
def test_an_unusable_combination_is_refused_by_every_client_kind(tmp_path: Path, case: str) -> None:
    security, message = REFUSED[case]
    settings = _settings(tmp_path, **security)
    for build in (*SYNC_KINDS.values(), *ASYNC_KINDS.values(), clients.faust_settings):
        with pytest.raises(InvalidKafkaSecurity, match=message) as refused:
            build(settings)
        assert PASSWORD not in str(refused.value)


def test_an_unreadable_ca_file_is_refused_saying_which(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    not_a_ca = tmp_path / "not-a-ca.pem"
    not_a_ca.write_text("not a certificate\n")
    for cafile in (missing, not_a_ca):
        settings = _settings(
            tmp_path, **_sasl("SASL_SSL", "SCRAM-SHA-512", kafka_ssl_cafile=cafile)
        )
        with pytest.raises(InvalidKafkaSecurity, match=f"OBS_KAFKA_SSL_CAFILE={cafile}") as refused:
            clients.event_producer_config(settings)
        assert PASSWORD not in str(refused.value)


# --- the password stays a secret ----------------------------------------------------------
def test_the_password_is_in_no_repr_or_str(tmp_path: Path) -> None:
    settings = _settings(tmp_path, **_sasl("SASL_SSL", "PLAIN", kafka_ssl_cafile=CAFILE))
    security = clients.security(settings)
    credentials = clients.faust_settings(settings)["broker_credentials"]
    shown = [repr(security), str(security), repr(credentials), str(credentials), repr(settings)]
    assert all(PASSWORD not in text for text in shown), shown
    assert "scorer" in repr(security)  # the principal may be shown; only the password is secret


def test_two_securities_differing_only_by_password_are_not_equal() -> None:
    one = Security("SASL_SSL", "SCRAM-SHA-512", "scorer", password=SecretStr("a"))
    other = Security("SASL_SSL", "SCRAM-SHA-512", "scorer", password=SecretStr("b"))
    assert one != other
    assert repr(one) == repr(other)


def test_kafka_python_debug_logs_stay_off_at_every_log_level() -> None:
    # kafka-python's admin client logs its whole configuration, SASL password included,
    # at DEBUG ("Starting KafkaAdminClient with configuration: ...").
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging("test", "DEBUG")
        assert not logging.getLogger("kafka.admin.client").isEnabledFor(logging.DEBUG)
        assert not logging.getLogger("aiokafka").isEnabledFor(logging.DEBUG)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
