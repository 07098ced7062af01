"""Settings read from the environment: the log level (DEFECTLENS_LOG_LEVEL)."""

from __future__ import annotations

import pytest

from core.config import load_settings
from core.errors import ValidationError


def test_log_level_is_unset_by_default_so_each_command_picks_its_own(tmp_path) -> None:
    assert load_settings({"DEFECTLENS_HOME": str(tmp_path)}).log_level is None
    assert (
        load_settings({"DEFECTLENS_HOME": str(tmp_path), "DEFECTLENS_LOG_LEVEL": ""}).log_level
        is None
    )


@pytest.mark.parametrize(
    ("raw", "level"), [("debug", "DEBUG"), (" Warning ", "WARNING"), ("ERROR", "ERROR")]
)
def test_log_level_names_are_case_insensitive(tmp_path, raw: str, level: str) -> None:
    env = {"DEFECTLENS_HOME": str(tmp_path), "DEFECTLENS_LOG_LEVEL": raw}
    assert load_settings(env).log_level == level


def test_an_unknown_log_level_is_refused_naming_the_variable(tmp_path) -> None:
    env = {"DEFECTLENS_HOME": str(tmp_path), "DEFECTLENS_LOG_LEVEL": "loud"}
    with pytest.raises(ValidationError, match=r"DEFECTLENS_LOG_LEVEL='loud' must be one of DEBUG"):
        load_settings(env)
