"""The configs each broker profile expects of the contract topics, and how a mismatch reads.

Pure: the profiles' tables, `topic_configs` and `TopicReport.check_configs`; `create_topics`
runs against a fake admin client (no broker), on the `kafka` profile no test broker runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from services.common.contracts import (
    ALL_TOPICS_BY_NAME,
    CONSUMED_TOPICS,
    DLQ_TOPICS,
    TOPIC_METRICS,
    TOPICS,
    TopicSpec,
)
from services.common.kafka import admin as admin_module
from services.common.kafka.admin import TopicReport, create_topics, topic_configs
from services.common.kafka.profiles import KAFKA, LOCAL, PROFILES
from services.common.settings import Settings

TIMESTAMP_TYPE = "message.timestamp.type"
PRODUCED_ONLY = [spec for spec in TOPICS if spec.name not in CONSUMED_TOPICS]


def test_every_profile_has_its_consumed_topic_configs() -> None:
    assert dict(KAFKA.consumed_topic_configs) == {TIMESTAMP_TYPE: "LogAppendTime"}
    assert dict(LOCAL.consumed_topic_configs) == {}
    assert set(PROFILES) == {"local", "kafka"}


@pytest.mark.parametrize("name", CONSUMED_TOPICS)
def test_the_kafka_profile_stamps_each_consumed_topic_with_the_broker_clock(name: str) -> None:
    spec = ALL_TOPICS_BY_NAME[name]

    configs = topic_configs(spec, KAFKA)

    assert configs[TIMESTAMP_TYPE] == "LogAppendTime"
    # The contract's configs are still there.
    assert configs["retention.ms"] == str(spec.retention_ms)
    assert configs["cleanup.policy"] == ("compact" if spec.compacted else "delete")
    # Ignored under LogAppendTime: deliberately not set (profiles.py).
    assert "message.timestamp.after.max.ms" not in configs


@pytest.mark.parametrize("spec", [*PRODUCED_ONLY, *DLQ_TOPICS], ids=lambda spec: spec.name)
def test_the_kafka_profile_leaves_dlq_and_produced_only_topics_alone(spec: TopicSpec) -> None:
    assert TIMESTAMP_TYPE not in topic_configs(spec, KAFKA)
    assert topic_configs(spec, KAFKA) == topic_configs(spec, LOCAL)


@pytest.mark.parametrize("name", sorted(ALL_TOPICS_BY_NAME))
def test_the_local_profile_claims_no_timestamp_type(name: str) -> None:
    spec = ALL_TOPICS_BY_NAME[name]

    assert topic_configs(spec, LOCAL) == {
        "retention.ms": str(spec.retention_ms),
        "cleanup.policy": "compact" if spec.compacted else "delete",
    }


def _metrics_report() -> TopicReport:
    spec = ALL_TOPICS_BY_NAME[TOPIC_METRICS]
    return TopicReport(
        name="p-obs.metrics.v1",
        partitions_expected=spec.partitions,
        configs_expected=topic_configs(spec, KAFKA),
    )


def test_a_create_time_topic_is_a_mismatch_naming_topic_key_and_both_values() -> None:
    report = _metrics_report()

    report.check_configs(
        {"retention.ms": "-1", "cleanup.policy": "delete", TIMESTAMP_TYPE: "CreateTime"}
    )

    assert not report.ok
    assert report.problems == [
        "topic p-obs.metrics.v1 has message.timestamp.type=CreateTime, "
        "the contract says LogAppendTime"
    ]
    assert report.configs_reported[TIMESTAMP_TYPE] == "CreateTime"
    assert report.configs_unverified == []


def test_a_log_append_time_topic_is_ok_and_an_unreported_key_is_unverified() -> None:
    matching = _metrics_report()
    matching.check_configs(
        {"retention.ms": "-1", "cleanup.policy": "delete", TIMESTAMP_TYPE: "LogAppendTime"}
    )
    silent = _metrics_report()
    silent.check_configs({"retention.ms": "-1", "cleanup.policy": "delete"})

    assert matching.ok and matching.configs_unverified == []
    assert silent.ok and silent.configs_unverified == [TIMESTAMP_TYPE]


class _FakeAdmin:
    """Enough of KafkaAdminClient for `create_topics`: each topic's partitions and configs."""

    def __init__(self, topics: dict[str, tuple[int, dict[str, str]]]) -> None:
        self.topics = topics
        self.created: dict[str, Any] = {}

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [
            {"name": name, "error_code": 0, "partitions": list(range(self.topics[name][0]))}
            if name in self.topics
            else {"name": name, "error_code": 3, "partitions": []}
            for name in names
        ]

    def create_topics(self, new: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.created.update(new)
        for name, spec in new.items():
            self.topics[name] = (spec["num_partitions"], dict(spec["configs"]))
        return {"topics": [{"name": name, "error_code": 0} for name in new]}

    def wait_for_topics(self, names: list[str], **_: Any) -> None:
        pass

    def describe_configs(self, resources: list[Any], **_: Any) -> dict[str, Any]:
        return {
            "topic": {
                r.name: {k: {"value": v} for k, v in self.topics[r.name][1].items()}
                for r in resources
            }
        }


def test_create_topics_on_the_kafka_profile_reports_an_existing_create_time_topic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(_env_file=None, broker_profile="kafka", topic_prefix="p-")
    metrics = settings.topic(TOPIC_METRICS)
    fake = _FakeAdmin(
        {
            metrics: (
                12,
                {"retention.ms": "-1", "cleanup.policy": "delete", TIMESTAMP_TYPE: "CreateTime"},
            )
        }
    )

    @contextlib.contextmanager
    def fake_admin_client(_: Settings) -> Iterator[_FakeAdmin]:
        yield fake

    monkeypatch.setattr(admin_module, "admin_client", fake_admin_client)

    reports = {r.name: r for r in create_topics(settings)}

    assert reports[metrics].problems == [
        f"topic {metrics} has message.timestamp.type=CreateTime, the contract says LogAppendTime"
    ]
    assert not reports[metrics].created
    # Every other topic was created with the profile's configs, and is ok.
    assert all(r.ok for name, r in reports.items() if name != metrics)
    for name in CONSUMED_TOPICS:
        if name != TOPIC_METRICS:
            assert fake.created[settings.topic(name)]["configs"][TIMESTAMP_TYPE] == "LogAppendTime"
    for spec in [*PRODUCED_ONLY, *DLQ_TOPICS]:
        assert TIMESTAMP_TYPE not in fake.created[settings.topic(spec.name)]["configs"]
