"""A faust worker runs with the settings its app was built from, or not at all."""

from __future__ import annotations

import logging

import pytest

from services.common.kafka.clients import faust_app
from services.common.settings import Settings
from services.common.streams import run_worker


def test_a_worker_given_other_settings_than_its_app_refuses_to_start(tmp_path):
    built = Settings(_env_file=None, run_dir=tmp_path, topic_prefix="a-")
    other = Settings(_env_file=None, run_dir=tmp_path, topic_prefix="b-")
    app = faust_app("scorer", built)
    assert app.settings == built
    with pytest.raises(ValueError, match="observatoire service scorer"):
        run_worker(app, "scorer", other, logging.getLogger("test"))
