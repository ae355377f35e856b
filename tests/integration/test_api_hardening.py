"""What any client can send cannot grow /metrics, reach a 500 or read internal errors; every
answer carries the security headers; what clients send is escaped in the log."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import string
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import SecretStr, TypeAdapter, ValidationError

from services.api.app import create_app
from services.common.lifecycle import configure_logging
from services.common.localstack import free_port
from services.common.settings import Settings
from tests.integration.test_api import _seed

INTEGER = TypeAdapter(int)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    asyncio.run(_seed(settings))
    # These tests send hundreds of requests a minute from one client: no rate limit here.
    app = create_app(settings.model_copy(update={"rate_limit_enabled": False}))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _series(metrics_text: str) -> set[str]:
    """The labelled series of an exposition (values dropped)."""
    return {
        line.rsplit(" ", 1)[0]
        for line in metrics_text.splitlines()
        if line and not line.startswith("#")
    }


def _invented_methods(count: int) -> list[str]:
    rng = random.Random(13)
    return [
        "".join(rng.choices(string.ascii_uppercase, k=rng.randint(3, 12))) + str(i)
        for i in range(count)
    ]


def test_invented_methods_answer_405_and_do_not_grow_metrics(client):
    paths = [
        "/api/v1/categories",
        "/api/v1/standings/departements",
        "/no/such/path",
        "/",
        "/donnees/editions/2021-06/departements.csv",
    ]
    client.request("BREW", paths[0])  # the one `other` series exists from now on
    client.get("/metrics")  # and so do the scrape's own
    before = client.get("/metrics").text
    for i, method in enumerate(_invented_methods(300)):
        response = client.request(method, paths[i % len(paths)])
        assert response.status_code == 405, (method, response.text)
        assert response.json()["error"]["code"] == "method_not_allowed"
        assert response.headers["allow"] == "GET, HEAD, POST, PUT"
    after = client.get("/metrics").text
    assert _series(after) == _series(before)
    assert abs(len(after) - len(before)) < 64, (len(before), len(after))
    assert 'method="other",route="unmatched",status="405"' in after
    assert not any(method in after for method in _invented_methods(300))


def test_metrics_label_routes_by_template_never_by_raw_path(client):
    for tid in ("dep-32", "dep-31", "dep-75"):
        assert client.get(f"/api/v1/territories/{tid}").status_code == 200
    for i in range(20):
        assert client.get(f"/invented/{i}/path").status_code == 404
    text = client.get("/metrics").text
    assert 'route="/api/v1/territories/{territory_id}"' in text
    assert "dep-31" not in text and "invented" not in text


# --- every integer parameter: 422 for any text that is not an integer in bounds ---------


def _integer_parameters(client: TestClient) -> list[tuple[str, str, dict[str, Any]]]:
    """(path template, parameter, schema) of every integer query parameter in the OpenAPI."""
    found = []
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        for parameter in operations.get("get", {}).get("parameters", []):
            schema = parameter.get("schema", {})
            types = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
            if parameter["in"] == "query" and "integer" in types:
                bounds = next((s for s in [schema, *schema.get("anyOf", [])] if "type" in s), {})
                found.append((path, parameter["name"], bounds))
    return found


_PATH_VALUES = {"{category}": "departements", "{month}": "2021-06"}
_REQUIRED = {
    "/api/v1/rank-changes": {"category": "departements"},
    "/api/v1/search": {"q": "paris"},
}
_STREAM = "/api/v1/rank-changes/stream"


def _as_integer(text: str, schema: dict[str, Any]) -> int | None:
    try:
        value = INTEGER.validate_python(text)
    except (ValidationError, ValueError):
        return None
    if value < schema.get("minimum", value) or value > schema.get("maximum", value):
        return None
    return value


texts = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=16),
    st.from_regex(r"\A\s?[+-]{0,3}[0-9٣]{0,4}([._,e][0-9]{0,2})?\s?\Z"),
    st.integers(min_value=-(10**15), max_value=10**15).map(str),
)


def test_openapi_integer_parameters_are_known(client):
    found = {(path, name) for path, name, _ in _integer_parameters(client)}
    assert ("/api/v1/standings/{category}", "limit") in found
    assert ("/api/v1/editions/{month}/{category}", "offset") in found
    assert (_STREAM, "after_seq") in found
    assert len(found) >= 9


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=texts)
def test_every_integer_parameter_answers_422_whatever_its_text(client, text):
    for template, name, schema in _integer_parameters(client):
        value = _as_integer(text, schema)
        if template == _STREAM and value is not None:
            continue  # a valid cursor opens a stream; its parsing is the same as the others'
        path = template
        for placeholder, filler in _PATH_VALUES.items():
            path = path.replace(placeholder, filler)
        response = client.get(path, params={**_REQUIRED.get(path, {}), name: text})
        if value is None:
            assert response.status_code == 422, (template, name, text, response.text)
            assert response.json()["error"]["code"] == "invalid_parameter"
        else:
            assert response.status_code in (200, 404), (template, name, text, response.text)


@pytest.mark.parametrize(
    "path", ["/api/v1/standings/departements", "/api/v1/editions/2021-06/departements"]
)
@pytest.mark.parametrize("name,text", [("limit", "--5"), ("offset", "--1"), ("limit", "5.5")])
def test_doubled_signs_answer_422_not_500(client, path, name, text):
    response = client.get(path, params={name: text})
    assert response.status_code == 422
    assert "not an integer" in response.json()["error"]["message"]


# --- headers ---------------------------------------------------------------------------------


def _assert_secured(response, policy_starts: str) -> None:
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff", response.url
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin", response.url
    policy = headers["content-security-policy"]
    assert policy.startswith(policy_starts), (response.url, policy)
    assert "frame-ancestors 'none'" in policy, response.url


def test_security_headers_on_pages_errors_json_and_static_files(client):
    html = {"Accept": "text/html"}
    _assert_secured(client.get("/", headers=html), "default-src 'self'")
    _assert_secured(client.get("/classements/departements", headers=html), "default-src 'self'")
    _assert_secured(client.get("/methodologie", headers=html), "default-src 'self'")
    _assert_secured(client.get("/couverture", headers=html), "default-src 'self'")
    _assert_secured(client.get("/api/v1/coverage"), "default-src 'none'")
    error_page = client.get("/territoires/dep-999", headers=html)
    assert error_page.status_code == 404 and error_page.headers["content-type"].startswith(
        "text/html"
    )
    _assert_secured(error_page, "default-src 'self'")
    _assert_secured(client.get("/api/v1/categories"), "default-src 'none'")
    _assert_secured(client.get("/api/v1/standings/nope"), "default-src 'none'")
    _assert_secured(client.get("/static/style.css"), "default-src 'none'")
    _assert_secured(client.get("/metrics"), "default-src 'none'")
    _assert_secured(client.get("/donnees", headers=html), "default-src 'self'")
    _assert_secured(client.get("/donnees/editions/2021-06/departements.csv"), "default-src 'none'")
    docs = client.get("/docs")
    _assert_secured(docs, "default-src 'self'; script-src 'self' 'sha256-")


def test_negotiated_errors_vary_on_accept(client):
    page = client.get("/territoires/dep-999", headers={"Accept": "text/html"})
    data = client.get("/territoires/dep-999", headers={"Accept": "application/json"})
    assert page.headers["content-type"].startswith("text/html")
    assert data.headers["content-type"].startswith("application/json")
    for response in (page, data, client.get("/territoires/dep-32")):
        assert "accept" in response.headers["vary"].lower()
    assert "vary" not in client.get("/api/v1/categories").headers


# --- internal errors stay inside -------------------------------------------------------------

_INTERNAL = re.compile(r"Errno|Error \d|refused|Traceback|redis\.|ConnectionError|127\.0\.0\.1")


def test_redis_errors_never_reach_a_client_and_controls_are_escaped_in_the_log(settings, capsys):
    down = settings.model_copy(
        update={
            "redis_url": f"redis://127.0.0.1:{free_port()}/0",
            "operator_token": SecretStr("a-token-this-client-does-not-have"),
        }
    )
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("api")  # the service's own log format, on the captured stderr
    try:
        with TestClient(create_app(down), raise_server_exceptions=False) as down_client:
            forged = "/api/v1/territories/dep-32%1B%5B31m%E2%80%AEexe.txt/account"
            responses = [
                down_client.get("/api/v1/standings/departements"),
                down_client.get("/api/v1/territories/dep-32"),
                down_client.get("/", headers={"Accept": "text/html"}),
                down_client.get("/readyz"),
            ]
            refused = down_client.put(forged, json={"handle": "x"})
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    for response in responses:
        assert response.status_code in (404, 503), response.text
        assert not _INTERNAL.search(response.text), response.text
    assert responses[0].json()["error"]["code"] == "redis_unavailable"
    assert refused.status_code == 401
    log = capsys.readouterr().err
    assert "redis unavailable while serving" in log and "refused: no bearer token" in log
    assert "\x1b" not in log and "\u202e" not in log
    assert "\\x1b[31m\\u202eexe.txt" in log
