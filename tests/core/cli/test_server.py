"""`defectlens init` and `run` outside a terminal, and the URLs `run` says it serves on."""

from __future__ import annotations

import stat
from pathlib import Path

from core.cli.server import ADMIN_PASSWORD_FILE, serving_urls
from core.config import load_settings
from tests.core.cli.test_main import Cli
from tests.core.cli.test_main import cli as cli  # noqa: F401 (the fixture)


def test_the_first_admin_password_goes_to_an_owner_only_file_not_to_a_log(cli: Cli) -> None:
    proc = cli.run("init")  # stdout is a pipe here, as under systemd or in a container
    assert proc.returncode == 0, proc.stderr
    path = cli.home / ADMIN_PASSWORD_FILE
    assert f"the password is in {path}" in proc.stdout
    username, password = (line.split(": ", 1)[1] for line in path.read_text().splitlines())
    assert username == "admin" and len(password) >= 16
    assert password not in proc.stdout + proc.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    again = cli.run("init")
    assert "users already exist" in again.stdout
    assert path.read_text().endswith(f"password: {password}\n")  # never rewritten


def test_the_startup_line_names_where_the_server_really_listens() -> None:
    assert serving_urls("127.0.0.1", 8501) == (
        "http://localhost:8501 (this machine only; put a TLS proxy in front)"
    )
    everywhere = serving_urls("0.0.0.0", 8600)
    assert everywhere.startswith("http://localhost:8600 and http://")
    assert everywhere.endswith(":8600 (every interface)")
    assert serving_urls("10.1.2.3", 80) == "http://10.1.2.3:80"
    assert serving_urls("fd00::5", 8501) == "http://[fd00::5]:8501"


def test_the_listen_address_is_a_setting(tmp_path: Path) -> None:
    assert load_settings({"DEFECTLENS_HOME": str(tmp_path)}).listen_address == "0.0.0.0"
    env = {"DEFECTLENS_HOME": str(tmp_path), "DEFECTLENS_LISTEN_ADDRESS": "127.0.0.1"}
    assert load_settings(env).listen_address == "127.0.0.1"


def test_the_data_directory_and_everything_in_it_is_the_owners_only(cli: Cli) -> None:
    cli.home.mkdir(mode=0o755)
    assert cli.run("init").returncode == 0
    assert cli.run("user", "add", "vic", "--role", "viewer").returncode == 0
    assert stat.S_IMODE(cli.home.stat().st_mode) == 0o700
    made = [p for p in cli.home.rglob("*")]
    assert any(p.name == "defectlens.db" for p in made)
    loose = [(p.name, oct(stat.S_IMODE(p.stat().st_mode))) for p in made
             if stat.S_IMODE(p.stat().st_mode) & 0o077]  # fmt: skip
    assert loose == []
