"""Every Lua script of the view: documented, and each call's keys on one Redis Cluster slot."""

from __future__ import annotations

import inspect

from redis.crc import key_slot

from services.common.contracts import CATEGORY_IDS
from services.common.view.keys import ViewKeys
from services.common.view.scripts import all_scripts
from services.common.view.scripts import publisher as publisher_scripts
from services.common.view.scripts import reader as reader_scripts
from services.common.view.scripts import scorer as scorer_scripts

rk = ViewKeys(0)  # the generation a fresh view starts in


def _one_slot(keys: list[str]) -> bool:
    return len({key_slot(key.encode()) for key in keys}) == 1


def test_every_script_is_found_and_named_once():
    names = [script.name for script in all_scripts()]
    assert len(names) == 25
    assert len(set(names)) == len(names)


def test_every_script_has_a_header_giving_keys_argv_and_reply():
    for module in (scorer_scripts, publisher_scripts, reader_scripts):
        source = inspect.getsource(module)
        for script in all_scripts():
            constant = f"_{script.name.upper()}: Final"
            if constant not in source:
                continue
            header = source[: source.index(constant)].rsplit('"""', 1)[-1]
            comment = header[header.rfind("\n\n") :]
            assert "KEYS" in comment, script.name
            assert "ARGV" in comment or "Returns" in comment or "reply" in comment, script.name


def test_every_call_of_a_category_script_is_on_one_slot():
    """In generation 0 and in a later one (every generation keeps the hash tags)."""
    calls: list[list[str]] = []
    for rk in (ViewKeys(0), ViewKeys(7)):
        for category in CATEGORY_IDS:
            for edition in (None, "2021-06"):
                calls.append(scorer_scripts.view_keys(rk, category, edition))
                calls.append(reader_scripts.current_keys(rk, category, edition, None))
            calls.append(scorer_scripts.evict_keys(rk, category))
            calls.append(scorer_scripts.links_keys(rk, category, []))
            calls.append(scorer_scripts.links_keys(rk, category, ["2021-05", "2021-06"]))
            geo = reader_scripts.geo_key(rk, category, "76", None)
            calls.append(reader_scripts.current_keys(rk, category, None, geo))
            calls.append(reader_scripts.edition_keys(rk, category, "2021-06", geo))
            calls.append(reader_scripts.summary_keys(rk, category))
            calls.append(
                reader_scripts.territory_keys(
                    rk, category, [("reg", "76"), ("dep", "32")], ["2021-05", "2021-06"]
                )
            )
            calls.append(scorer_scripts.history_keys(rk, category, [20500, 20501], [2928, 2929]))
            calls.append(scorer_scripts.history_trim_keys(rk, category, [20400], [2900]))
            calls.append(scorer_scripts.history_reset_keys(rk, category, [20400], [2900]))
            calls.append(reader_scripts.history_rank_keys(rk, category, [20500], [2800, 2801]))
            calls.append(publisher_scripts.top_keys(rk, category))
            calls.append(publisher_scripts.rank_change_keys(rk, category))
            calls.append(publisher_scripts.edition_view_keys(rk, category, "2021-06"))
        calls.append(scorer_scripts.summaries_keys(rk, "instagram", "gersledepartement"))
        calls.append(scorer_scripts.account_history_keys(rk, "instagram", "gersledepartement"))
        calls.append(scorer_scripts.watermark_keys(rk))
        calls.append(scorer_scripts.accounts_keys(rk))
        calls.append(publisher_scripts.offsets_keys(rk))
        calls.append(publisher_scripts.lease_keys())
    assert [keys for keys in calls if not _one_slot(keys)] == []


def test_every_fenced_write_batch_of_the_publisher_is_on_one_slot():
    """A fenced batch runs as one script: the fence key and every key it writes share a slot."""
    batches = [
        [
            rk.publisher_fence_key(rk.category_tag(category)),
            rk.rank_changes_pending_key(category),
            rk.link_status_key(category),
            rk.edition_frozen_key(category, "2021-06"),
            rk.published_rank_key(category, "2021-06"),
            rk.published_entry_key(category, "2021-06"),
            rk.published_meta_key(category, "2021-06"),
            rk.latest_published_rank_key(category),
            rk.latest_published_edition_key(category),
            rk.rank_key(rk.view_prefix(category, "2021-06")),
            rk.entry_key(rk.view_prefix(category, "2021-06")),
            rk.edition_months_key(category),
        ]
        for category in CATEGORY_IDS
    ]
    batches.append(
        [
            rk.publisher_fence_key(rk.META_TAG),
            rk.DEAD_LINKS_KEY,
            rk.link_transitions_key("instagram", "gersledepartement"),
            rk.COMMAND_RESULTS_KEY,
            rk.PUBLISHER_OFFSETS_KEY,
            rk.PUBLISHER_ACCOUNTS_KEY,
            rk.FROZEN_MONTHS_KEY,
            rk.EDITIONS_KEY,
        ]
    )
    assert [keys for keys in batches if not _one_slot(keys)] == []
