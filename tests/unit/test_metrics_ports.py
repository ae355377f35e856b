"""Several workers of a service on one host: each serves /metrics on a port of its own
(the service's port + 100 x OBS_WORKER_INDEX), and `observatoire run --scorers N` gives each
scorer worker its index."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import _register, app
from services.cli.run import MAX_SCORERS, scorer_workers, service_children
from services.common.settings import Settings, get_settings

BASES = {"scorer": 9101, "collector": 9102, "publisher": 9103}


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_worker_zero_keeps_the_configured_ports_and_zero_still_means_no_server() -> None:
    settings = _settings()
    assert settings.worker_index == 0
    assert [settings.metrics_port(base) for base in BASES.values()] == [9101, 9102, 9103]
    assert _settings(worker_index=5).metrics_port(0) == 0


def test_worker_i_serves_on_the_port_plus_100_i() -> None:
    assert _settings(worker_index=1).metrics_port(9101) == 9201
    assert _settings(worker_index=2).metrics_port(9101) == 9301
    assert _settings(worker_index=63).metrics_port(9103) == 15403


def test_no_two_workers_of_the_three_services_share_a_port() -> None:
    ports = [
        _settings(worker_index=index).metrics_port(base)
        for base, index in itertools.product(BASES.values(), range(64))
    ]
    assert len(ports) == len(set(ports)) == 3 * 64


def test_an_index_beyond_the_port_range_is_refused() -> None:
    with pytest.raises(ValueError, match="beyond 65535"):
        _settings(worker_index=10).metrics_port(65000)
    with pytest.raises(ValueError):
        _settings(worker_index=64)


def test_the_worker_index_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBS_WORKER_INDEX", "2")
    monkeypatch.setenv("OBS_SCORER_METRICS_PORT", "19101")
    assert Settings(_env_file=None).metrics_port(Settings(_env_file=None).scorer_metrics_port) == (
        19301
    )


def test_run_gives_each_scorer_worker_its_index_and_port(tmp_path: Path) -> None:
    settings = _settings(scorer_metrics_port=19101)
    assert scorer_workers(settings, 1) == [("scorer", 19101)]
    assert scorer_workers(settings, 3) == [
        ("scorer-0", 19101),
        ("scorer-1", 19201),
        ("scorer-2", 19301),
    ]
    assert scorer_workers(_settings(scorer_metrics_port=0), 2) == [("scorer-0", 0), ("scorer-1", 0)]
    env = {"PATH": "/usr/bin", "OBS_COMMAND_KEY": "k"}
    children = service_children(settings, "sim", None, tmp_path, env, scorers=2)
    assert [child.name for child in children] == [
        "scorer-0",
        "scorer-1",
        "publisher",
        "api",
        "collector",
    ]
    scorers = [child for child in children if child.args == ["scorer"]]
    assert [child.env and child.env["OBS_WORKER_INDEX"] for child in scorers] == ["0", "1"]
    assert all(child.env and child.env["OBS_COMMAND_KEY"] == "k" for child in scorers)
    others = [child for child in children if child.args != ["scorer"]]
    assert all(child.env is env for child in others)
    assert len({child.log_path for child in children}) == len(children)
    assert [c.name for c in service_children(settings, "none", None, tmp_path, None)] == [
        "scorer",
        "publisher",
        "api",
    ]


@pytest.mark.parametrize("scorers", [0, -1, MAX_SCORERS + 1])
def test_run_refuses_a_scorer_count_outside_1_to_12(scorers: int) -> None:
    with pytest.raises(ValueError, match="from 1 to 12"):
        scorer_workers(_settings(), scorers)
    _register()
    result = CliRunner().invoke(app, ["run", "--scorers", str(scorers)])
    assert result.exit_code == 2
    assert "--scorers" in result.output


def test_run_refuses_workers_whose_metrics_port_would_not_exist(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("OBS_SCORER_METRICS_PORT", "65500")
    get_settings.cache_clear()
    try:
        _register()
        result = CliRunner().invoke(app, ["run", "--scorers", "2", "--source", "none"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "beyond 65535" in result.output
