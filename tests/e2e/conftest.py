"""Real-browser fixtures: a `defectlens run` server on a free port and Debian's Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import expect

# Assertions wait up to 30 s (Playwright's default is 5 s): on a loaded 2-core CI machine a
# page rerun with charts can take longer than that.
expect.set_options(timeout=30_000)

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _cli() -> str:
    script = Path(sys.executable).with_name("defectlens")
    if not script.exists():
        pytest.fail(f"{script} not found; run `make install`")
    return str(script)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chromium_path() -> str:
    """Debian's Chromium (never a browser downloaded by the test tool)."""
    path = os.environ.get("DEFECTLENS_CHROMIUM") or shutil.which("chromium") or ""
    if not path or not Path(path).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium not installed; .ci/run must `apt-get install chromium`")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return path


@dataclass
class Server:
    url: str
    home: Path
    admin: str
    password: str
    process: subprocess.Popen[bytes]
    log: Path
    extra_env: dict[str, str] | None = None


def _serve(
    home: Path, port: int, log: Path, demo: bool = False, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`defectlens run` on the port, once it answers its health check (with `demo`, a first
    start on an empty database seeds the demo meanwhile, as `make run` does)."""
    env = dict(os.environ, DEFECTLENS_HOME=str(home), DEFECTLENS_LOGIN_DELAY_S="0.1",
               **(extra_env or {}))  # fmt: skip
    env.pop("DEFECTLENS_DB_URL", None)
    with log.open("ab") as log_file:
        proc = subprocess.Popen(
            [_cli(), "run", "--port", str(port), *([] if demo else ["--no-demo"])],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.read().decode().strip() == "ok":
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server did not become healthy:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def restart(server: Server) -> None:
    """Stop the server and start it again on the same port and data directory."""
    _stop(server.process)
    port = int(server.url.rsplit(":", 1)[1])
    server.process = _serve(server.home, port, server.log, extra_env=server.extra_env)


def start_server(tmp_path: Path, extra_env: dict[str, str] | None = None) -> Server:
    """`defectlens init` then `defectlens run` on a free port (stop it with stop_server)."""
    home = tmp_path / "home"
    env = dict(os.environ, DEFECTLENS_HOME=str(home))
    env.pop("DEFECTLENS_DB_URL", None)
    out = subprocess.run([_cli(), "init", "--json"], env=env, capture_output=True, check=True)
    creds = json.loads(out.stdout)
    port = _free_port()
    log = tmp_path / "server.log"
    proc = _serve(home, port, log, extra_env=extra_env)
    return Server(f"http://127.0.0.1:{port}", home, creds["admin"], creds["password"], proc, log,
                  extra_env)  # fmt: skip


def stop_server(server: Server) -> None:
    _stop(server.process)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """`defectlens init` then `defectlens run` on a free port; stopped with SIGTERM after."""
    srv = start_server(tmp_path)
    yield srv
    stop_server(srv)


@pytest.fixture
def page(server: Server) -> Iterator[object]:
    """A Playwright page in headless Debian Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS
        )
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        pg = context.new_page()
        pg.set_default_timeout(30_000)
        yield pg
        context.close()
        browser.close()


def run_cli(server: Server, *args: str) -> dict:  # type: ignore[type-arg]
    """Run a `defectlens … --json` command against the server's data directory."""
    env = dict(os.environ, DEFECTLENS_HOME=str(server.home))
    env.pop("DEFECTLENS_DB_URL", None)
    proc = subprocess.run(
        [_cli(), *args, "--json"], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def login(page: object, server: Server, username: str, password: str) -> None:
    """Log in through the form and wait for the overview."""
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    page.goto(server.url)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Plant overview")).to_be_visible()
