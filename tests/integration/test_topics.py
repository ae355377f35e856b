"""Topic administration against the real broker: create, verify, seed `obs.accounts.v1`."""

from __future__ import annotations

import io

import orjson
import pytest
from kafka import KafkaAdminClient
from rich.console import Console

from services.cli.topics import run_create
from services.common.account_seed import seed_accounts_if_empty
from services.common.contracts import ALL_TOPICS, TOPIC_ACCOUNTS, TOPIC_METRICS, TOPIC_SCORES
from services.common.kafka import TopicsNotReady, create_topics, topic_is_empty, verify_topics
from services.common.settings import Settings
from tests.kafka_read import read_all

ALL_NAMES = [spec.name for spec in ALL_TOPICS]


def _create_raw(settings: Settings, name: str, partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_servers)
    try:
        admin.create_topics(
            {settings.topic(name): {"num_partitions": partitions, "replication_factor": 1}}
        )
    finally:
        admin.close()


def test_create_topics_creates_every_contract_topic_with_its_partitions(
    settings: Settings,
) -> None:
    reports = create_topics(settings)

    assert {r.name for r in reports} == {settings.topic(spec.name) for spec in ALL_TOPICS}
    by_name = {r.name: r for r in reports}
    for spec in ALL_TOPICS:
        report = by_name[settings.topic(spec.name)]
        assert report.ok, report.problems
        assert report.created
        assert report.partitions_actual == spec.partitions
    # Tansu reports the configs given at creation: they are verified, not assumed.
    accounts = by_name[settings.topic(TOPIC_ACCOUNTS)]
    assert accounts.configs_reported == {"retention.ms": "-1", "cleanup.policy": "compact"}
    scores = by_name[settings.topic(TOPIC_SCORES)]
    assert scores.configs_reported == {
        "retention.ms": str(30 * 86_400_000),
        "cleanup.policy": "delete",
    }
    verify_topics(settings, ALL_NAMES)


def test_create_topics_on_the_local_profile_claims_no_log_append_time(settings: Settings) -> None:
    # Tansu 0.6.0 accepts message.timestamp.type and ignores it: the local profile neither sets
    # nor expects it, so `topics create` claims no broker-clock timestamps it does not have.
    reports = create_topics(settings)

    assert all(report.ok for report in reports), [r.problems for r in reports]
    metrics = next(r for r in reports if r.name == settings.topic(TOPIC_METRICS))
    assert metrics.configs_expected == {"retention.ms": "-1", "cleanup.policy": "delete"}
    assert not any("message.timestamp.type" in r.configs_expected for r in reports)


def test_create_topics_is_idempotent(settings: Settings) -> None:
    create_topics(settings)
    again = create_topics(settings)

    assert all(r.ok and not r.created for r in again)
    verify_topics(settings, ALL_NAMES)


def test_verify_topics_names_a_missing_topic_and_the_command_that_creates_it(
    settings: Settings,
) -> None:
    with pytest.raises(TopicsNotReady) as raised:
        verify_topics(settings, [TOPIC_METRICS])

    assert str(raised.value) == (
        f"topic {settings.topic(TOPIC_METRICS)} is missing: run `observatoire topics create`"
    )


def test_verify_topics_accepts_contract_or_broker_side_names(settings: Settings) -> None:
    create_topics(settings)

    verify_topics(settings, [TOPIC_METRICS, settings.topic(TOPIC_ACCOUNTS)])


def test_verify_topics_names_a_partition_mismatch(settings: Settings) -> None:
    _create_raw(settings, TOPIC_METRICS, partitions=4)

    with pytest.raises(TopicsNotReady) as raised:
        verify_topics(settings, [TOPIC_METRICS])

    assert f"topic {settings.topic(TOPIC_METRICS)} has 4 partitions, the contract says 12" in str(
        raised.value
    )
    # create_topics leaves the wrong topic alone and reports it.
    report = next(r for r in create_topics(settings) if r.name == settings.topic(TOPIC_METRICS))
    assert not report.ok and not report.created
    assert report.partitions_actual == 4


def test_topics_create_command_fails_on_a_partition_mismatch(settings: Settings) -> None:
    _create_raw(settings, TOPIC_METRICS, partitions=4)
    out = io.StringIO()

    code = run_create(settings, Console(file=out, width=200))

    assert code == 1
    assert "has 4 partitions, the contract says 12" in out.getvalue()


def test_topics_create_command_prints_the_report_and_succeeds(settings: Settings) -> None:
    out = io.StringIO()

    code = run_create(settings, Console(file=out, width=200))

    assert code == 0, out.getvalue()
    assert settings.topic(TOPIC_METRICS) in out.getvalue()
    assert "12/12" in out.getvalue()
    # The seed article's malformed handle is reported with its line and reason, not seeded.
    assert "accounts.csv line 10: dep-74 '@haut Savoie_dep74': contains a space" in out.getvalue()
    assert "seeded 18 bundled accounts" in out.getvalue()


def test_seed_accounts_if_empty_seeds_once(settings: Settings) -> None:
    create_topics(settings)
    records = [
        {"id": "dep-32", "platform": "instagram", "handle": "gersledepartement"},
        {"id": "reg-76", "platform": "instagram", "handle": "occitanie"},
    ]
    assert topic_is_empty(settings, TOPIC_ACCOUNTS)

    assert seed_accounts_if_empty(settings, records) == 2
    assert seed_accounts_if_empty(settings, records) == 0

    stored = read_all(settings, TOPIC_ACCOUNTS, timeout=10)
    assert [(r.key, orjson.loads(r.value)) for r in stored] == [
        (b"dep-32", records[0]),
        (b"reg-76", records[1]),
    ]
    assert not topic_is_empty(settings, TOPIC_ACCOUNTS)
