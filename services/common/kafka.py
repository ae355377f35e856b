"""Kafka client settings per broker profile, topic administration and log-reading helpers.

Two broker profiles (`Settings.broker_profile`):

- `local`: Tansu 0.6.0, in memory. Tansu reports the end offset of a partition as the base
  offset of its last record batch + 1 (two batches of ten records: 11, not 20; see
  docs/operations.md). Anything that reads "up to the end offset" (faust
  changelog recovery, `read_all`, lag) stops early unless every batch holds one record, so
  this profile makes every producer send one record per batch (kafka-python `batch_size=0`,
  aiokafka / faust `max_batch_size=1`) and shortens group timeouts (a first group join on
  Tansu waits about half the session timeout).
- `kafka`: Apache Kafka, batching on, default group timeouts.

Functions taking `settings` and topic names accept the contract name (`obs.metrics.v1`) or
the broker-side name (`settings.topic("obs.metrics.v1")`): the prefix is applied once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, for_code

from services.common.contracts import (
    ALL_TOPICS,
    TOPIC_ACCOUNTS,
    TOPIC_METRICS,
    TOPICS_BY_NAME,
    TopicSpec,
)
from services.common.settings import Settings

ALL_TOPICS_BY_NAME: dict[str, TopicSpec] = {t.name: t for t in ALL_TOPICS}

# kafka-python's CreateTopics error code for "already exists" (idempotent creation).
_TOPIC_ALREADY_EXISTS = 36
_CLIENT_ID = "observatoire"
_BOOTSTRAP_TIMEOUT_MS = 10_000


class TopicsNotReady(RuntimeError):
    """Topics are missing or differ from the contract; the message tells the operator what to do."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class BrokerUnreachable(TopicsNotReady):
    """No broker answered at `settings.kafka_bootstrap`."""

    def __init__(self, settings: Settings, error: Exception) -> None:
        super().__init__(
            [
                f"cannot reach the Kafka broker at {settings.kafka_bootstrap} ({error}): is it "
                "running? (`observatoire run` starts a local one)"
            ]
        )


@dataclass(slots=True)
class TopicReport:
    """What `create_topics` did and found for one topic."""

    name: str  # the broker-side name (with the prefix)
    partitions_expected: int
    partitions_actual: int | None = None
    created: bool = False  # False: it existed already
    configs_expected: dict[str, str] = field(default_factory=dict)
    configs_reported: dict[str, str] = field(default_factory=dict)  # what DescribeConfigs said
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def configs_unverified(self) -> list[str]:
        """Expected configs the broker did not report (cannot be checked there)."""
        return [k for k in self.configs_expected if k not in self.configs_reported]


def broker_topic(settings: Settings, name: str) -> str:
    """The broker-side name of a topic given by its contract or broker-side name."""
    prefix = settings.topic_prefix
    return name if prefix and name.startswith(prefix) else settings.topic(name)


def contract_name(settings: Settings, name: str) -> str:
    """The contract name of a topic given by its contract or broker-side name."""
    prefix = settings.topic_prefix
    return name[len(prefix) :] if prefix and name.startswith(prefix) else name


# --- client configuration ------------------------------------------------------------------


def _is_local(settings: Settings) -> bool:
    return settings.broker_profile == "local"


# Producer batches on the Kafka profile. A snapshot is ~2.4 KB (30 posts): Kafka's default 16 KB
# batch holds six, and a reader's cost goes with the number of batches. Measured on the local
# broker, reading 1.09 M snapshots took 45-56 s in 16 KB batches, 23-24 s in 256 KB ones (and
# 186-227 s one per batch); 1 MB batches were no faster. 256 KB stays well under the broker's
# default 1 MB message size limit.
KAFKA_BATCH_BYTES: Final = 256 * 1024
KAFKA_LINGER_MS: Final = 10


def producer_config(settings: Settings) -> dict[str, Any]:
    """kafka-python `KafkaProducer` keyword arguments for the broker profile."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_servers,
        "client_id": _CLIENT_ID,
        "acks": "all",
        # Tansu 0.6.0 grants kafka-python producer ids (InitProducerId v3+) and checks
        # sequence numbers (test_broker_profile.py): safe on both profiles. (aiokafka, with
        # InitProducerId v0 only, cannot be idempotent on Tansu; faust does not ask it to.)
        "enable_idempotence": True,
        # Topics are created by `observatoire topics create`, never by a producer's metadata
        # request. (Tansu 0.6.0 ignores the flag: a producer creates a missing topic with 4
        # partitions there. Services call `verify_topics` before producing.)
        "allow_auto_create_topics": False,
    }
    if _is_local(settings):
        # One record per batch: the first record always fits, no second one does.
        config |= {"batch_size": 0, "linger_ms": 0}
    else:
        config |= {"batch_size": KAFKA_BATCH_BYTES, "linger_ms": KAFKA_LINGER_MS}
    return config


def make_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """A kafka-python producer configured for the broker profile (overrides win)."""
    return KafkaProducer(**(producer_config(settings) | overrides))


# Measured on Tansu 0.6.0: a fetch that finds no new record is answered only when its max
# wait has passed, even if records arrive meanwhile (Apache Kafka answers as soon as they do).
# faust asks for 1,500 ms, which held every record of a steady stream up to 1.5 s; 100 ms keeps
# the delay short for ten empty fetches a second per idle consumer.
LOCAL_FETCH_MAX_WAIT_MS: Final = 100


def fetch_max_wait_ms(settings: Settings) -> int | None:
    """The consumers' fetch max wait for the broker profile (None: the client's default)."""
    return LOCAL_FETCH_MAX_WAIT_MS if _is_local(settings) else None


def consumer_config(settings: Settings, *, group_id: str | None = None) -> dict[str, Any]:
    """kafka-python `KafkaConsumer` keyword arguments for the broker profile."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_servers,
        "client_id": _CLIENT_ID,
        "group_id": group_id,
        "auto_offset_reset": "earliest",  # Kafka is the system of record: start at the start
        "enable_auto_commit": False,
        "allow_auto_create_topics": False,
    }
    if _is_local(settings) and group_id is not None:
        # Measured on Tansu 0.6.0: a first join takes about session_timeout / 2 (3 s here);
        # kafka-python's defaults (10 s session, 3 s heartbeat, 300 s poll interval) took 23 s.
        config |= {
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 1000,
            "max_poll_interval_ms": 30000,
        }
    if _is_local(settings):
        config["fetch_max_wait_ms"] = LOCAL_FETCH_MAX_WAIT_MS
    return config


def faust_settings(settings: Settings, *, topic_partitions: int | None = None) -> dict[str, Any]:
    """`faust.App(...)` keyword arguments for the broker profile.

    `topic_partitions` is the partition count of faust's own topics (changelogs,
    repartitions); it must equal the source topic's (default: `obs.metrics.v1`'s).
    """
    partitions = topic_partitions or TOPICS_BY_NAME[TOPIC_METRICS].partitions
    config: dict[str, Any] = {
        "broker": [f"kafka://{server}" for server in settings.kafka_servers],
        "broker_client_id": _CLIENT_ID,
        "producer_acks": -1,
        "consumer_auto_offset_reset": "earliest",
        "topic_partitions": partitions,
    }
    if _is_local(settings):
        config |= {
            # One record per batch, or changelog recovery stops at Tansu's short end offset.
            "producer_max_batch_size": 1,
            "producer_linger": 0.0,
            "broker_session_timeout": 6.0,
            "broker_heartbeat_interval": 1.0,
            "broker_rebalance_timeout": 6.0,
            "topic_replication_factor": 1,
        }
    return config


# --- administration ------------------------------------------------------------------------


@contextlib.contextmanager
def _admin(settings: Settings) -> Iterator[KafkaAdminClient]:
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.kafka_servers,
            client_id=f"{_CLIENT_ID}-admin",
            request_timeout_ms=15000,
            bootstrap_timeout_ms=_BOOTSTRAP_TIMEOUT_MS,
        )
    except KafkaError as exc:
        raise BrokerUnreachable(settings, exc) from exc
    try:
        yield admin
    finally:
        admin.close()


def topic_configs(spec: TopicSpec) -> dict[str, str]:
    """The broker configs a contract topic is created with."""
    return {
        "retention.ms": str(spec.retention_ms),
        "cleanup.policy": "compact" if spec.compacted else "delete",
    }


def _describe_partitions(admin: KafkaAdminClient, names: list[str]) -> dict[str, int | None]:
    """Partition count per broker-side topic name; None when the topic does not exist."""
    if not names:
        return {}
    found: dict[str, int | None] = dict.fromkeys(names)
    for topic in admin.describe_topics(names):
        if topic.get("error_code", 0) == 0 and topic.get("name") in found:
            found[topic["name"]] = len(topic.get("partitions") or [])
    return found


def _describe_configs(admin: KafkaAdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    # `all`, not kafka-python's default `modified`: Tansu reports the configs given at
    # creation with source DEFAULT_CONFIG, which the `modified` filter hides.
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    if not resources:
        return {}
    described = admin.describe_configs(resources, config_filter="all")
    per_topic = described.get("topic", {})
    return {
        name: {key: entry.get("value") for key, entry in (per_topic.get(name) or {}).items()}
        for name in names
    }


def create_topics(settings: Settings, specs: Iterable[TopicSpec] = ALL_TOPICS) -> list[TopicReport]:
    """Create every contract topic that is missing, then verify all of them; one report each.

    Idempotent: an existing topic is left alone (its partition count and configs are checked,
    never changed: repartitioning moves keys and is an operator's decision).
    """
    specs = list(specs)
    reports = {
        settings.topic(spec.name): TopicReport(
            name=settings.topic(spec.name),
            partitions_expected=spec.partitions,
            configs_expected=topic_configs(spec),
        )
        for spec in specs
    }
    replication = 1 if _is_local(settings) else -1  # -1: the broker's default.replication.factor
    with _admin(settings) as admin:
        existing = _describe_partitions(admin, list(reports))
        to_create = {
            name: {
                "num_partitions": report.partitions_expected,
                "replication_factor": replication,
                "configs": report.configs_expected,
            }
            for name, report in reports.items()
            if existing[name] is None
        }
        if to_create:
            response = admin.create_topics(to_create, raise_errors=False, wait_for_metadata=False)
            for result in response["topics"]:
                report = reports[result["name"]]
                code = result.get("error_code", 0)
                if code == 0:
                    report.created = True
                elif code != _TOPIC_ALREADY_EXISTS:  # created meanwhile by someone else: fine
                    error = for_code(code).__name__
                    report.problems.append(
                        f"topic {report.name} could not be created: {error} "
                        f"{result.get('error_message') or ''}".rstrip()
                    )
            created = [name for name, r in reports.items() if r.created]
            if created:
                admin.wait_for_topics(created, timeout_ms=15000)
        actual = _describe_partitions(admin, list(reports))
        configs = _describe_configs(admin, [n for n, p in actual.items() if p is not None])
    for name, report in reports.items():
        report.partitions_actual = actual[name]
        if actual[name] is None:
            if not report.problems:
                report.problems.append(f"topic {name} is missing after creation")
            continue
        if actual[name] != report.partitions_expected:
            report.problems.append(
                f"topic {name} has {actual[name]} partitions, "
                f"the contract says {report.partitions_expected}"
            )
        reported = configs.get(name, {})
        for key, wanted in report.configs_expected.items():
            if key in reported:
                report.configs_reported[key] = reported[key]
                if reported[key] != wanted:
                    report.problems.append(
                        f"topic {name} has {key}={reported[key]}, the contract says {wanted}"
                    )
    return list(reports.values())


def verify_topics(settings: Settings, names: Iterable[str]) -> None:
    """Raise `TopicsNotReady` unless every named contract topic exists with its partition count.

    Services call this before they start consuming or producing. The message names every
    problem and what the operator should do.
    """
    specs = []
    for name in names:
        spec = ALL_TOPICS_BY_NAME.get(contract_name(settings, name))
        if spec is None:
            raise ValueError(f"{name!r} is not a contract topic")
        specs.append(spec)
    with _admin(settings) as admin:
        actual = _describe_partitions(admin, [settings.topic(s.name) for s in specs])
    problems = []
    for spec in specs:
        name = settings.topic(spec.name)
        count = actual[name]
        if count is None:
            problems.append(f"topic {name} is missing: run `observatoire topics create`")
        elif count != spec.partitions:
            problems.append(
                f"topic {name} has {count} partitions, the contract says {spec.partitions} "
                '(see "Topics" in docs/operations.md)'
            )
    if problems:
        raise TopicsNotReady(problems)


# --- reading the log -----------------------------------------------------------------------


@contextlib.contextmanager
def _plain_consumer(settings: Settings) -> Iterator[KafkaConsumer]:
    try:
        consumer = KafkaConsumer(
            **consumer_config(settings), bootstrap_timeout_ms=_BOOTSTRAP_TIMEOUT_MS
        )
    except KafkaError as exc:
        raise BrokerUnreachable(settings, exc) from exc
    try:
        yield consumer
    finally:
        consumer.close()


def _partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise TopicsNotReady([f"topic {topic} is missing: run `observatoire topics create`"])
    return [TopicPartition(topic, p) for p in sorted(partitions)]


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """The end offset (the next offset to be written) of each partition of a topic."""
    name = broker_topic(settings, topic)
    with _plain_consumer(settings) as consumer:
        ends = consumer.end_offsets(_partitions(consumer, name))
    return {tp.partition: offset for tp, offset in ends.items()}


def topic_is_empty(settings: Settings, topic: str) -> bool:
    """True when no partition of the topic holds a record."""
    name = broker_topic(settings, topic)
    with _plain_consumer(settings) as consumer:
        tps = _partitions(consumer, name)
        starts = consumer.beginning_offsets(tps)
        ends = consumer.end_offsets(tps)
    return all(ends[tp] <= starts[tp] for tp in tps)


def read_all(settings: Settings, topic: str, *, timeout: float = 30.0) -> list[ConsumerRecord]:
    """Every record of a topic, from the beginning to the end offsets read when it starts.

    Records come in partition order, then offset order. Raises `TimeoutError` if the end
    offsets are not reached within `timeout` seconds.
    """
    name = broker_topic(settings, topic)
    deadline = time.monotonic() + timeout
    records: dict[int, list[ConsumerRecord]] = {}
    with _plain_consumer(settings) as consumer:
        tps = _partitions(consumer, name)
        ends = consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        pending = {tp for tp in pending if consumer.position(tp) < ends[tp]}
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                positions = {tp.partition: consumer.position(tp) for tp in pending}
                ends_left = {tp.partition: ends[tp] for tp in pending}
                raise TimeoutError(
                    f"read_all({name}): positions {positions} did not reach the end offsets "
                    f"{ends_left} within {timeout} s"
                )
            batch = consumer.poll(timeout_ms=int(min(remaining, 0.5) * 1000))
            for tp, polled in batch.items():
                keep = [r for r in polled if r.offset < ends[tp]]
                records.setdefault(tp.partition, []).extend(keep)
            pending = {tp for tp in pending if consumer.position(tp) < ends[tp]}
    return [r for partition in sorted(records) for r in records[partition]]


# --- seeding -------------------------------------------------------------------------------


def seed_accounts_if_empty(settings: Settings, records: Sequence[Mapping[str, Any]]) -> int:
    """Produce `records` to `obs.accounts.v1` (key: each record's `id`) if the topic is empty.

    Returns how many records were produced (0 when the topic already held records). Waits
    for every delivery. Not safe against two seeders racing: `topics create` is run once.
    """
    if not records or not topic_is_empty(settings, TOPIC_ACCOUNTS):
        return 0
    name = settings.topic(TOPIC_ACCOUNTS)
    producer = make_producer(settings)
    try:
        futures = [
            producer.send(name, key=str(record["id"]).encode(), value=orjson.dumps(record))
            for record in records
        ]
        producer.flush()
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close()
    return len(futures)
