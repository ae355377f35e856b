"""`GET /api/v1/commands/{event_id}`: a command's status (pending, done or refused, why)."""

from __future__ import annotations

from fastapi import APIRouter

from services.api import schemas
from services.api.deps import ReadersDep
from services.api.params import CommandId
from services.api.responses import JSON

router = APIRouter(prefix="/api/v1", tags=["commands"])


@router.get("/commands/{command_id}", responses=schemas.responses(schemas.CommandStatus, 400))
async def command_status(command_id: CommandId, readers: ReadersDep) -> JSON:
    """The publisher's result for a command, or `pending` while it has none.

    Results are kept for good (`obs.command-results.v1` is compacted), so `done` and
    `refused` never change. Any well-formed id without a result reads `pending`: commands
    live in the broker's log, which the API does not read.
    """
    result = await readers.results.of(command_id)
    if result is None:
        return JSON({"command_id": command_id, "status": "pending", "reason": None, "at": None})
    return JSON(
        {
            "command_id": command_id,
            "status": result.status,
            "reason": result.reason,
            "at": result.at,
        }
    )
