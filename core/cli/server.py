"""`defectlens init` and `defectlens run`: prepare the data directory, serve the dashboard."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from core import setup
from core.cli.common import JsonOpt, emit_json, fail, settings
from core.config import Settings
from core.demo import status as demo_status
from core.files import write_atomic

REPO_ROOT = Path(__file__).resolve().parents[2]
# Where the first admin's password goes when stdout is not a terminal (systemd, a container).
ADMIN_PASSWORD_FILE = "initial-admin-password.txt"

# Runs in the server's own process, never in core: DefectLens builds its navigation with
# st.navigation, per role. Streamlit's legacy multipage mode would turn every script in the
# pages/ folder next to app.py into a page until the first st.navigation call of the process,
# so a first visit to /admin on a fresh server would list them all. The flag is set before
# Streamlit starts, keeping navigation role-filtered from the first request.
STREAMLIT_LAUNCHER = (
    "import sys; "
    "from streamlit.runtime.pages_manager import PagesManager; "
    "from streamlit.web import cli; "
    "PagesManager.uses_pages_directory = False; "
    "sys.argv = ['streamlit', *sys.argv[1:]]; "
    "sys.exit(cli.main())"
)


def init(
    admin: Annotated[str, typer.Option(help="Username of the first admin.")] = "admin",
    as_json: JsonOpt = False,
) -> None:
    """Create the data directory, migrate the database and create the first admin."""
    result = setup.initialise(settings(), admin_username=admin)
    if as_json:
        emit_json(
            {
                "home": result.home,
                "db_url": result.db_url,
                "revision": result.revision,
                "admin": result.admin_username,
                "password": result.admin_password,
            }
        )
        return
    typer.echo(f"data directory: {result.home}")
    typer.echo(f"database: {result.db_url} (schema {result.revision})")
    if result.admin_password:
        _announce_admin(settings(), result.admin_username, result.admin_password)
    else:
        typer.echo("users already exist; no account created")


def _announce_admin(s: Settings, username: str | None, password: str) -> None:
    """The first admin's password, once: printed on a terminal; otherwise (systemd, a container,
    a pipe: output that ends up in a log) written to an owner-only file in the data directory."""
    if sys.stdout.isatty():
        typer.echo(
            f"created admin '{username}' with password: {password}\n"
            "This password is shown only once. Log in and keep it safe."
        )
        return
    path = s.home / ADMIN_PASSWORD_FILE
    write_atomic(path, f"username: {username}\npassword: {password}\n".encode())
    os.chmod(path, 0o600)
    typer.echo(
        f"created admin '{username}'; the password is in {path} (readable by this user only; "
        "delete the file after the first login)"
    )


def _streamlit_command(port: int, max_upload_mb: int, address: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        STREAMLIT_LAUNCHER,
        "run",
        # app.py behind the login form and session gate (an st.App; see core/auth/web.py)
        str(REPO_ROOT / "pages" / "_server.py"),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--server.maxUploadSize",
        str(max_upload_mb),
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]


def _cli_command() -> list[str]:
    return [sys.executable, "-c", "from core.cli import main; main()"]


def _worker_command() -> list[str]:
    return [*_cli_command(), "worker"]


def _network_url(port: int) -> str:
    """The address another machine on the plant network reaches this one at."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.255.255.255", 1))  # UDP: picks the outgoing interface, sends nothing
            address = probe.getsockname()[0]
    except OSError:
        address = socket.gethostname()
    return f"http://{address}:{port}"


def serving_urls(address: str, port: int) -> str:
    """The startup line: where the dashboard really answers for this listen address."""
    if address in ("0.0.0.0", "::", ""):
        return f"http://localhost:{port} and {_network_url(port)} (every interface)"
    if address in ("127.0.0.1", "localhost", "::1"):
        return f"http://localhost:{port} (this machine only; put a TLS proxy in front)"
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}"


def _supervise(
    children: list[subprocess.Popen[bytes]], tasks: list[subprocess.Popen[bytes]] | None = None
) -> bool:
    """Wait until Ctrl-C, SIGTERM or a child exits, then stop them all (and any task still
    running, such as the demo's seeding, which may end on its own); True when signalled."""
    tasks = tasks or []
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while not stopping and all(c.poll() is None for c in children):
            time.sleep(0.2)
    finally:
        for child in [*children, *tasks]:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 10
        for child in [*children, *tasks]:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
    return stopping


def run(
    port: Annotated[int | None, typer.Option(help="HTTP port (default DEFECTLENS_PORT).")] = None,
    address: Annotated[
        str | None,
        typer.Option(help="Listen address (default DEFECTLENS_LISTEN_ADDRESS, 0.0.0.0: all)."),
    ] = None,
    no_demo: Annotated[
        bool,
        typer.Option("--no-demo", help="Do not seed the demo on a first start (empty database)."),
    ] = False,
) -> None:
    """Migrate, then serve the dashboard until Ctrl-C or SIGTERM."""
    s = settings()
    result = setup.initialise(s)
    if result.admin_password:
        _announce_admin(s, result.admin_username, result.admin_password)
    port = port or s.port
    address = address or s.listen_address
    env = dict(os.environ, DEFECTLENS_HOME=str(s.home), DEFECTLENS_DB_URL=s.db_url)
    children = [
        subprocess.Popen(
            _streamlit_command(port, s.max_upload_mb, address), env=env, cwd=REPO_ROOT
        ),
        # The training worker: pages only queue jobs, this process runs them.
        subprocess.Popen(_worker_command(), env=env, cwd=REPO_ROOT),
    ]
    # A first start on an empty database seeds the demo beside the running dashboard (its
    # progress goes to this terminal; the pages say it is being prepared).
    # A seeding that a stop interrupted is rebuilt from scratch.
    resume = not no_demo and demo_status.interrupted(s)
    tasks = [] if no_demo or not (resume or setup.is_empty(s)) else [
        subprocess.Popen([*_cli_command(), "demo", *(["--fresh"] if resume else [])], env=env,
                         cwd=REPO_ROOT)
    ]  # fmt: skip
    typer.echo(f"DefectLens on {serving_urls(address, port)} (Ctrl-C to stop)")
    if tasks:
        typer.echo("seeding the demo (a few minutes; the dashboard is usable meanwhile)")
    stopping = _supervise(children, tasks)
    failed = [c for c in children if c.returncode not in (0, -signal.SIGTERM, None)]
    if failed and not stopping:
        raise fail(f"a server process exited with code {failed[0].returncode}")
