"""The authenticated compose stack agrees with the contract: Kafka principals, ACLs, Redis users,
credentials per container, no committed secret.

Nothing here starts Kafka, Redis or Docker (none runs on the development machines): the tests
parse docker-compose.yml, deploy/kafka/acls.txt (the table deploy/kafka/init.sh applies),
deploy/redis/users.acl.template and the env templates, and compare them with the contract as
data: the producers and consumers each topic's JSON Schema lists, checked in turn against
ARCHITECTURE's Shape table below.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common.contracts import ALL_TOPICS, CONSUMED_TOPICS, TOPICS
from services.common.kafka.profiles import KAFKA

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ACL_TABLE = ROOT / "deploy" / "kafka" / "acls.txt"
REDIS_TEMPLATE = ROOT / "deploy" / "redis" / "users.acl.template"
SECRETS_EXAMPLE = ROOT / "deploy" / "secrets.env.example"
SECRETS_FILE = "deploy/secrets.env"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"
SCHEMAS = ROOT / "services" / "common" / "schemas"

METRICS, ACCOUNTS, SCORES = "obs.metrics.v1", "obs.accounts.v1", "obs.scores.v1"
RANK_CHANGES, DEAD_LINKS, EDITIONS = "obs.rank-changes.v1", "obs.dead-links.v1", "obs.editions.v1"
COMMANDS, COMMAND_RESULTS = "obs.commands.v1", "obs.command-results.v1"
DAY_SUMMARIES = "obs.day-summaries.v1"

PRINCIPALS = ("collector", "scorer", "publisher", "api", "operator")
# Who a schema's `producers` / `consumers` entry names (its first word).
SCHEMA_ROLES = {
    "collector": "collector",
    "scorer": "scorer",
    "publisher": "publisher",
    "api": "api",
    "cli": "operator",
    "cli:": "operator",
    "external": None,
}

# ARCHITECTURE.md, "Shape": the topics each service writes; `operator` is the CLI
# (`topics create` seeds accounts, `replay` writes metrics and accounts, `accounts set` and
# `edition publish` write commands).
SHAPE_WRITES: dict[str, set[str]] = {
    "collector": {METRICS, ACCOUNTS},
    "scorer": {SCORES},
    "publisher": {RANK_CHANGES, DEAD_LINKS, EDITIONS, COMMAND_RESULTS, ACCOUNTS},
    "api": {COMMANDS},
    "operator": {ACCOUNTS, METRICS, COMMANDS},
}
# Where the code writes more than the Shape table says, on purpose (docs/deployment.md):
# the publisher requests automatic publications (OBS_EDITION_AUTO_PUBLISH_HOURS) as commands;
# the scorer records its day summaries for rebuilds (docs/decisions.md §55).
WRITES_BEYOND_SHAPE: dict[str, set[str]] = {"publisher": {COMMANDS}, "scorer": {DAY_SUMMARIES}}
# Reads the schemas do not list: the graph collector reads back recent snapshots
# (services/collector/recent_attempts.py); the publisher restores command results at start
# (services/publisher/recovery.py).
READS_BEYOND_SCHEMAS: dict[str, set[str]] = {
    "collector": {METRICS},
    "publisher": {COMMAND_RESULTS},
}
# Each consumer's dead-letter topics: the topics its faust agents dead-letter
# (services/scorer/topics.py, services/publisher/topics.py).
DLQ_WRITERS: dict[str, set[str]] = {
    "scorer": {f"{METRICS}.dlq", f"{ACCOUNTS}.dlq"},
    "publisher": {f"{SCORES}.dlq", f"{COMMANDS}.dlq"},
}
# The faust services: their app id is `observatoire-<service>` (clients.faust_app), which is
# both their consumer group and the prefix of faust's own topics.
FAUST_SERVICES = ("scorer", "publisher")
FAUST_TOPIC_OPERATIONS = {"Create", "Read", "Write", "Describe"}
# The principals whose producers are kafka-python's (clients.make_producer), idempotent when
# the kafka profile says so: the collector and the CLI. aiokafka and faust producers are not.
KAFKA_PYTHON_PRODUCERS = {"collector", "operator"}

# Which container runs as which Kafka principal and Redis user (None: no Redis).
CONTAINERS: dict[str, tuple[str, str | None]] = {
    "collector": ("collector", None),
    "scorer": ("scorer", "obs-scorer"),
    "publisher": ("publisher", "obs-publisher"),
    "api": ("api", "obs-api"),
    "topics": ("operator", "obs-operator"),
    "cli": ("operator", "obs-operator"),
}
# Who signs or verifies operator commands.
COMMAND_KEY_CONTAINERS = {"api", "publisher", "topics", "cli"}
REDIS_USERS = {"obs-scorer", "obs-publisher", "obs-api", "obs-operator"}

Acl = tuple[str, str, str, str, str]  # principal, resource type, pattern type, name, operation


# --- the contract as data ----------------------------------------------------------------------


def _schema_roles(entries: Iterable[str]) -> set[str]:
    roles = set()
    for entry in entries:
        first = entry.split()[0]
        assert first in SCHEMA_ROLES, f"unknown producer or consumer {entry!r}"
        if (role := SCHEMA_ROLES[first]) is not None:
            roles.add(role)
    return roles


def _schema_rights() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(writes, reads) per principal, from each topic schema's producers and consumers."""
    writes: dict[str, set[str]] = defaultdict(set)
    reads: dict[str, set[str]] = defaultdict(set)
    for spec in TOPICS:
        schema = json.loads((SCHEMAS / f"{spec.name}.json").read_text(encoding="utf-8"))
        for role in _schema_roles(schema["producers"]):
            writes[role].add(spec.name)
        for role in _schema_roles(schema["consumers"]):
            reads[role].add(spec.name)
    return writes, reads


def expected_acls() -> set[Acl]:
    """Every ACL each principal needs, derived from the contract (never from acls.txt)."""
    schema_writes, schema_reads = _schema_rights()
    acls: set[Acl] = set()

    def grant(
        principal: str, resource: str, pattern: str, names: Iterable[str], ops: set[str]
    ) -> None:
        acls.update((principal, resource, pattern, n, op) for n in names for op in ops)

    for principal in PRINCIPALS:
        writes = schema_writes[principal] | DLQ_WRITERS.get(principal, set())
        reads = schema_reads[principal] | READS_BEYOND_SCHEMAS.get(principal, set())
        grant(principal, "topic", "literal", writes, {"Write"})
        grant(principal, "topic", "literal", reads, {"Read"})
        if principal != "operator":  # the operator describes every topic (below)
            grant(principal, "topic", "literal", writes | reads, {"Describe"})
    for service in FAUST_SERVICES:
        app_id = f"observatoire-{service}"
        grant(service, "group", "literal", [app_id], {"Read"})
        grant(service, "topic", "prefixed", [f"{app_id}-"], FAUST_TOPIC_OPERATIONS)
    # `topics create`: creates the missing topics, describes them and their configs.
    grant("operator", "topic", "literal", [t.name for t in ALL_TOPICS], {"Create", "Describe"})
    grant("operator", "topic", "literal", [t.name for t in ALL_TOPICS], {"DescribeConfigs"})
    if KAFKA.producer.get("enable_idempotence"):
        for principal in KAFKA_PYTHON_PRODUCERS:
            grant(principal, "cluster", "literal", ["kafka-cluster"], {"IdempotentWrite"})
    return acls


def table_acls(text: str | None = None) -> set[Acl]:
    """The ACLs deploy/kafka/acls.txt grants (as init.sh reads it)."""
    text = ACL_TABLE.read_text(encoding="utf-8") if text is None else text
    acls: set[Acl] = set()
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        principal, resource, pattern, operations, *names = line.split()
        assert names, f"no resource name in {line!r}"
        acls.update(
            (principal, resource, pattern, name, op)
            for name in names
            for op in operations.split(",")
        )
    return acls


def _by_principal(acls: Iterable[Acl]) -> dict[str, set[tuple[str, str, str, str]]]:
    grouped: dict[str, set[tuple[str, str, str, str]]] = defaultdict(set)
    for principal, *rest in acls:
        grouped[principal].add((rest[0], rest[1], rest[2], rest[3]))
    return grouped


# --- the contract, the Shape table and the code agree -----------------------------------------


def test_schema_producers_are_the_shape_tables_writers_with_the_documented_exceptions() -> None:
    schema_writes, _ = _schema_rights()
    for principal in PRINCIPALS:
        expected = SHAPE_WRITES[principal] | WRITES_BEYOND_SHAPE.get(principal, set())
        assert schema_writes[principal] == expected, principal


def test_every_consumed_topic_has_exactly_one_dead_letter_writer() -> None:
    written = sorted(dlq for dlqs in DLQ_WRITERS.values() for dlq in dlqs)
    assert written == sorted(f"{topic}.dlq" for topic in CONSUMED_TOPICS)


def test_faust_app_ids_are_observatoire_and_the_service_name() -> None:
    clients = (ROOT / "services" / "common" / "kafka" / "clients.py").read_text(encoding="utf-8")
    assert 'f"{settings.topic_prefix}observatoire-{service}"' in clients
    for service in FAUST_SERVICES:
        app = (ROOT / "services" / service / "app.py").read_text(encoding="utf-8")
        assert f'faust_app("{service}", settings)' in app


def test_no_kafka_python_consumer_joins_a_group() -> None:
    """Only the faust apps have consumer groups: every other consumer assigns partitions."""
    calls = re.compile(r"\b(?:make_consumer|consumer_config)\([^)]*group_id=")
    builder = ROOT / "services" / "common" / "kafka" / "clients.py"
    for path in (ROOT / "services").rglob("*.py"):
        if path == builder:  # passes its caller's group_id through
            continue
        assert not calls.search(path.read_text(encoding="utf-8")), path


# --- deploy/kafka/acls.txt -------------------------------------------------------------------


def test_acl_table_grants_exactly_what_the_contract_gives_each_principal() -> None:
    granted, expected = _by_principal(table_acls()), _by_principal(expected_acls())
    assert set(granted) == set(PRINCIPALS)
    for principal in PRINCIPALS:
        extra = granted[principal] - expected[principal]
        missing = expected[principal] - granted[principal]
        assert not extra and not missing, f"{principal}: extra {extra}, missing {missing}"


def _table_with(line: str, *, drop: str | None = None) -> str:
    text = ACL_TABLE.read_text(encoding="utf-8")
    if drop is not None:
        assert drop in text
        text = text.replace(drop, "")
    return text + line


def test_an_extra_write_or_a_dropped_one_breaks_the_comparison() -> None:
    expected = expected_acls()
    assert table_acls() == expected
    extra = _table_with("api          topic    literal   Write  obs.accounts.v1\n")
    assert table_acls(extra) != expected
    dropped = _table_with("", drop=" obs.scores.v1.dlq")
    assert table_acls(dropped) != expected


def test_acl_table_uses_only_operations_and_patterns_kafka_acls_knows() -> None:
    operations = {
        "Read", "Write", "Create", "Delete", "Alter", "Describe", "ClusterAction",
        "DescribeConfigs", "AlterConfigs", "IdempotentWrite",
    }  # fmt: skip
    for _, resource, pattern, name, op in table_acls():
        assert resource in {"topic", "group", "cluster"}
        assert pattern in {"literal", "prefixed"}
        assert op in operations
        if resource == "cluster":
            assert (pattern, name) == ("literal", "kafka-cluster")
        else:
            assert name != "*", "no wildcard resource"


def test_no_principal_but_the_operator_creates_contract_topics_or_reads_configs() -> None:
    contract = {t.name for t in ALL_TOPICS}
    for principal, _, pattern, name, op in table_acls():
        if op in {"Create", "DescribeConfigs", "Alter", "AlterConfigs", "Delete"}:
            assert principal == "operator" or (pattern == "prefixed" and name not in contract)


def test_init_script_applies_the_table_with_the_admin_and_every_principal() -> None:
    script = (ROOT / "deploy" / "kafka" / "init.sh").read_text(encoding="utf-8")
    assert "acls.txt" in script and "kafka-acls.sh" in script and "kafka-configs.sh" in script
    assert "SCRAM-SHA-512=[password=" in script
    assert 'username="admin"' in script


# --- the broker ------------------------------------------------------------------------------


def _broker_properties() -> dict[str, str]:
    script = (ROOT / "deploy" / "kafka" / "start.sh").read_text(encoding="utf-8")
    block = script.split('server.properties" <<PROPERTIES', 1)[1].split("\nPROPERTIES", 1)[0]
    return dict(
        line.split("=", 1) for line in block.splitlines() if line and not line.startswith("#")
    )


def test_broker_authenticates_every_listener_and_authorizes_by_acl() -> None:
    props = _broker_properties()
    assert props["authorizer.class.name"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert props["super.users"] == "User:admin"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["auto.create.topics.enable"] == "false"
    protocols = dict(pair.split(":") for pair in props["listener.security.protocol.map"].split(","))
    assert protocols == {"CLIENT": "SASL_SSL", "CONTROLLER": "SASL_PLAINTEXT"}
    assert props["listeners"] == "CLIENT://:9092,CONTROLLER://localhost:9093"
    assert props["advertised.listeners"] == "CLIENT://kafka:9092"
    assert props["listener.name.client.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["ssl.keystore.location"] == "$tls/broker.p12"
    script = (ROOT / "deploy" / "kafka" / "start.sh").read_text(encoding="utf-8")
    assert "\ntls=/etc/kafka/tls\n" in script


def test_broker_formats_its_storage_with_the_admins_scram_credential() -> None:
    script = (ROOT / "deploy" / "kafka" / "start.sh").read_text(encoding="utf-8")
    assert "kafka-storage.sh format --ignore-formatted" in script
    assert '--add-scram "SCRAM-SHA-512=[name=admin,password=$KAFKA_ADMIN_PASSWORD]"' in script


# --- docker-compose.yml ----------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _environment(service: str) -> dict[str, str]:
    env = _compose()["services"][service].get("environment") or {}
    assert isinstance(env, dict), f"{service}: environment as a mapping"
    return {key: "" if value is None else str(value) for key, value in env.items()}


SECRET_REF = re.compile(r"^\$\{([A-Z][A-Z0-9_]*):\?[^}]+\}$")


def _secret(value: str) -> str:
    """The deploy/secrets.env variable a value is taken from (required, never a default)."""
    match = SECRET_REF.match(value)
    assert match, f"{value!r} is not a required ${{VARIABLE:?...}} from deploy/secrets.env"
    return match.group(1)


def test_every_observatoire_container_is_the_services_principal_over_sasl_ssl() -> None:
    services = _compose()["services"]
    observatoire = {
        n for n, s in services.items() if s.get("image", "").startswith("observatoire:")
    }
    assert observatoire == set(CONTAINERS)
    for name, (principal, _) in CONTAINERS.items():
        env = _environment(name)
        assert env["OBS_BROKER_PROFILE"] == "kafka"
        assert env["OBS_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["OBS_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["OBS_KAFKA_SSL_CAFILE"] == "/etc/observatoire/kafka-ca/ca.pem"
        assert "kafka-ca:/etc/observatoire/kafka-ca:ro" in services[name]["volumes"]
        assert env["OBS_KAFKA_USERNAME"] == principal
        assert _secret(env["OBS_KAFKA_PASSWORD"]) == f"KAFKA_{principal.upper()}_PASSWORD"


def test_every_redis_client_has_its_own_user_and_the_collector_none() -> None:
    for name, (_, user) in CONTAINERS.items():
        env = _environment(name)
        if user is None:
            assert "OBS_REDIS_USERNAME" not in env and "OBS_REDIS_PASSWORD" not in env
            continue
        assert env["OBS_REDIS_USERNAME"] == user
        expected = f"REDIS_{user.removeprefix('obs-').upper()}_PASSWORD"
        assert _secret(env["OBS_REDIS_PASSWORD"]) == expected
        assert "@" not in env["OBS_REDIS_URL"] and "password" not in env["OBS_REDIS_URL"]


def test_the_command_key_goes_where_commands_are_signed_or_verified() -> None:
    for name in CONTAINERS:
        env = _environment(name)
        if name in COMMAND_KEY_CONTAINERS:
            assert _secret(env["OBS_COMMAND_KEY"]) == "OBS_COMMAND_KEY"
        else:
            assert "OBS_COMMAND_KEY" not in env
    assert _secret(_environment("api")["OBS_OPERATOR_TOKEN"]) == "OBS_OPERATOR_TOKEN"


def test_no_container_allows_insecure_or_receives_another_principals_password() -> None:
    assert "OBS_ALLOW_INSECURE" not in COMPOSE.read_text(encoding="utf-8")
    for name, service in _compose()["services"].items():
        env = service.get("environment") or {}
        kafka_passwords = {_secret(v) for k, v in env.items() if k.endswith("KAFKA_PASSWORD")}
        if name != "kafka-init":
            assert len(kafka_passwords) <= 1, name


def test_kafka_init_knows_every_principal_of_the_table() -> None:
    env = _environment("kafka-init")
    principals = {principal for principal, *_ in table_acls()}
    for principal in principals | {"admin"}:
        variable = f"KAFKA_{principal.upper()}_PASSWORD"
        assert _secret(env[variable]) == variable


def test_redis_receives_every_users_password_and_renders_the_template() -> None:
    redis = _compose()["services"]["redis"]
    env = _environment("redis")
    for user in REDIS_USERS:
        variable = f"REDIS_{user.removeprefix('obs-').upper()}_PASSWORD"
        assert _secret(env[variable]) == variable
    assert redis["command"] == ["sh", "/etc/observatoire/redis/start.sh"]
    assert "./deploy/redis:/etc/observatoire/redis:ro" in redis["volumes"]
    assert "--user obs-api" in " ".join(redis["healthcheck"]["test"])


def test_services_start_after_the_principals_and_acls_exist() -> None:
    services = _compose()["services"]
    assert services["kafka"]["depends_on"]["kafka-tls"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["kafka-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("topics", "cli"):
        assert services[name]["depends_on"]["kafka-init"]["condition"] == (
            "service_completed_successfully"
        )
    for name in ("collector", "scorer", "publisher", "api"):
        assert services[name]["depends_on"]["topics"]["condition"] == (
            "service_completed_successfully"
        )


def test_only_the_broker_and_the_tls_step_see_the_broker_keystore() -> None:
    for name, service in _compose()["services"].items():
        mounts = [str(m).split(":")[0] for m in service.get("volumes") or []]
        if "kafka-tls" in mounts:
            assert name in {"kafka", "kafka-tls"}, name


# --- Redis ACL users -------------------------------------------------------------------------


def _normalised_rules(line: str) -> tuple[str, str]:
    """(user, rules) with the password rule replaced by a marker."""
    user, rules = line.split(maxsplit=1)
    rules = re.sub(r"(?<=\s)[>#]\S+", "<password>", f" {rules}").strip()
    return user, rules


def test_redis_template_is_the_documented_acl_with_default_off() -> None:
    template = [
        _normalised_rules(line.removeprefix("user "))
        for line in REDIS_TEMPLATE.read_text(encoding="utf-8").splitlines()
        if line.startswith("user ")
    ]
    documented = [
        _normalised_rules(line.removeprefix("ACL SETUSER "))
        for line in DEPLOYMENT_DOC.read_text(encoding="utf-8").splitlines()
        if line.startswith("ACL SETUSER ")
    ]
    assert template == documented
    users = dict(template)
    assert set(users) == REDIS_USERS | {"default"}
    assert users["default"].split()[0] == "off" and "<password>" not in users["default"]
    for user in REDIS_USERS:
        assert users[user].startswith("on <password> resetkeys resetchannels -@all")
    assert "+@write" not in users["obs-api"]


def test_redis_template_holds_only_password_hash_placeholders() -> None:
    text = REDIS_TEMPLATE.read_text(encoding="utf-8")
    placeholders = re.findall(r"#\{\{(\w+)\}\}", text)
    assert sorted(placeholders) == sorted(
        f"REDIS_{user.removeprefix('obs-').upper()}_PASSWORD_SHA256" for user in REDIS_USERS
    )
    assert ">" not in text  # no clear-text password rule


# --- secrets ---------------------------------------------------------------------------------


def _example_values() -> dict[str, str]:
    lines = SECRETS_EXAMPLE.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if re.match(r"^[A-Z][A-Z0-9_]*=", line))


def test_secrets_example_has_placeholders_for_every_secret_compose_requires() -> None:
    required = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", COMPOSE.read_text(encoding="utf-8")))
    values = _example_values()
    assert set(values) == required
    assert set(values.values()) == {"change-me"}


def test_the_real_secrets_file_is_ignored_by_git() -> None:
    ignore = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert SECRETS_FILE in ignore
    result = subprocess.run(
        ["git", "check-ignore", "-q", SECRETS_FILE], cwd=ROOT, check=False, capture_output=True
    )
    if result.returncode == 128:
        pytest.skip("not a git work tree")
    assert result.returncode == 0


def test_no_secret_value_is_committed_in_the_deployment_files() -> None:
    """Hex strings as long as make-secrets.sh's, private keys, certificates: none in deploy/."""
    generated = re.compile(r"\b[0-9a-f]{32,}\b")
    for path in [COMPOSE, *sorted((ROOT / "deploy").rglob("*"))]:
        if not path.is_file() or path.name == "secrets.env" or path.suffix in {".json"}:
            continue
        text = path.read_text(encoding="utf-8")
        assert not generated.search(text), path
        assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text, path
    assert not list((ROOT / "deploy").rglob("*.p12")) and not list((ROOT / "deploy").rglob("*.pem"))


def test_make_secrets_writes_every_example_variable_with_mode_0600(tmp_path: Path) -> None:
    output = tmp_path / "secrets.env"
    subprocess.run(["sh", str(ROOT / "deploy" / "make-secrets.sh"), str(output)], check=True,
                   capture_output=True)  # fmt: skip
    assert output.stat().st_mode & 0o777 == 0o600
    values = dict(
        line.split("=", 1)
        for line in output.read_text().splitlines()
        if re.match(r"^[A-Z][A-Z0-9_]*=", line)
    )
    assert set(values) == set(_example_values())
    assert all(re.fullmatch(r"[0-9a-f]{64}", value) for value in values.values())
    assert len(set(values.values())) == len(values)
    again = subprocess.run(
        ["sh", str(ROOT / "deploy" / "make-secrets.sh"), str(output)], capture_output=True
    )
    assert again.returncode == 1  # never overwrites
