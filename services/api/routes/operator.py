"""Operator actions: `PUT /api/v1/territories/{id}/account` and
`POST /api/v1/editions/{YYYY-MM}/publish`.

Each one needs the operator token, produces one command to `obs.commands.v1` (the audit log;
the publisher executes it once), signed with the API's command key, and answers 202 with the
command's status URL. Each is also logged: what, when, from where. Nothing is produced without
a valid token (nor without a command key: 503).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError

from services.api import schemas
from services.api.command_sender import CommandSender
from services.api.deps import CommandsDep, ReadersDep, RegistryDep
from services.api.errors import ApiError
from services.api.metrics import OPERATOR_ACTIONS
from services.api.operator import Operator, OperatorDep
from services.api.params import Month, TerritoryId, find_territory
from services.api.responses import JSON
from services.common.commands.protocol import command_now_async
from services.common.handles import InvalidHandle, normalise_handle
from services.common.view.results import ResultStore

router = APIRouter(prefix="/api/v1", tags=["operator actions"])
log = logging.getLogger("api.operator")


async def _produce(
    results: ResultStore,
    commands: CommandSender,
    operator: Operator,
    action: str,
    command: Literal["publish_edition", "set_account"],
    args: dict[str, Any],
) -> JSON:
    try:
        key = commands.signing_key()
    except ApiError:
        OPERATOR_ACTIONS.labels(action, "unavailable").inc()
        raise

    async def answered(command_id: str) -> bool:
        return await results.of(command_id) is not None

    # A retry in the same second as an identical, answered request is a new request.
    event = await command_now_async(command, args, "api", answered, key=key)
    requested_at = event["requested_at"]
    try:
        await commands.submit(event)
    except ApiError:
        OPERATOR_ACTIONS.labels(action, "unavailable").inc()
        raise
    OPERATOR_ACTIONS.labels(action, "accepted").inc()
    log.info(
        "operator action %s %s at %s from %s (%s): command %s produced",
        command,
        args,
        requested_at,
        operator.client,
        operator.user_agent or "no user agent",
        event["event_id"],
    )
    status_url = f"/api/v1/commands/{event['event_id']}"
    return JSON(
        {
            "command_id": event["event_id"],
            "status": "pending",
            "status_url": status_url,
            "command": event,
        },
        status_code=202,
        headers={"Location": status_url},
    )


@router.put(
    "/territories/{territory_id}/account",
    status_code=202,
    responses=schemas.responses(schemas.Accepted, 400, 401, 404, 413),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schemas.AccountChange.model_json_schema()}},
        },
    },
)
async def set_account(
    request: Request,
    territory_id: TerritoryId,
    operator: OperatorDep,
    registry: RegistryDep,
    commands: CommandsDep,
    readers: ReadersDep,
) -> JSON:
    """Change the Instagram account a territory uses (`set_account`; null: no account).

    The publisher applies it to `obs.accounts.v1`, and the scorer re-derives the territory's
    standings from the new account at once. Follow the status URL for the outcome.
    """
    # The body is read here, after the token and the territory were checked: a request
    # without a valid token gets 401 whatever its body.
    territory = find_territory(registry, territory_id)
    change = await _account_change(request)
    handle = None
    if change.handle is not None:
        try:
            handle = normalise_handle(change.handle)
        except InvalidHandle as invalid:
            OPERATOR_ACTIONS.labels("set_account", "invalid").inc()
            raise ApiError(
                422, "invalid_handle", f"handle {change.handle!r} {invalid.reason}"
            ) from invalid
    return await _produce(
        readers.results,
        commands,
        operator,
        "set_account",
        "set_account",
        {"id": territory.id, "handle": handle},
    )


async def _account_change(request: Request) -> schemas.AccountChange:
    body = await request.body()
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "bad_request", f"the body is not JSON: {exc}") from exc
    try:
        return schemas.AccountChange.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ApiError(422, "invalid_parameter", f'expected {{"handle": "…"}}: {problems}') from exc


@router.post(
    "/editions/{month}/publish",
    status_code=202,
    responses=schemas.responses(schemas.Accepted, 400, 401, 413),
)
async def publish_edition(
    month: Month, operator: OperatorDep, commands: CommandsDep, readers: ReadersDep
) -> JSON:
    """Request the publication of a month, every category at once (`publish_edition`).

    The publisher decides: it refuses a month too recent, without data, or before an earlier
    unpublished one, and says why in the command's status. Publishing twice is harmless.
    """
    return await _produce(
        readers.results,
        commands,
        operator,
        "publish_edition",
        "publish_edition",
        {"edition": month},
    )
