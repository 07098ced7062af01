"""The real `defectlens` console script, run as a subprocess against a temporary data dir."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.auth import accounts, permissions
from core.config import load_settings
from core.errors import AuthenticationError
from db.engine import Database


def _script() -> str:
    beside = Path(sys.executable).with_name("defectlens")
    if beside.exists():
        return str(beside)
    found = shutil.which("defectlens")
    if found is None:
        pytest.fail("the defectlens console script is not installed (pip install -e .)")
    return found


class Cli:
    """Runs `defectlens ...` with DEFECTLENS_HOME pointing at one temporary directory."""

    def __init__(self, home: Path, cwd: Path) -> None:
        self.home = home
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DEFECTLENS_")}
        self.env.update(DEFECTLENS_HOME=str(home), DEFECTLENS_LOGIN_DELAY_S="0")

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_script(), *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def json(self, *args: str) -> dict[str, Any]:
        """Run a --json command that must succeed; its stdout is exactly one JSON object."""
        proc = self.run(*args, "--json")
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert len(lines) == 1, f"expected one line of JSON, got: {proc.stdout!r}"
        payload = json.loads(lines[0])
        assert isinstance(payload, dict)
        return payload

    def database(self) -> Database:
        return Database(load_settings({"DEFECTLENS_HOME": str(self.home)}).db_url)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    return Cli(tmp_path / "home", workdir)


@pytest.fixture
def initialised(cli: Cli) -> tuple[Cli, str]:
    """A data directory after `defectlens init`; returns the CLI and the admin's password."""
    out = cli.json("init")
    return cli, out["password"]


def _assert_one_line_error(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode != 0
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {proc.stderr!r}"
    assert lines[0].startswith("error:")
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def _login(cli: Cli, username: str, password: str) -> permissions.CurrentUser:
    db = cli.database()
    try:
        return accounts.authenticate(db, username, password, delay_s=0)
    finally:
        db.dispose()


def _accounts(cli: Cli) -> list[tuple[str, str]]:
    db = cli.database()
    try:
        return [(u.username, u.role.value) for u in accounts.list_users(db, permissions.SYSTEM)]
    finally:
        db.dispose()


@pytest.mark.slow  # two or more CLI processes, ~2-3 s each
def test_init_creates_the_first_admin_once(cli: Cli) -> None:
    first = cli.json("init")

    assert first["admin"] == "admin"
    assert isinstance(first["password"], str) and len(first["password"]) >= 10
    assert first["revision"] is not None
    assert (cli.home / "defectlens.db").is_file()
    user = _login(cli, "admin", first["password"])
    assert user.role.value == "admin"

    second = cli.json("init")

    assert second["password"] is None
    assert second["admin"] is None
    assert second["revision"] == first["revision"]
    assert _accounts(cli) == [("admin", "admin")]
    assert _login(cli, "admin", first["password"]).id == user.id


@pytest.mark.slow  # two or more CLI processes, ~2-3 s each
def test_user_add_creates_a_working_account(initialised: tuple[Cli, str]) -> None:
    cli, _ = initialised

    out = cli.json("user", "add", "bob", "--role", "engineer")

    assert out["username"] == "bob"
    assert out["role"] == "engineer"
    user = _login(cli, "bob", out["password"])
    assert (user.id, user.role.value) == (out["id"], "engineer")
    assert _accounts(cli) == [("admin", "admin"), ("bob", "engineer")]


@pytest.mark.slow  # two or more CLI processes, ~2-3 s each
def test_bad_role_is_one_line_on_stderr(initialised: tuple[Cli, str]) -> None:
    cli, _ = initialised

    proc = cli.run("user", "add", "carol", "--role", "wizard", "--json")

    _assert_one_line_error(proc)
    assert "wizard" in proc.stderr
    assert _accounts(cli) == [("admin", "admin")]


@pytest.mark.parametrize(
    "args",
    [("frobnicate",), ("user", "frobnicate"), ("user", "add", "dave")],
    ids=["unknown-command", "unknown-subcommand", "missing-option"],
)
def test_usage_errors_are_one_line_on_stderr(cli: Cli, args: tuple[str, ...]) -> None:
    _assert_one_line_error(cli.run(*args))


@pytest.mark.slow  # two or more CLI processes, ~2-3 s each
def test_reset_password_gives_a_working_password(initialised: tuple[Cli, str]) -> None:
    cli, old = initialised

    out = cli.json("user", "reset-password", "admin")

    assert out["username"] == "admin"
    assert out["password"] != old
    assert _login(cli, "admin", out["password"]).role.value == "admin"
    with pytest.raises(AuthenticationError):
        _login(cli, "admin", old)


@pytest.mark.slow
def test_reset_password_of_unknown_user_is_one_line_on_stderr(
    initialised: tuple[Cli, str],
) -> None:
    cli, _ = initialised
    proc = cli.run("user", "reset-password", "nobody", "--json")
    _assert_one_line_error(proc)
    assert "nobody" in proc.stderr


@pytest.mark.slow
def test_set_email_changes_the_sso_address_and_refuses_one_taken(
    initialised: tuple[Cli, str],
) -> None:
    cli, _ = initialised
    cli.json("user", "add", "bob", "--role", "reviewer", "--email", "bob@plant.example")
    assert cli.json("user", "set-email", "admin", "boss@plant.example") == {
        "username": "admin",
        "email": "boss@plant.example",
    }
    proc = cli.run("user", "set-email", "admin", "BOB@plant.example", "--json")
    _assert_one_line_error(proc)
    assert "bob" in proc.stderr
    assert cli.json("user", "set-email", "admin", "")["email"] is None
