"""Typed dependencies of the routes: settings, Redis, the registry, the repository."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from services.api.repository import StandingsRepository
from services.common.settings import Settings
from services.common.territories import Registry


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_redis(request: Request) -> Redis:
    return request.app.state.redis


def get_registry(request: Request) -> Registry:
    return request.app.state.registry


def get_repository(request: Request) -> StandingsRepository:
    return request.app.state.repository


SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
RepositoryDep = Annotated[StandingsRepository, Depends(get_repository)]
