"""The alert rules are valid, unit-tested by promtool, complete, and each has its runbook.

`promtool` comes with Debian's `prometheus` package, which scripts/bootstrap.sh installs: when
it is missing these tests FAIL (a rule file nobody checked proves nothing), they never skip.
The rules' own unit tests are deploy/prometheus/tests/*.yml (`promtool test rules`); the
checks below also make sure every alert has a firing case and a silent one there.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
OPERATIONS = ROOT / "docs" / "operations.md"

SEVERITIES = {"critical", "warning"}
ANNOTATIONS = {"summary", "description", "runbook_url"}

# What issue 19 asks the rules to watch, and the alert that does (plus the rules kept from
# before it: readiness and Redis errors). Exactly these: a rule added or renamed updates this
# table, the runbook and the promtool tests together.
ALERTS_BY_CONCERN = {
    "consumer lag growing, per group and topic": "ObservatoireConsumerLagGrowing",
    "no snapshot applied while the collector produces": "ObservatoireSnapshotsNotApplied",
    "dead letters arriving (scorer)": "ObservatoireScorerDeadLetters",
    "dead letters arriving (publisher)": "ObservatoirePublisherDeadLetters",
    "dead links jumping": "ObservatoireDeadLinksJump",
    "API 5xx ratio": "ObservatoireApiServerErrors",
    "freshness above its objective (silent without a watermark)": (
        "ObservatoireScorerFreshnessTooOld"
    ),
    "a service absent": "ObservatoireServiceAbsent",
    "a service down": "ObservatoireServiceDown",
    "rank-change seq stalled while the publisher's obs.scores.v1 lag grows": (
        "ObservatoireRankChangesStalled"
    ),
    "the API not ready (Redis unreachable)": "ObservatoireApiNotReady",
    "Redis operations failing (scorer, publisher)": "ObservatoireRedisErrors",
}


def _promtool(*args: str) -> str:
    """Run promtool from the repository root; its output, or a failure that shows it."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(
            "promtool is not installed, so the alert rules cannot be checked: run "
            "scripts/bootstrap.sh (it installs Debian's `prometheus` package)",
            pytrace=False,
        )
    result = subprocess.run(
        [promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"promtool {' '.join(args)} failed:\n{output}", pytrace=False)
    return output


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _rule_tests() -> list[dict[str, Any]]:
    return [
        test
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
    ]


def _slug(heading: str) -> str:
    """The anchor GitHub (and most Markdown renderers) give a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


# --- promtool --------------------------------------------------------------------------------


def test_a_missing_promtool_fails_rather_than_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pytest.fail.Exception, match="promtool is not installed"):
        _promtool("--version")


def test_promtool_checks_the_rules() -> None:
    output = _promtool("check", "rules", str(ALERTS.relative_to(ROOT)))
    assert f"SUCCESS: {len(_rules())} rules found" in output, output


def test_promtool_checks_the_prometheus_config_and_the_rules_it_loads() -> None:
    output = _promtool("check", "config", str(CONFIG.relative_to(ROOT)))
    assert "SUCCESS: 1 rule files found" in output, output
    assert "is valid prometheus config file syntax" in output, output


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    assert RULE_TESTS, "no promtool test file in deploy/prometheus/tests/"
    output = _promtool("test", "rules", *(str(path.relative_to(ROOT)) for path in RULE_TESTS))
    assert output.count("SUCCESS") == len(RULE_TESTS), output


# --- what the rules say ----------------------------------------------------------------------


def test_the_alerts_are_exactly_the_ones_the_operators_were_promised() -> None:
    names = [rule["alert"] for rule in _alerts()]
    assert len(names) == len(set(names)), "alert names must be unique"
    assert set(names) == set(ALERTS_BY_CONCERN.values())


def test_service_down_keeps_its_name_and_expression() -> None:
    # The real-scrape test stops the scorer and waits for exactly this alert.
    (down,) = [rule for rule in _alerts() if rule["alert"] == "ObservatoireServiceDown"]
    assert down["expr"] == "up == 0"


@pytest.mark.parametrize("rule", _alerts(), ids=lambda rule: rule["alert"])
def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook(
    rule: dict[str, Any],
) -> None:
    assert re.fullmatch(r"Observatoire(?:[A-Z][a-z0-9]*)+", rule["alert"]), rule["alert"]
    assert rule.get("labels", {}).get("severity") in SEVERITIES
    annotations = rule.get("annotations", {})
    assert set(annotations) == ANNOTATIONS
    assert all(str(value).strip() for value in annotations.values())


def test_every_runbook_url_points_at_a_section_of_the_operations_guide() -> None:
    headings = re.findall(r"^#{2,4} (.+)$", OPERATIONS.read_text(encoding="utf-8"), re.M)
    anchors = {_slug(heading) for heading in headings}
    for rule in _alerts():
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert path == "docs/operations.md", rule["alert"]
        assert anchor == _slug(rule["alert"]), f"{rule['alert']}: the anchor is its own name"
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in docs/operations.md"


def test_every_alert_is_unit_tested_both_firing_and_silent() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for test in _rule_tests():
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert names - firing == set(), "alerts with no test where they fire"
    assert names - silent == set(), "alerts with no test where they stay silent"
    assert firing | silent <= names, "tests of alerts that do not exist"


def test_every_recording_rule_is_unit_tested() -> None:
    exprs = " ".join(
        case["expr"] for test in _rule_tests() for case in test.get("promql_expr_test", [])
    )
    for rule in _rules():
        if "record" in rule:
            assert rule["record"] in exprs, f"{rule['record']} has no promql_expr_test"
