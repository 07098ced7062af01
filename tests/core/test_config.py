"""Settings read from the environment: the log level (DEFECTLENS_LOG_LEVEL) and the database
password file (DEFECTLENS_DB_PASSWORD_FILE)."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

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


PG = "postgresql+psycopg://defectlens@db.plant:5432/quality?sslmode=require"


def _secret(tmp_path, text: str = "s3cret/Pa55:word@\n", mode: int = 0o600):  # type: ignore[no-untyped-def]
    path = tmp_path / "db-password"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_the_password_file_fills_a_url_without_one(tmp_path) -> None:
    env = {"DEFECTLENS_DB_URL": PG, "DEFECTLENS_DB_PASSWORD_FILE": str(_secret(tmp_path))}
    s = load_settings(env)
    url = make_url(s.db_url)
    assert url.password == "s3cret/Pa55:word@"  # the trailing newline is not part of it
    assert (url.host, url.database, url.query) == ("db.plant", "quality", {"sslmode": "require"})
    # What travels to other machines has no password, whichever way it came.
    assert "s3cret" not in s.db_url_without_password
    assert make_url(s.db_url_without_password).password is None
    direct = load_settings({"DEFECTLENS_DB_URL": "postgresql+psycopg://u:hunter2@h/d"})
    assert direct.db_url_without_password == "postgresql+psycopg://u@h/d"


@pytest.mark.parametrize(
    ("mode", "url", "message"),
    [
        (0o644, PG, "can be read by other users; chmod 600"),
        (0o640, PG, "can be read by other users"),
        (0o600, "postgresql+psycopg://u:inline@h/d", "has a password too"),
    ],
)
def test_a_password_file_others_can_read_or_a_second_password_is_refused(
    tmp_path, mode: int, url: str, message: str
) -> None:
    env = {
        "DEFECTLENS_DB_URL": url,
        "DEFECTLENS_DB_PASSWORD_FILE": str(_secret(tmp_path, mode=mode)),
    }
    with pytest.raises(ValidationError, match=message):
        load_settings(env)


def test_a_missing_password_file_is_named(tmp_path) -> None:
    env = {"DEFECTLENS_DB_URL": PG, "DEFECTLENS_DB_PASSWORD_FILE": str(tmp_path / "nope")}
    with pytest.raises(ValidationError, match=r"cannot read .*nope"):
        load_settings(env)
