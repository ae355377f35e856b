"""Every key of the view belongs to one generation (ViewKeys) but the three shared ones, and the
generation pointer reads as the rebuild and the services expect."""

from __future__ import annotations

import inspect

import orjson
import pytest

from services.common.view import keys as keys_module
from services.common.view.generations import Generations, parse
from services.common.view.keys import SHARED_KEYS, ViewKeys, root

ARGUMENTS = {  # sample arguments by parameter name
    "category": "departements",
    "edition": "2021-06",
    "level": "reg",
    "code": "76",
    "platform": "instagram",
    "handle": "gersledepartement",
    "day": 20_500,
    "week": 2_928,
    "prefix": None,  # filled per generation
    "tag": None,
}


def _every_key(rk: ViewKeys) -> list[str]:
    """Every key name a ViewKeys gives: its string attributes and each method's result."""
    names = []
    for name in dir(rk):
        if name.startswith("_") or name in ("generation", "root", "pattern"):
            continue
        value = getattr(rk, name)
        if isinstance(value, str):
            if value not in SHARED_KEYS:
                names.append(value)
            continue
        if not callable(value):
            continue
        arguments = dict(ARGUMENTS, prefix=rk.view_prefix("regions", None), tag=rk.META_TAG)
        parameters = inspect.signature(value).parameters
        names.append(value(*(arguments[p] for p in parameters)))
    return names


@pytest.mark.parametrize("generation", [0, 1, 7, 120])
def test_every_key_of_a_generation_starts_with_its_root(generation: int):
    rk = ViewKeys(generation)
    keys = _every_key(rk)
    assert len(keys) > 30
    assert all(key.startswith(f"{rk.root}:") for key in keys), keys
    if generation:
        assert all(key.startswith(f"obs:g{generation}:") for key in keys)
    else:
        assert not any(key.startswith("obs:g") for key in keys)


def test_generations_keep_their_hash_tags_and_never_share_a_key():
    zero, later = set(_every_key(ViewKeys(0))), set(_every_key(ViewKeys(3)))
    assert zero.isdisjoint(later) and zero.isdisjoint(SHARED_KEYS)
    for key in zero:
        tag = key[key.index("{") : key.index("}") + 1]
        assert f"obs:g3:{key.removeprefix('obs:')}" in later, key
        assert tag in key


def test_only_the_shared_keys_are_named_outside_a_generation():
    module_keys = {
        value
        for name, value in vars(keys_module).items()
        if isinstance(value, str) and value.startswith("obs:")
    }
    assert module_keys == set(SHARED_KEYS)
    with pytest.raises(ValueError):
        root(-1)


def test_the_pointer_reads_as_written():
    assert parse({}) == Generations()  # a fresh view: generation 0, nothing under way
    held = {"token": 4, "generation": 1, "positions": {"t-obs.metrics.v1:3": 12}}
    pointer = parse(
        {
            b"current": b"1",
            b"next": b"2",
            b"hold": b"2",
            b"held": orjson.dumps(held),
            b"retired": b"0",
            b"retire_after": b"1700000000.5",
        }
    )
    assert (pointer.current, pointer.next, pointer.hold, pointer.held) == (1, 2, 2, held)
    assert (pointer.retired, pointer.retire_after) == (0, 1700000000.5)
    assert pointer.keys == ViewKeys(1)
    assert pointer.written() == [ViewKeys(1), ViewKeys(2)]
    assert parse({b"current": b"2"}).written() == [ViewKeys(2)]
