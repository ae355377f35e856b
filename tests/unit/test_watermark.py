"""The watermark is one function of the set of valid events, however they are ordered and split.

Random logs are fed in random orders: one worker, batches of a live stream, partitions by
account (as the scorer's workers get them), rebuild workers each reducing a share and merged.
Every way gives the K-th newest of the accounts' newest times computed the plain way
(`kth_newest` over a full dict, and the reference computation's own sort).
"""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.clock import from_epoch
from services.common.events import build_metrics_event
from services.common.reference import compute_standings
from services.common.watermark import K, NewestAccounts, account_of, kth_newest
from services.scorer.reduce import LogReducer

BASE = 1_622_505_600  # 2021-06-01T00:00:00Z
ACCOUNTS = [f"compte_{i}" for i in range(7)]

events = st.lists(
    st.tuples(st.sampled_from(ACCOUNTS), st.integers(0, 40 * 86_400)), min_size=0, max_size=40
)


def plain(log: list[tuple[str, int]]) -> int | None:
    newest: dict[str, int] = {}
    for account, epoch in log:
        newest[account] = max(epoch, newest.get(account, epoch))
    return kth_newest(newest.values())


def fed(log: list[tuple[str, int]]) -> NewestAccounts:
    held = NewestAccounts()
    for account, epoch in log:
        held.add(account, epoch)
    return held


@settings(max_examples=400, deadline=None)
@given(events, st.randoms(use_true_random=False), st.integers(1, 5))
def test_every_order_and_split_gives_the_k_th_newest_account(log, rnd, parts) -> None:
    expected = plain(log)
    assert fed(log).watermark == expected
    shuffled = list(log)
    rnd.shuffle(shuffled)
    assert fed(shuffled).watermark == expected

    # Batches of a live stream, each reduced to its K newest accounts and merged into the
    # global set (what ADVANCE_WATERMARK does), in any order of the batches.
    cuts = sorted(rnd.sample(range(len(shuffled) + 1), min(parts, len(shuffled) + 1)))
    batches = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(shuffled)], strict=True)]
    rnd.shuffle(batches)
    merged = NewestAccounts()
    for batch in batches:
        merged.merge(fed(batch))
        assert len(merged) <= K
    assert merged.watermark == expected

    # Partitions by account (one account's events in one worker), each worker's set merged.
    workers = [NewestAccounts() for _ in range(parts)]
    for account, epoch in shuffled:
        workers[ACCOUNTS.index(account) % parts].add(account, epoch)
    whole = NewestAccounts()
    for worker in workers:
        whole.merge(worker)
    assert whole.watermark == expected


@settings(max_examples=200, deadline=None)
@given(events, st.integers(1, 4))
def test_rebuild_workers_and_the_reference_agree(log, workers) -> None:
    """Rebuild workers each reduce a share of the partitions (judging what to skip against
    their own K-th newest); merged per account then the K-th, they give the reference's."""
    lines = [
        orjson.dumps(
            build_metrics_event(
                handle=account,
                observed_at=from_epoch(BASE + epoch),
                status="not_found" if epoch % 3 else "error",
                source="sim",
            )
        )
        for account, epoch in log
    ]
    reducers = [LogReducer(lambda r: None) for _ in range(workers)]
    for (account, _), raw in zip(log, lines, strict=True):
        reducers[ACCOUNTS.index(account) % workers].add(raw, None)
    merged = NewestAccounts()
    for reducer in reducers:
        merged.merge(reducer.finish().newest)
    reference = compute_standings(lines, account_lines=[], now_ms=(BASE + 50 * 86_400) * 1000)
    expected = plain([(account, BASE + epoch) for account, epoch in log])
    assert merged.watermark == expected
    assert reference.watermark == (None if expected is None else from_epoch(expected))


def test_the_greatest_of_each_workers_k_th_would_be_wrong() -> None:
    """Three accounts seen by three workers: each worker alone has no watermark, the whole
    has one (and the reverse mistake, taking a worker's K-th, would overshoot)."""
    workers = [fed([(f"instagram:{name}", BASE + i)]) for i, name in enumerate("abc")]
    assert all(worker.watermark is None for worker in workers)
    whole = NewestAccounts()
    for worker in workers:
        whole.merge(worker)
    assert whole.watermark == BASE


def test_no_single_account_moves_time() -> None:
    held = fed([("instagram:a", BASE), ("instagram:b", BASE + 10), ("instagram:c", BASE + 20)])
    assert held.watermark == BASE
    held.add("instagram:faussaire", 4_070_908_800)  # 2099-01-01
    assert held.watermark == BASE + 10  # the 3rd newest: still an honest account
    held.add("instagram:faussaire", BASE - 86_400)  # an older event of it changes nothing
    assert held.watermark == BASE + 10


def test_fewer_than_k_accounts_have_no_watermark() -> None:
    assert fed([]).watermark is None
    assert fed([("instagram:a", BASE), ("instagram:a", BASE + 5)]).watermark is None
    assert fed([("instagram:a", BASE), ("instagram:b", BASE + 5)]).watermark is None
    assert account_of("instagram", "gers") == "instagram:gers"
