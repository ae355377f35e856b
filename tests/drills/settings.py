"""The drills' sizes: settings (environment variables `OBS_DRILL_*`), defaults that fit the
whole `make drills` in about 15 minutes on a 2-core machine."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DrillSettings(BaseSettings):
    """`OBS_DRILL_EVENTS=200000 make drills` runs bigger drills."""

    model_config = SettingsConfigDict(env_prefix="OBS_DRILL_", extra="ignore")

    events: int = Field(20_000, ge=100, description="Snapshots replayed by the ingestion drills.")
    # 100,000 + 10,000 took 8 min 19 s here (240 records/s through the live scorer and
    # publisher, the 2 cores shared; 520 records/s, about 4 min, when they were not): the
    # defaults keep the ratio and take 1.5 to 3 minutes.
    good_events: int = Field(40_000, ge=100, description="Good snapshots of the malformed drill.")
    malformed_events: int = Field(4_000, ge=0, description="Malformed records interleaved.")
    broker_cut_seconds: float = Field(30.0, gt=0, description="How long the broker is cut off.")
    api_clients: int = Field(64, ge=1, description="Concurrent API clients under load.")
    api_seconds: float = Field(20.0, gt=0, description="How long the API is loaded.")
    rank_change_burst: int = Field(2_000, ge=10, description="Score events of the publisher burst.")
    recover_timeout_seconds: float = Field(180.0, gt=0, description="Longest wait to recover.")


def drill_settings() -> DrillSettings:
    return DrillSettings()
