"""The deployment files agree with the code: settings, metric names, commands, image pins.

Nothing here builds or starts a container (the development machines have no Docker engine):
these checks read the files as text and compare them with what the code declares, so that a
renamed setting or metric breaks a test instead of a deployment.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase
from pydantic import SecretStr

from services.api import metrics as api_metrics
from services.collector import metrics as collector_metrics
from services.common.settings import Settings
from services.publisher import metrics as publisher_metrics
from services.scorer import metrics as scorer_metrics

ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = ROOT / ".env.example"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboard.json"
DATASOURCE = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"

# `NAME=value`, or `# NAME=...` for a setting whose default is "unset" (None).
ENV_LINE = re.compile(r"^(?P<commented>#\s*)?OBS_(?P<name>[A-Z0-9_]+)=(?P<value>.*)$")
METRIC_NAME = re.compile(r"\bobs_[a-z0-9_]+\b")
# Labels of series produced by Prometheus itself, not by our metrics.
PROMETHEUS_LABELS = {"le", "instance", "job"}


# --- .env.example ----------------------------------------------------------------------------


def _env_lines() -> list[tuple[int, re.Match[str]]]:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    return [(i, m) for i, line in enumerate(lines) if (m := ENV_LINE.match(line))]


def _is_secret(annotation: object) -> bool:
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def test_env_example_lists_exactly_the_settings_fields_in_class_order() -> None:
    listed = [m["name"].lower() for _, m in _env_lines()]
    assert listed == list(Settings.model_fields)


def test_env_example_comments_out_exactly_the_settings_that_default_to_unset() -> None:
    commented = {m["name"].lower() for _, m in _env_lines() if m["commented"]}
    unset = {name for name, field in Settings.model_fields.items() if field.default is None}
    assert commented == unset


def test_env_example_leaves_every_secret_empty() -> None:
    secrets = {
        name for name, field in Settings.model_fields.items() if _is_secret(field.annotation)
    }
    assert secrets >= {"operator_token", "graph_tokens"}
    values = {m["name"].lower(): m["value"] for _, m in _env_lines()}
    assert {name: values[name] for name in secrets} == dict.fromkeys(secrets, "")


def test_env_example_gives_each_setting_a_comment_line_above_it() -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    for index, match in _env_lines():
        above = lines[index - 1] if index else ""
        assert above.startswith("# ") and not ENV_LINE.match(above), (
            f"OBS_{match['name']} needs a one-line comment above it"
        )


def test_loading_env_example_gives_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("OBS_")]:
        monkeypatch.delenv(name)
    from_file = Settings(_env_file=ENV_EXAMPLE)
    defaults = Settings(_env_file=None)
    assert from_file.model_dump() == defaults.model_dump()


# --- metric names ----------------------------------------------------------------------------


def _declared_metrics() -> Iterator[MetricWrapperBase | scorer_metrics.WatermarkGauges]:
    """Every metric the services declare: prometheus_client's metrics and the collectors
    that expose a series only while it has a value (e.g. the scorer's watermark)."""
    for module in (scorer_metrics, collector_metrics, api_metrics, publisher_metrics):
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase | scorer_metrics.WatermarkGauges):
                yield value


def _series_names(metric: MetricWrapperBase | scorer_metrics.WatermarkGauges) -> set[str]:
    """The sample names a metric exposes (counters gain `_total`, histograms `_bucket`...)."""
    names: set[str] = set()
    for family in metric.describe():
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("", "_sum", "_count", "_created"),
            "gauge": ("",),
        }[family.type]
        names |= {family.name + suffix for suffix in suffixes}
    return names


KNOWN_SERIES = {name for metric in _declared_metrics() for name in _series_names(metric)}
# Private but long-stable attribute of prometheus_client: the label names of a metric.
KNOWN_LABELS = {
    label for metric in _declared_metrics() for label in getattr(metric, "_labelnames", ())
} | PROMETHEUS_LABELS


def _dashboard_exprs() -> list[str]:
    def walk(node: object) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    yield value
                else:
                    yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    return list(walk(json.loads(DASHBOARD.read_text(encoding="utf-8"))))


def _alert_exprs() -> list[str]:
    """The `expr:` values of alerts.yml, folded block scalars included."""
    exprs: list[str] = []
    lines = ALERTS.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        key, _, value = line.strip().partition(":")
        if key != "expr":
            continue
        value = value.strip()
        if value not in (">-", ">", "|", "|-"):
            exprs.append(value)
            continue
        indent = len(line) - len(line.lstrip())
        block = []
        for following in lines[index + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            block.append(following.strip())
        exprs.append(" ".join(block))
    return exprs


def _labels_used(expr: str) -> set[str]:
    labels: set[str] = set()
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        labels |= {label.strip() for label in group.split(",") if label.strip()}
    for selector in re.findall(r"\bobs_[a-z0-9_]+\{([^}]*)\}", expr):
        labels |= set(re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)", selector))
    return labels


def test_scorer_metrics_module_declares_the_metrics_the_deployment_watches() -> None:
    assert {
        "obs_scorer_events_consumed_total",
        "obs_scorer_dead_letters_total",
        "obs_scorer_apply_seconds_bucket",
        "obs_scorer_freshness_seconds",
        "obs_scorer_watermark_seconds",
        "obs_scorer_redis_errors_total",
    } <= KNOWN_SERIES


def test_dashboard_parses_and_every_metric_it_queries_exists() -> None:
    exprs = _dashboard_exprs()
    assert exprs, "the dashboard has no query"
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert used, "the dashboard queries no obs_* metric"
    assert used - KNOWN_SERIES == set()


def test_dashboard_groups_only_by_labels_the_metrics_have() -> None:
    used = {label for expr in _dashboard_exprs() for label in _labels_used(expr)}
    assert used - KNOWN_LABELS == set()


def test_dashboard_panels_have_unique_ids_and_the_provisioned_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    uid = re.search(r"^\s*uid:\s*(\S+)\s*$", DATASOURCE.read_text(encoding="utf-8"), re.M)
    assert uid is not None
    sources = {panel["datasource"]["uid"] for panel in dashboard["panels"] if "datasource" in panel}
    assert sources == {uid.group(1)}


def test_every_metric_named_in_the_alert_rules_exists() -> None:
    exprs = _alert_exprs()
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert {"obs_scorer_freshness_seconds", "obs_scorer_dead_letters_total"} <= used
    assert used - KNOWN_SERIES == set()
    labels = {label for expr in exprs for label in _labels_used(expr)}
    assert labels - KNOWN_LABELS == set()


def test_every_alert_has_a_summary_and_a_description() -> None:
    text = ALERTS.read_text(encoding="utf-8")
    blocks = re.split(r"^\s*- alert:", text, flags=re.M)[1:]
    assert len(blocks) >= 5
    names = [block.split()[0] for block in blocks]
    assert len(names) == len(set(names)), "alert names must be unique"
    for name, block in zip(names, blocks, strict=True):
        assert re.search(r"^\s+summary:", block, re.M), f"{name} has no summary"
        assert re.search(r"^\s+description:", block, re.M), f"{name} has no description"


def test_prometheus_scrapes_each_service_on_its_default_port() -> None:
    text = PROMETHEUS.read_text(encoding="utf-8")
    fields = Settings.model_fields
    assert f'targets: ["api:{fields["api_port"].default}"]' in text
    assert f"port: {fields['scorer_metrics_port'].default}" in text
    assert f"port: {fields['collector_metrics_port'].default}" in text
    assert re.search(r"^\s*-\s*alerts\.yml\s*$", text, re.M), "alerts.yml is not loaded"


# --- docker-compose.yml and the Dockerfile ---------------------------------------------------


def _compose_commands() -> list[str]:
    commands = []
    for match in re.finditer(r"^\s+command:\s*(\[.*\])\s*$", COMPOSE.read_text(), re.M):
        commands.append(" ".join(json.loads(match.group(1))))
    return commands


@pytest.mark.parametrize(
    "command",
    ["service scorer", "service api", "service collector --source sim", "topics create"],
)
def test_compose_runs_each_service_command(command: str) -> None:
    assert any(run.startswith(command) for run in _compose_commands()), command


def test_compose_pins_every_image_tag() -> None:
    images = re.findall(r"^\s*image:\s*(\S+)\s*$", COMPOSE.read_text(), re.M)
    assert len(images) >= 5
    for image in images:
        tag = image.rpartition("/")[2].partition(":")[2]
        assert tag and tag != "latest" and "$" not in image, f"{image} is not pinned"
        assert re.fullmatch(r"v?\d+(\.\d+)+(-[a-z0-9.]+)?", tag), f"{image}: not a version tag"


def test_compose_tags_the_project_image_with_the_project_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"image: observatoire:{version}" in COMPOSE.read_text()


def test_compose_sets_the_kafka_profile_and_container_addresses() -> None:
    text = COMPOSE.read_text()
    for line in (
        "OBS_BROKER_PROFILE: kafka",
        "OBS_KAFKA_BOOTSTRAP: kafka:9092",
        "OBS_REDIS_URL: redis://redis:6379/0",
        "OBS_API_HOST: 0.0.0.0",
        "OBS_METRICS_HOST: 0.0.0.0",
        "stop_grace_period: 10s",
        "condition: service_completed_successfully",
    ):
        assert line in text, line


@pytest.mark.parametrize("path", [COMPOSE, DEPLOYMENT_DOC], ids=lambda p: p.name)
def test_deployment_files_name_only_existing_settings(path: Path) -> None:
    names = set(re.findall(r"\bOBS_([A-Z0-9_]+)\b", path.read_text(encoding="utf-8")))
    assert names, f"{path.name} names no setting"
    assert {name.lower() for name in names} - set(Settings.model_fields) == set()


def test_dockerfile_installs_the_project_and_runs_the_console_script_unprivileged() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim", text, re.M)
    assert re.search(r"^RUN pip install \.", text, re.M)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert 'ENTRYPOINT ["observatoire"]' in text and "observatoire" in scripts
