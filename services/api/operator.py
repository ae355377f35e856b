"""Who may run operator actions: the holder of `OBS_OPERATOR_TOKEN`, as a bearer token.

The token is compared in constant time (SHA-256 digests of both sides, so not even its length
shows). Without a configured token (unset or empty) operator actions are disabled: 503 with a
message saying so. A missing or wrong token: 401, logged with where it came from, never with
what was sent.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.api.errors import ApiError
from services.api.metrics import OPERATOR_ACTIONS
from services.api.middleware import client_of
from services.common.settings import Settings

log = logging.getLogger("api.operator")

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="operatorToken",
    description="The operator token (`OBS_OPERATOR_TOKEN`) as a bearer token.",
)


def token_digest(settings: Settings) -> bytes | None:
    """The digest the API compares against; None when operator actions are disabled."""
    token = settings.operator_token
    if token is None or not token.get_secret_value():
        return None
    return hashlib.sha256(token.get_secret_value().encode()).digest()


@dataclass(frozen=True, slots=True)
class Operator:
    """Where an authorised operator action comes from (what the audit log line says)."""

    client: str
    user_agent: str


def _action(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "name", None) or request.url.path


def require_operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Operator:
    """The operator behind a request with a valid token, or 503 (disabled) / 401."""
    expected: bytes | None = request.app.state.operator_digest
    client = client_of(request.scope)
    action = _action(request)
    if expected is None:
        OPERATOR_ACTIONS.labels(action, "disabled").inc()
        log.warning("operator action %s from %s refused: actions are disabled", action, client)
        raise ApiError(
            503,
            "operator_actions_disabled",
            "operator actions are disabled on this server: no operator token is configured "
            "(set OBS_OPERATOR_TOKEN to enable them)",
        )
    provided = b"" if credentials is None else credentials.credentials.encode()
    if not hmac.compare_digest(hashlib.sha256(provided).digest(), expected):
        OPERATOR_ACTIONS.labels(action, "unauthorized").inc()
        log.warning(
            "operator action %s %s from %s refused: %s",
            request.method,
            request.url.path,
            client,
            "no bearer token" if credentials is None else "wrong token",
        )
        raise ApiError(
            401,
            "unauthorized",
            "operator actions need a valid token: `Authorization: Bearer <OBS_OPERATOR_TOKEN>`",
            {"WWW-Authenticate": 'Bearer realm="observatoire operator actions"'},
        )
    return Operator(client=client, user_agent=request.headers.get("user-agent", ""))


OperatorDep = Annotated[Operator, Depends(require_operator)]
