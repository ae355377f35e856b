"""The only place a Kafka client or a faust app is constructed: from Settings, through the
broker profile's table (services/common/kafka/profiles.py).

kafka-python serves the synchronous side (the collector's producer thread, the accounts
follower, the CLI, topic administration); aiokafka the asyncio side (the scorer's and the
publisher's producers, bulk reads of a topic); faust (over aiokafka) the streaming services.
docs/decisions.md §22 says why both libraries stay.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from services.common.contracts import TOPIC_METRICS, TOPICS_BY_NAME
from services.common.kafka.compat import set_fetch_max_wait
from services.common.kafka.errors import BrokerUnreachable
from services.common.kafka.profiles import BOOTSTRAP_TIMEOUT_MS, PROFILES, Profile, Security
from services.common.settings import Settings


def profile(settings: Settings) -> Profile:
    """The broker profile's table."""
    return PROFILES[settings.broker_profile]


def security(settings: Settings) -> Security:
    """The connection security the settings ask for (InvalidKafkaSecurity if unusable)."""
    return Security.from_settings(settings)


def _sync_base(settings: Settings) -> dict[str, Any]:
    return {"bootstrap_servers": settings.kafka_servers} | security(settings).kafka_python()


def _async_base(settings: Settings) -> dict[str, Any]:
    return {"bootstrap_servers": settings.kafka_servers} | security(settings).aiokafka()


# --- kafka-python ---------------------------------------------------------------------------


def producer_config(settings: Settings) -> dict[str, Any]:
    """kafka-python `KafkaProducer` keyword arguments for the broker profile."""
    return _sync_base(settings) | dict(profile(settings).producer)


def make_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """A kafka-python producer configured for the broker profile (overrides win)."""
    return KafkaProducer(**(producer_config(settings) | overrides))


def consumer_config(settings: Settings, *, group_id: str | None = None) -> dict[str, Any]:
    """kafka-python `KafkaConsumer` keyword arguments for the broker profile."""
    table = profile(settings)
    config = _sync_base(settings) | dict(table.consumer) | {"group_id": group_id}
    if group_id is not None:
        config |= dict(table.group_consumer)
    return config


def make_consumer(
    settings: Settings, *, group_id: str | None = None, bootstrap_timeout_ms: int | None = None
) -> KafkaConsumer:
    """A kafka-python consumer (not subscribed); `bootstrap_timeout_ms` bounds the wait for
    a broker at construction (kafka-python's default otherwise)."""
    config = consumer_config(settings, group_id=group_id)
    if bootstrap_timeout_ms is not None:
        config["bootstrap_timeout_ms"] = bootstrap_timeout_ms
    return KafkaConsumer(**config)


@contextlib.contextmanager
def plain_consumer(settings: Settings) -> Iterator[KafkaConsumer]:
    """A group-less consumer for reading offsets or a topic; BrokerUnreachable if no broker."""
    try:
        consumer = make_consumer(settings, bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
    except KafkaError as exc:
        raise BrokerUnreachable(settings, exc) from exc
    try:
        yield consumer
    finally:
        consumer.close()


def admin_config(settings: Settings) -> dict[str, Any]:
    """kafka-python `KafkaAdminClient` keyword arguments for the broker profile."""
    return _sync_base(settings) | dict(profile(settings).admin)


@contextlib.contextmanager
def admin_client(settings: Settings) -> Iterator[KafkaAdminClient]:
    """An admin client for the broker profile; BrokerUnreachable if no broker answers."""
    try:
        admin = KafkaAdminClient(**admin_config(settings))
    except KafkaError as exc:
        raise BrokerUnreachable(settings, exc) from exc
    try:
        yield admin
    finally:
        admin.close()


def probe_admin(bootstrap: str, timeout_ms: int) -> KafkaAdminClient:
    """An admin client that only checks a local broker answers (the local stack's probe,
    which has an address and no Settings; unauthenticated: Tansu 0.6.0 cannot authenticate)."""
    return KafkaAdminClient(
        bootstrap_servers=[bootstrap],
        client_id="obs-localstack-probe",
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
    )


# --- aiokafka -------------------------------------------------------------------------------


def event_producer_config(settings: Settings) -> dict[str, Any]:
    """aiokafka `AIOKafkaProducer` keyword arguments for records whose offsets are read back."""
    return _async_base(settings) | dict(profile(settings).event_producer)


def event_producer(settings: Settings) -> AIOKafkaProducer:
    """An aiokafka producer for records whose offsets are read back (not started)."""
    return AIOKafkaProducer(**event_producer_config(settings))


def scores_producer_config(settings: Settings) -> dict[str, Any]:
    """aiokafka `AIOKafkaProducer` keyword arguments of the scorer's `obs.scores.v1` producer."""
    return _async_base(settings) | dict(profile(settings).scores_producer)


def scores_producer(settings: Settings) -> AIOKafkaProducer:
    """The scorer's batched producer of `obs.scores.v1` (not started)."""
    return AIOKafkaProducer(**scores_producer_config(settings))


def bulk_consumer_config(settings: Settings) -> dict[str, Any]:
    """aiokafka `AIOKafkaConsumer` keyword arguments for reading whole partitions fast."""
    return _async_base(settings) | dict(profile(settings).bulk_consumer)


def bulk_consumer(settings: Settings) -> AIOKafkaConsumer:
    """An aiokafka consumer for reading whole partitions fast (not started, not assigned)."""
    return AIOKafkaConsumer(**bulk_consumer_config(settings))


# --- faust ----------------------------------------------------------------------------------


def fetch_max_wait_ms(settings: Settings) -> int | None:
    """The faust consumers' fetch max wait for the broker profile (None: faust's)."""
    return profile(settings).fetch_max_wait_ms


def faust_settings(settings: Settings, *, topic_partitions: int | None = None) -> dict[str, Any]:
    """`faust.App(...)` keyword arguments for the broker profile.

    `topic_partitions` is the partition count of faust's own topics (changelogs,
    repartitions); it must equal the source topic's (default: `obs.metrics.v1`'s).
    """
    partitions = topic_partitions or TOPICS_BY_NAME[TOPIC_METRICS].partitions
    table = profile(settings)
    return (
        {"broker": [f"kafka://{server}" for server in settings.kafka_servers]}
        | dict(table.faust)
        | {"topic_partitions": partitions}
        | security(settings).faust()
    )


class _ConsumerThread(AIOKafkaConsumerThread):
    """faust's consumer thread with the app's fetch max wait (faust hard-codes 1,500 ms)."""

    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait = getattr(self.app, "fetch_max_wait_ms", None)
        if wait is not None:
            set_fetch_max_wait(consumer, wait)
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class App(faust.App):
    """A faust app whose consumer uses the broker profile's fetch max wait (None: faust's),
    and which remembers the Settings it was built from."""

    fetch_max_wait_ms: int | None = None
    settings: Settings | None = None

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


def faust_app(service: str, settings: Settings) -> App:
    """The faust app of a service: raw bytes in and out, no web server, no state in the cwd."""
    datadir = settings.run_dir / f"faust-{service}"
    datadir.mkdir(parents=True, exist_ok=True)
    app = App(
        f"{settings.topic_prefix}observatoire-{service}",
        value_serializer="raw",
        key_serializer="raw",
        autodiscover=False,
        web_enabled=False,
        datadir=str(datadir),
        **faust_settings(settings),
    )
    app.fetch_max_wait_ms = fetch_max_wait_ms(settings)
    app.settings = settings
    return app
