"""Schemathesis against the generated OpenAPI: every documented operation, with generated
valid and invalid inputs, never answers a server error, and every answer conforms to the
document (status codes, content types, response schemas, auth).

The API runs on a real port over the story of test_api_story.py (real Redis) with the real
broker behind operator actions. The event stream is left out: it never ends, so it is
tested by tests/integration/test_sse.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis import checks

from services.api.app import create_app
from services.api.metrics import REQUESTS
from services.common.kafka import create_topics
from services.common.localstack import RedisServer, TansuBroker
from services.common.settings import Settings
from tests.integration.test_api_story import live_api, tell_story
from tests.signing import COMMAND_KEY

TOKEN = "schemathesis-operator-token"


@pytest.fixture(scope="module")
def api_url(broker: TansuBroker, redis_server: RedisServer, tmp_path_factory) -> Iterator[str]:
    api_settings = Settings(
        _env_file=None,
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:12]}-",
        redis_url=f"{redis_server.url.rsplit('/', 1)[0]}/10",
        rate_limit_enabled=False,
        operator_token=SecretStr(TOKEN),
        command_key=COMMAND_KEY,
        run_dir=tmp_path_factory.mktemp("schemathesis"),
    )
    assert all(report.ok for report in create_topics(api_settings))
    asyncio.run(tell_story(api_settings.redis_url))
    with live_api(api_settings) as url:
        yield url


# The document is the app's own (it does not depend on settings); loaded at import, so the
# eager `parametrize` is used (schemathesis' lazy `from_fixture` needs pytest < 9).
schema = schemathesis.openapi.from_dict(create_app(Settings(_env_file=None)).openapi()).exclude(
    path="/api/v1/rank-changes/stream"
)

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@schema.parametrize()
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_operation_answers_a_server_error_or_leaves_its_document(case, api_url):
    case.call_and_validate(
        base_url=api_url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        checks=CHECKS,
    )


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_without_a_token_no_operation_answers_a_server_error(case, api_url):
    response = case.call_and_validate(base_url=api_url, checks=[checks.not_a_server_error])
    method = case.method.upper()
    if method in ("PUT", "POST") and method == case.operation.method.upper():
        assert response.status_code in (401, 413), response.text


def test_the_generated_requests_reached_real_data(api_url):
    """Runs after the generated tests (file order): they got real answers, not only errors."""
    answered = {
        (sample.labels["route"], sample.labels["status"])
        for metric in REQUESTS.collect()
        for sample in metric.samples
        if sample.name == "obs_api_requests_total" and sample.value > 0
    }
    for route in (
        "/api/v1/standings/{category}",
        "/api/v1/editions/{month}/{category}",
        "/api/v1/territories/{territory_id}",
        "/api/v1/rank-changes",
        "/api/v1/search",
        "/api/v1/compare",
        "/api/v1/coverage",
        "/donnees/editions/{month}/{category}.csv",
        "/donnees/editions/{month}/{category}.json",
    ):
        assert (route, "200") in answered, route
    assert ("/api/v1/editions/{month}/publish", "202") in answered
    assert ("/api/v1/territories/{territory_id}/account", "202") in answered
