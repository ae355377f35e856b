"""Redis credentials are secrets: a password given in OBS_REDIS_URL moves into
OBS_REDIS_PASSWORD and never shows in the URL, a repr, a message or a validation error."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from services.common.settings import Settings, split_redis_credentials
from services.common.view.client import redis_client, redis_credentials

SECRET = "s3cr3t-p@ss"  # '@' percent-encoded in URLs


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_a_password_in_the_url_moves_into_the_secret_and_leaves_the_url():
    settings = _settings(redis_url="redis://obs-api:s3cr3t-p%40ss@redis.internal:6380/2")

    assert settings.redis_url == "redis://redis.internal:6380/2"
    assert settings.redis_username == "obs-api"
    assert isinstance(settings.redis_password, SecretStr)
    assert settings.redis_password.get_secret_value() == SECRET
    assert settings.redis_where == "redis.internal:6380"
    for shown in (repr(settings), str(settings), settings.model_dump_json(), settings.redis_where):
        assert "s3cr3t" not in shown


def test_the_environment_url_is_cleaned_the_same_way(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OBS_REDIS_URL", "rediss://:s3cr3t-p%40ss@cache:6379/0?ssl_cert_reqs=none")

    settings = _settings()

    assert settings.redis_url == "rediss://cache:6379/0?ssl_cert_reqs=none"
    assert settings.redis_username is None
    assert settings.redis_password == SecretStr(SECRET)
    assert redis_credentials(settings) == {"password": SECRET}


def test_credentials_given_as_query_parameters_leave_the_url_too():
    url, username, password = split_redis_credentials(
        "rediss://cache:6379/0?username=obs&password=s3cr3t&ssl_ca_certs=/etc/ca.pem"
    )

    assert (username, password) == ("obs", "s3cr3t")
    assert "s3cr3t" not in url and "username" not in url
    assert url.startswith("rediss://cache:6379/0?ssl_ca_certs=")


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "rediss://[::1]:6380/3?ssl_cert_reqs=required&ssl_ca_certs=%2Fca.pem",
        "unix:///run/redis.sock?db=1",
    ],
)
def test_a_url_without_credentials_is_kept_as_written(url: str):
    assert split_redis_credentials(url) == (url, None, None)


def test_the_same_password_in_the_url_and_the_secret_is_accepted():
    settings = _settings(redis_url="redis://:same@h:6379/0", redis_password="same")

    assert settings.redis_url == "redis://h:6379/0"
    assert settings.redis_password == SecretStr("same")


def test_a_url_password_other_than_the_secret_is_refused_without_showing_either():
    with pytest.raises(ValidationError) as raised:
        _settings(
            redis_url="redis://:from-url-s3cr3t@h:6379/0",
            redis_password="from-env-s3cr3t",
            operator_token="operator-s3cr3t",
        )

    message = str(raised.value)
    assert "OBS_REDIS_URL holds a password other than OBS_REDIS_PASSWORD" in message
    assert "s3cr3t" not in message


def test_a_url_user_other_than_the_username_is_refused():
    with pytest.raises(ValidationError, match="names a user other than OBS_REDIS_USERNAME"):
        _settings(redis_url="redis://alice:pw@h:6379/0", redis_username="bob")


def test_the_client_authenticates_with_the_secrets():
    settings = _settings(redis_url="redis://h:6379/0", redis_username="obs", redis_password=SECRET)

    for client in (redis_client(settings, sync=True), redis_client(settings)):
        kwargs = client.connection_pool.connection_kwargs
        assert (kwargs["username"], kwargs["password"]) == ("obs", SECRET)
