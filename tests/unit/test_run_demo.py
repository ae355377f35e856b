"""`observatoire run` with the simulator is the demo: three months replayed as fast as the
broker takes and each month published automatically, unless the operator said otherwise."""

from __future__ import annotations

import logging

import pytest

from services.cli.run import _demo_env
from services.common.contracts import CATEGORY_IDS
from services.common.settings import DEFAULT_SIM_SHARES, Settings

log = logging.getLogger("test.run")


def test_the_simulator_defaults_to_the_demo_with_automatic_editions(monkeypatch):
    monkeypatch.delenv("OBS_SIM_DEMO", raising=False)
    monkeypatch.delenv("OBS_EDITION_AUTO_PUBLISH_HOURS", raising=False)
    settings = Settings(_env_file=None, edition_grace_hours=6)
    assert _demo_env(settings, log) == {
        "OBS_SIM_DEMO": "true",
        "OBS_EDITION_AUTO_PUBLISH_HOURS": "6",
    }


@pytest.mark.parametrize(
    ("given", "left"),
    [
        ({"sim_demo": False}, {"OBS_EDITION_AUTO_PUBLISH_HOURS": "24"}),
        ({"edition_auto_publish_hours": 48}, {"OBS_SIM_DEMO": "true"}),
        ({"sim_demo": False, "edition_auto_publish_hours": None}, {}),
    ],
)
def test_what_the_operator_set_is_kept(monkeypatch, given, left):
    monkeypatch.delenv("OBS_SIM_DEMO", raising=False)
    monkeypatch.delenv("OBS_EDITION_AUTO_PUBLISH_HOURS", raising=False)
    assert _demo_env(Settings(_env_file=None, **given), log) == left


def test_an_environment_variable_counts_as_set(monkeypatch):
    monkeypatch.setenv("OBS_SIM_DEMO", "false")
    monkeypatch.delenv("OBS_EDITION_AUTO_PUBLISH_HOURS", raising=False)
    assert "OBS_SIM_DEMO" not in _demo_env(Settings(_env_file=None), log)


def test_the_demo_world_has_a_share_of_every_category():
    assert set(DEFAULT_SIM_SHARES) == set(CATEGORY_IDS)
    assert all(0 < share <= 1 for share in DEFAULT_SIM_SHARES.values())
