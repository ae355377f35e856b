"""Typed dependencies of the routes: what the app's lifespan built once per process."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from services.api.command_sender import CommandSender
from services.api.items import ScoredEntries
from services.api.options import ApiOptions
from services.api.read.editions import EditionIndex
from services.api.read.history import HistoryReader
from services.api.read.rank_changes import RankChangeFeed
from services.api.read.search import TerritorySearch
from services.api.read.standings import StandingsRepository
from services.api.read.territory import TerritoryReader
from services.api.read.view import LiveView, Readers
from services.api.streams import StreamHub
from services.common.search import SearchIndex
from services.common.territories import Registry


async def get_options(request: Request) -> ApiOptions:
    return request.app.state.options


async def get_redis(request: Request) -> Redis:
    return request.app.state.redis


async def get_registry(request: Request) -> Registry:
    return request.app.state.registry


async def get_readers(request: Request) -> Readers:
    """The readers of the current generation of the view."""
    return await request.app.state.view.readers()


ReadersDep = Annotated[Readers, Depends(get_readers)]  # once per request: one generation


async def get_repository(readers: ReadersDep) -> StandingsRepository:
    return readers.repository


async def get_scored(request: Request) -> ScoredEntries:
    return request.app.state.scored


async def get_editions(readers: ReadersDep) -> EditionIndex:
    return readers.editions


async def get_territories(readers: ReadersDep) -> TerritoryReader:
    return readers.territories


async def get_history(readers: ReadersDep) -> HistoryReader:
    return readers.history


async def get_feed(readers: ReadersDep) -> RankChangeFeed:
    return readers.feed


async def get_view(request: Request) -> LiveView:
    return request.app.state.view


async def get_search_index(request: Request, readers: ReadersDep) -> SearchIndex:
    """The search index, built on the app's first search; handles of the current generation."""
    state = request.app.state
    search: TerritorySearch | None = getattr(state, "territory_search", None)
    if search is None:
        search = state.territory_search = TerritorySearch(state.registry)
    return search.index(await readers.accounts.mapping())


async def get_hub(request: Request) -> StreamHub:
    return request.app.state.hub


async def get_commands(request: Request) -> CommandSender:
    return request.app.state.commands


OptionsDep = Annotated[ApiOptions, Depends(get_options)]
RedisDep = Annotated[Redis, Depends(get_redis)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
ViewDep = Annotated[LiveView, Depends(get_view)]
RepositoryDep = Annotated[StandingsRepository, Depends(get_repository)]
ScoredDep = Annotated[ScoredEntries, Depends(get_scored)]
EditionsDep = Annotated[EditionIndex, Depends(get_editions)]
TerritoriesDep = Annotated[TerritoryReader, Depends(get_territories)]
HistoryDep = Annotated[HistoryReader, Depends(get_history)]
FeedDep = Annotated[RankChangeFeed, Depends(get_feed)]
HubDep = Annotated[StreamHub, Depends(get_hub)]
SearchIndexDep = Annotated[SearchIndex, Depends(get_search_index)]
CommandsDep = Annotated[CommandSender, Depends(get_commands)]
