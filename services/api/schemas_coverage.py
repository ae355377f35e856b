"""The documented shape of `GET /api/v1/coverage` (OpenAPI at /docs), beside the other response
models of services/api/schemas.py."""

from __future__ import annotations

from pydantic import BaseModel, Field


class CoverageCounts(BaseModel):
    territories: int = Field(description="Territories of the registry (COG 2026).")
    with_account: int = Field(description="Territories with an Instagram account in the mapping.")
    simulated: int = Field(description="Of those, simulated accounts (demonstration data).")
    measured: int = Field(description="Territories ranked in the current standings.")
    dead_links: int = Field(
        description="Territories whose account is dead (the Instagram API could not see it at "
        "two consecutive snapshots)."
    )


class CoverageRegion(CoverageCounts):
    code: str = Field(description="The région's INSEE code (`76`).")
    name: str


class CoverageCategory(CoverageCounts):
    category: str
    label: str = Field(description="The category's name in French.")
    regions: list[CoverageRegion] = Field(
        description="Each région holding territories of the category, in reading order. A "
        "territory counts in every région it lies in (an EPCI astride two régions counts in "
        "both), as the standings' `region` filter reads it."
    )


class CoverageBody(BaseModel):
    as_of: str | None = Field(description="The watermark of the standings read (null: none).")
    methodology_version: int
    totals: CoverageCounts
    categories: list[CoverageCategory] = Field(description="The eight categories, in order.")
    regions: list[CoverageRegion] = Field(
        description="Every région over all categories (territories astride régions count in "
        "each, so the rows add up to more than the totals)."
    )
