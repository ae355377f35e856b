"""The process's territory search index (services/common/search.py): names and codes built
once from the registry, the handle part rebuilt only when the account mapping changes."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from services.common.search import SearchIndex
from services.common.territories import Registry
from services.common.view.values import AccountLink


@lru_cache(maxsize=1)
def _registry_index(registry: Registry) -> SearchIndex:
    """The names and codes of every territory, indexed once per process (per registry)."""
    return SearchIndex.build(registry)


class TerritorySearch:
    """The app's search index, with the handles of the account mapping it was last given."""

    def __init__(self, registry: Registry) -> None:
        self._index = _registry_index(registry)
        self._mapping: Mapping[str, AccountLink] | None = None

    def index(self, mapping: Mapping[str, AccountLink]) -> SearchIndex:
        """The index with these accounts: `AccountMapping.mapping()` hands back the same
        object until the mapping's version moves, so only a new object rebuilds the handles."""
        if mapping is not self._mapping:
            self._index = self._index.with_handles(
                {tid: link.handle for tid, link in mapping.items()}
            )
            self._mapping = mapping
        return self._index
