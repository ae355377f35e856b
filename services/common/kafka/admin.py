"""Topic administration: create and verify the contract topics, their end offsets, names.

Functions taking `settings` and topic names accept the contract name (`obs.metrics.v1`) or
the broker-side name (`settings.topic("obs.metrics.v1")`): the prefix is applied once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import for_code

from services.common.contracts import ALL_TOPICS, CONSUMED_TOPICS, TopicSpec
from services.common.kafka.clients import admin_client, plain_consumer, profile
from services.common.kafka.errors import BrokerUnreachable, TopicsNotReady
from services.common.kafka.profiles import Profile
from services.common.settings import Settings

__all__ = ["BrokerUnreachable", "TopicsNotReady"]

ALL_TOPICS_BY_NAME: dict[str, TopicSpec] = {t.name: t for t in ALL_TOPICS}

# kafka-python's CreateTopics error code for "already exists" (idempotent creation).
_TOPIC_ALREADY_EXISTS = 36


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

    def check_configs(self, reported: Mapping[str, str]) -> None:
        """Compare the expected configs with what DescribeConfigs reported for this topic.

        Each expected key the broker reports is kept in `configs_reported`; a different value
        is a problem naming the topic, the key, the broker's value and the expected one. A key
        the broker does not report stays unverified (`configs_unverified`), not a problem.
        """
        for key, wanted in self.configs_expected.items():
            if key not in reported:
                continue
            value = self.configs_reported[key] = reported[key]
            if value != wanted:
                self.problems.append(
                    f"topic {self.name} has {key}={value}, the contract says {wanted}"
                )


def broker_topic(settings: Settings, name: str) -> str:
    """The broker-side name of a topic given by its contract or broker-side name."""
    prefix = settings.topic_prefix
    return name if prefix and name.startswith(prefix) else settings.topic(name)


def contract_name(settings: Settings, name: str) -> str:
    """The contract name of a topic given by its contract or broker-side name."""
    prefix = settings.topic_prefix
    return name[len(prefix) :] if prefix and name.startswith(prefix) else name


def topic_configs(spec: TopicSpec, table: Profile) -> dict[str, str]:
    """The broker configs a contract topic is created with (and checked against) on a profile.

    Every topic: `retention.ms` and `cleanup.policy`, from the contract. The topics the services
    consume (`CONSUMED_TOPICS`; not their dead-letter topics, which no service consumes) also
    get the profile's `consumed_topic_configs`: `message.timestamp.type=LogAppendTime` on the
    `kafka` profile, nothing on `local` (Tansu ignores it). `message.timestamp.after.max.ms`
    is not set: it only bounds CreateTime timestamps (profiles.py says why).
    """
    configs = {
        "retention.ms": str(spec.retention_ms),
        "cleanup.policy": "compact" if spec.compacted else "delete",
    }
    if spec.name in CONSUMED_TOPICS:
        configs |= table.consumed_topic_configs
    return configs


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
    table = profile(settings)
    reports = {
        settings.topic(spec.name): TopicReport(
            name=settings.topic(spec.name),
            partitions_expected=spec.partitions,
            configs_expected=topic_configs(spec, table),
        )
        for spec in specs
    }
    replication = table.replication_factor
    with admin_client(settings) as admin:
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
        report.check_configs(configs.get(name, {}))
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
    with admin_client(settings) as admin:
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


def partitions_of(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise TopicsNotReady([f"topic {topic} is missing: run `observatoire topics create`"])
    return [TopicPartition(topic, p) for p in sorted(partitions)]


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """The end offset (the next offset to be written) of each partition of a topic."""
    name = broker_topic(settings, topic)
    with plain_consumer(settings) as consumer:
        ends = consumer.end_offsets(partitions_of(consumer, name))
    return {tp.partition: offset for tp, offset in ends.items()}


def topic_is_empty(settings: Settings, topic: str) -> bool:
    """True when no partition of the topic holds a record."""
    name = broker_topic(settings, topic)
    with plain_consumer(settings) as consumer:
        tps = partitions_of(consumer, name)
        starts = consumer.beginning_offsets(tps)
        ends = consumer.end_offsets(tps)
    return all(ends[tp] <= starts[tp] for tp in tps)
