"""The broker profiles as data: for each profile, the options of every kind of client.

Two profiles (`Settings.broker_profile`):

- `local`: Tansu 0.6.0, in memory. Tansu reports the end offset of a partition as the base
  offset of its last record batch + 1 (two batches of ten records: 11, not 20; see
  docs/operations.md). Anything that reads "up to the end offset" (faust changelog recovery,
  a rebuild, lag) stops early unless every batch holds one record, so this profile makes
  producers send one record per batch (kafka-python `batch_size=0`, aiokafka / faust
  `max_batch_size=1`) and shortens group timeouts (a first group join on Tansu waits about
  half the session timeout). `obs.scores.v1` is the exception: produced in batches on both
  profiles (docs/decisions.md §13).
- `kafka`: Apache Kafka, batching on, default group timeouts.

Topic configs that depend on the profile (`Profile.consumed_topic_configs`, added by
`admin.topic_configs` to the topics the services consume, `contracts.CONSUMED_TOPICS`):

- `kafka`: `message.timestamp.type=LogAppendTime`. The broker stamps every record with its own
  clock, so validation's `future` rule (observed_at too far ahead of the record timestamp)
  judges against the broker, and a producer whose clock says 2099 cannot make its record look
  current. `message.timestamp.after.max.ms` (Kafka 3.6+, KIP-937) is deliberately not set: it
  bounds a producer's timestamp on CreateTime topics only and is ignored under LogAppendTime,
  so on the consumed topics it would add nothing, and on a broker older than 3.6 the unknown
  key would make CreateTopics fail. The produced-only and dead-letter topics keep CreateTime:
  no service judges their records by timestamp.
- `local`: nothing. Tansu 0.6.0 accepts `message.timestamp.type` and ignores it (measured: a
  record sent with a 2099 timestamp to a LogAppendTime topic reads back as CreateTime 2099);
  setting it would make `topics create` report a protection that does not exist.

`services/common/kafka/clients.py` builds every client from these tables and nothing else:
bootstrap servers and connection security are merged there into every kind. Connection security
(`Security`: TLS, SASL) does not depend on the profile but on the deployment: it is read from
the settings (`OBS_KAFKA_SECURITY_PROTOCOL`, `OBS_KAFKA_SASL_MECHANISM`, `OBS_KAFKA_USERNAME`,
`OBS_KAFKA_PASSWORD`, `OBS_KAFKA_SSL_CAFILE`), checked once, and translated here for each client
library (docs/operations.md, "Kafka security").
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

import faust
from aiokafka.helpers import create_ssl_context
from pydantic import SecretStr

if TYPE_CHECKING:
    from services.common.settings import Settings

CLIENT_ID: Final = "observatoire"
BOOTSTRAP_TIMEOUT_MS: Final = 10_000

# Producer batches on the Kafka profile. A snapshot is ~2.4 KB (30 posts): Kafka's default 16 KB
# batch holds six, and a reader's cost goes with the number of batches. Measured on the local
# broker, reading 1.09 M snapshots took 45-56 s in 16 KB batches, 23-24 s in 256 KB ones (and
# 186-227 s one per batch); 1 MB batches were no faster. 256 KB stays well under the broker's
# default 1 MB message size limit.
KAFKA_BATCH_BYTES: Final = 256 * 1024
KAFKA_LINGER_MS: Final = 10

# Measured on Tansu 0.6.0: a fetch that finds no new record is answered only when its max
# wait has passed, even if records arrive meanwhile (Apache Kafka answers as soon as they do).
# faust asks for 1,500 ms, which held every record of a steady stream up to 1.5 s; 100 ms keeps
# the delay short for ten empty fetches a second per idle consumer.
LOCAL_FETCH_MAX_WAIT_MS: Final = 100

# The scorer's score events: one batched produce per applied batch (docs/decisions.md §13).
SCORES_BATCH_BYTES: Final = 1024 * 1024
SCORES_LINGER_MS: Final = 1


def _frozen(options: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(options))


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
TLS_PROTOCOLS: Final = frozenset({"SSL", "SASL_SSL"})
SASL_PROTOCOLS: Final = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})


class InvalidKafkaSecurity(ValueError):
    """The Kafka security settings do not make a usable combination (the message says which
    setting to change; it never holds the password)."""


@dataclass(frozen=True)
class Security:
    """How the clients reach the broker: TLS or not, SASL or not, and with what.

    `PLAINTEXT` adds no option, so every client keeps its library's default (the local stack:
    Tansu 0.6.0 cannot authenticate). `SSL` verifies the brokers' certificates against
    `cafile`, or the system's default trust without one, host names included. `SASL_*`
    authenticate with `username` and `password` (SCRAM-SHA-512 by default; `PLAIN` sends the
    password itself, so only inside TLS: `SASL_SSL`). The password is left out of repr and
    str, and reaches a client only as the one option that carries it.
    """

    protocol: SecurityProtocol = "PLAINTEXT"
    mechanism: SaslMechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: SecretStr | None = field(default=None, repr=False)
    cafile: Path | None = None

    def __post_init__(self) -> None:
        if self.protocol not in get_args(SecurityProtocol):
            raise InvalidKafkaSecurity(
                f"OBS_KAFKA_SECURITY_PROTOCOL={self.protocol!r} is not one of "
                f"{', '.join(get_args(SecurityProtocol))}"
            )
        if self.sasl:
            if self.mechanism not in get_args(SaslMechanism):
                raise InvalidKafkaSecurity(
                    f"OBS_KAFKA_SASL_MECHANISM={self.mechanism!r} is not one of "
                    f"{', '.join(get_args(SaslMechanism))}"
                )
            missing = [
                name
                for name, value in (
                    ("OBS_KAFKA_USERNAME", self.username),
                    ("OBS_KAFKA_PASSWORD", self.password and self.password.get_secret_value()),
                )
                if not value
            ]
            if missing:
                raise InvalidKafkaSecurity(
                    f"OBS_KAFKA_SECURITY_PROTOCOL={self.protocol} authenticates with a username "
                    f"and a password: set {' and '.join(missing)}"
                )
            if self.mechanism == "PLAIN" and not self.tls:
                raise InvalidKafkaSecurity(
                    "OBS_KAFKA_SASL_MECHANISM=PLAIN sends the password itself: only with "
                    "OBS_KAFKA_SECURITY_PROTOCOL=SASL_SSL (or use SCRAM-SHA-512)"
                )
        if self.cafile is not None and not self.tls:
            raise InvalidKafkaSecurity(
                f"OBS_KAFKA_SSL_CAFILE is set, but OBS_KAFKA_SECURITY_PROTOCOL={self.protocol} "
                "uses no TLS: choose SSL or SASL_SSL, or unset OBS_KAFKA_SSL_CAFILE"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> Security:
        """The connection security the settings ask for (InvalidKafkaSecurity if unusable)."""
        return cls(
            protocol=settings.kafka_security_protocol,
            mechanism=settings.kafka_sasl_mechanism,
            username=settings.kafka_username,
            password=settings.kafka_password,
            cafile=settings.kafka_ssl_cafile,
        )

    @property
    def tls(self) -> bool:
        return self.protocol in TLS_PROTOCOLS

    @property
    def sasl(self) -> bool:
        return self.protocol in SASL_PROTOCOLS

    def _secret(self) -> str:
        assert self.password is not None  # checked in __post_init__ for every SASL protocol
        return self.password.get_secret_value()

    def _sasl_options(self) -> dict[str, Any]:
        """The SASL options, named alike by kafka-python and aiokafka (none without SASL)."""
        if not self.sasl:
            return {}
        return {
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self._secret(),
        }

    def ssl_context(self) -> ssl.SSLContext:
        """The asyncio clients' TLS context: `cafile`'s CAs (else the system's), host names
        checked (aiokafka's `create_ssl_context`)."""
        try:
            return create_ssl_context(cafile=self.cafile)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidKafkaSecurity(
                f"OBS_KAFKA_SSL_CAFILE={self.cafile}: not a readable CA bundle ({exc})"
            ) from exc

    def kafka_python(self) -> dict[str, Any]:
        """Options for kafka-python clients (producer, consumer, admin)."""
        if self.protocol == "PLAINTEXT":
            return {}
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            # kafka-python loads the system's default CAs when `ssl_cafile` is None.
            options |= {
                "ssl_cafile": None if self.cafile is None else str(self.cafile),
                "ssl_check_hostname": True,
            }
        return options | self._sasl_options()

    def aiokafka(self) -> dict[str, Any]:
        """Options for aiokafka clients (`ssl_context` is mandatory with TLS there)."""
        if self.protocol == "PLAINTEXT":
            return {}
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        return options | self._sasl_options()

    def faust(self) -> dict[str, Any]:
        """Options for `faust.App`: its `broker_credentials`.

        faust's aiokafka transport turns them into aiokafka options for every consumer and
        producer it builds (`credentials_to_aiokafka_auth`): `SASLCredentials` gives
        `security_protocol` (SASL_SSL when it has an `ssl_context`, else SASL_PLAINTEXT),
        `sasl_mechanism` (any of faust's `SASLMechanism`, SCRAM-SHA-256/512 included),
        `sasl_plain_username`, `sasl_plain_password` and `ssl_context`; `SSLCredentials`
        gives `security_protocol=SSL` and its context (built here: faust's own default
        context cannot be built without a `purpose`)."""
        if self.protocol == "PLAINTEXT":
            return {}
        if not self.sasl:
            return {"broker_credentials": faust.SSLCredentials(self.ssl_context())}
        return {
            "broker_credentials": faust.SASLCredentials(
                username=self.username,
                password=self._secret(),
                mechanism=self.mechanism,
                ssl_context=self.ssl_context() if self.tls else None,
            )
        }


@dataclass(frozen=True)
class Profile:
    """Every client kind's options on one broker profile (bootstrap servers and connection
    security, `Security.from_settings`, are added by `clients.py`)."""

    name: str
    # kafka-python
    producer: Mapping[str, Any]
    consumer: Mapping[str, Any]
    group_consumer: Mapping[str, Any]  # added to `consumer` when the consumer has a group
    admin: Mapping[str, Any]
    # aiokafka
    event_producer: Mapping[str, Any]  # records whose offsets are read back (commands, events)
    scores_producer: Mapping[str, Any]  # `obs.scores.v1`, batched
    bulk_consumer: Mapping[str, Any]  # a whole topic read to its end offsets (rebuilds)
    # faust
    faust: Mapping[str, Any]
    fetch_max_wait_ms: int | None  # faust's consumers' (None: faust's 1,500 ms)
    # topic administration
    replication_factor: int  # -1: the broker's default.replication.factor
    consumed_topic_configs: Mapping[str, str]  # added to each consumed topic's configs
    # Whether ListOffsets by timestamp (`offsets_for_times`) is answered as Kafka documents it:
    # the first offset whose record timestamp is at or after the time asked.
    offsets_by_time: bool = True


_PRODUCER: Final = {
    "client_id": CLIENT_ID,
    "acks": "all",
    # Tansu 0.6.0 grants kafka-python producer ids (InitProducerId v3+) and checks sequence
    # numbers (test_broker_profile.py): safe on both profiles. (aiokafka, with InitProducerId
    # v0 only, cannot be idempotent on Tansu; faust does not ask it to.)
    "enable_idempotence": True,
    # Topics are created by `observatoire topics create`, never by a producer's metadata
    # request. (Tansu 0.6.0 ignores the flag: a producer creates a missing topic with 4
    # partitions there. Services call `verify_topics` before producing.)
    "allow_auto_create_topics": False,
}
_CONSUMER: Final = {
    "client_id": CLIENT_ID,
    "auto_offset_reset": "earliest",  # Kafka is the system of record: start at the start
    "enable_auto_commit": False,
    "allow_auto_create_topics": False,
}
_ADMIN: Final = {
    "client_id": f"{CLIENT_ID}-admin",
    "request_timeout_ms": 15000,
    "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
}
_SCORES_PRODUCER: Final = {
    "client_id": "observatoire-scorer-scores",
    "acks": "all",
    "linger_ms": SCORES_LINGER_MS,
    "max_batch_size": SCORES_BATCH_BYTES,
    "max_request_size": 4 * SCORES_BATCH_BYTES,
}
_BULK_CONSUMER: Final = {
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    "max_partition_fetch_bytes": 8 * 1024 * 1024,
    "fetch_max_bytes": 64 * 1024 * 1024,
}
_FAUST: Final = {
    "broker_client_id": CLIENT_ID,
    "producer_acks": -1,
    "consumer_auto_offset_reset": "earliest",
}

LOCAL: Final = Profile(
    name="local",
    # One record per batch: the first record always fits, no second one does.
    producer=_frozen(_PRODUCER | {"batch_size": 0, "linger_ms": 0}),
    consumer=_frozen(_CONSUMER | {"fetch_max_wait_ms": LOCAL_FETCH_MAX_WAIT_MS}),
    # Measured on Tansu 0.6.0: a first join takes about session_timeout / 2 (3 s here);
    # kafka-python's defaults (10 s session, 3 s heartbeat, 300 s poll interval) took 23 s.
    group_consumer=_frozen(
        {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "max_poll_interval_ms": 30000}
    ),
    admin=_frozen(_ADMIN),
    event_producer=_frozen({"acks": "all", "max_batch_size": 1, "linger_ms": 0}),
    scores_producer=_frozen(_SCORES_PRODUCER),
    bulk_consumer=_frozen(_BULK_CONSUMER),
    faust=_frozen(
        _FAUST
        | {
            # One record per batch, or changelog recovery stops at Tansu's short end offset.
            "producer_max_batch_size": 1,
            "producer_linger": 0.0,
            "broker_session_timeout": 6.0,
            "broker_heartbeat_interval": 1.0,
            "broker_rebalance_timeout": 6.0,
            "topic_replication_factor": 1,
        }
    ),
    fetch_max_wait_ms=LOCAL_FETCH_MAX_WAIT_MS,
    replication_factor=1,
    consumed_topic_configs=_frozen({}),  # Tansu ignores message.timestamp.type
    # Measured on Tansu 0.6.0 (aiokafka 0.14 and kafka-python 3.0): ten records stamped t,
    # t+1 s, … t+9 s; offsets_for_times answers offset 0, stamped with the broker's current
    # time, for t+5 s (should be 5) and for t+50 s (should be none), on every partition.
    offsets_by_time=False,
)

KAFKA: Final = Profile(
    name="kafka",
    producer=_frozen(_PRODUCER | {"batch_size": KAFKA_BATCH_BYTES, "linger_ms": KAFKA_LINGER_MS}),
    consumer=_frozen(_CONSUMER),
    group_consumer=_frozen({}),
    admin=_frozen(_ADMIN),
    event_producer=_frozen({"acks": "all"}),
    scores_producer=_frozen(_SCORES_PRODUCER),
    bulk_consumer=_frozen(_BULK_CONSUMER),
    faust=_frozen(_FAUST),
    fetch_max_wait_ms=None,
    replication_factor=-1,
    consumed_topic_configs=_frozen({"message.timestamp.type": "LogAppendTime"}),
)

PROFILES: Final = {profile.name: profile for profile in (LOCAL, KAFKA)}
