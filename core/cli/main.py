"""Entry point and the operator commands: init, user, run."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from core import setup
from core.auth import accounts, permissions
from core.cli.common import emit_json, fail, settings
from core.errors import DefectLensError

app = typer.Typer(
    name="defectlens",
    help="DefectLens: self-hosted visual quality inspection.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
user_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
app.add_typer(user_app, name="user")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
REPO_ROOT = Path(__file__).resolve().parents[2]


@app.command()
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
        typer.echo(
            f"created admin '{result.admin_username}' with password: {result.admin_password}\n"
            "This password is shown only once. Log in and keep it safe."
        )
    else:
        typer.echo("users already exist; no account created")


@user_app.command("add")
def user_add(
    name: str,
    role: Annotated[str, typer.Option(help="viewer, reviewer, engineer or admin")],
    email: Annotated[str | None, typer.Option(help="E-mail for single sign-on.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a user with a random password (printed once)."""
    s = settings()
    setup.migrate(s)
    db = setup.open_database(s)
    info, password = accounts.create_user(db, permissions.SYSTEM, name, role, email=email)
    if as_json:
        emit_json(
            {
                "id": info.id,
                "username": info.username,
                "role": info.role.value,
                "password": password,
            }
        )
    else:
        typer.echo(f"added {info.role.value} '{info.username}' with password: {password}")


@user_app.command("list")
def user_list(as_json: JsonOpt = False) -> None:
    """List user accounts."""
    s = settings()
    setup.migrate(s)
    users = accounts.list_users(setup.open_database(s), permissions.SYSTEM)
    rows = [
        {
            "id": u.id,
            "username": u.username,
            "role": u.role.value,
            "active": u.active,
            "email": u.email,
        }
        for u in users
    ]
    if as_json:
        emit_json({"users": rows})
        return
    for r in rows:
        state = "" if r["active"] else " (inactive)"
        typer.echo(f"{r['id']:>4}  {r['username']:<24} {r['role']}{state}")


@user_app.command("reset-password")
def user_reset_password(name: str, as_json: JsonOpt = False) -> None:
    """Give a user a new random password (printed once); the way back in for a lost admin."""
    s = settings()
    setup.migrate(s)
    db = setup.open_database(s)
    match = [
        u for u in accounts.list_users(db, permissions.SYSTEM) if u.username.lower() == name.lower()
    ]
    if not match:
        raise fail(f"no user named {name!r}")
    password = accounts.reset_password(db, permissions.SYSTEM, match[0].id)
    if as_json:
        emit_json({"username": match[0].username, "password": password})
    else:
        typer.echo(f"new password for '{match[0].username}': {password}")


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


def _streamlit_command(port: int, max_upload_mb: int) -> list[str]:
    return [
        sys.executable,
        "-c",
        STREAMLIT_LAUNCHER,
        "run",
        str(REPO_ROOT / "app.py"),
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.maxUploadSize",
        str(max_upload_mb),
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]


def _worker_command() -> list[str]:
    return [sys.executable, "-c", "from core.cli import main; main()", "worker"]


@app.command()
def run(
    port: Annotated[int | None, typer.Option(help="HTTP port (default DEFECTLENS_PORT).")] = None,
    no_demo: Annotated[
        bool, typer.Option("--no-demo", help="Do not load demo data (no demo exists yet).")
    ] = False,
) -> None:
    """Migrate, then serve the dashboard until Ctrl-C or SIGTERM."""
    s = settings()
    result = setup.initialise(s)
    if result.admin_password:
        typer.echo(
            f"created admin '{result.admin_username}' with password: {result.admin_password}\n"
            "This password is shown only once."
        )
    port = port or s.port
    env = dict(os.environ, DEFECTLENS_HOME=str(s.home), DEFECTLENS_DB_URL=s.db_url)
    del no_demo  # accepted for the DESIGN.md contract; there is no demo data to load yet
    children = [
        subprocess.Popen(_streamlit_command(port, s.max_upload_mb), env=env, cwd=REPO_ROOT),
        # The training worker: pages only queue jobs, this process runs them.
        subprocess.Popen(_worker_command(), env=env, cwd=REPO_ROOT),
    ]
    typer.echo(f"DefectLens on http://localhost:{port} (Ctrl-C to stop)")

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
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 10
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
    failed = [c for c in children if c.returncode not in (0, -signal.SIGTERM, None)]
    if failed and not stopping:
        raise fail(f"a server process exited with code {failed[0].returncode}")


def _register_subcommands() -> None:
    """Attach the command groups other modules define (kept apart to keep files small)."""
    from core.cli import jobs

    jobs.register(app)
    from core.cli import inspect as inspect_cli

    inspect_cli.register(app)
    try:
        from core.cli import ml
    except ImportError:  # pragma: no cover - only while ml commands are being built
        return
    ml.register(app)


def main() -> None:
    """Run the CLI; errors become one line on stderr and a non-zero exit code."""
    logging.basicConfig(
        level=os.environ.get("DEFECTLENS_LOG_LEVEL", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _register_subcommands()
    try:
        code = app(standalone_mode=False)
    except DefectLensError as e:
        sys.stderr.write(f"error: {e}\n")
        sys.exit(1)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.stderr.write("aborted\n")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - the CLI contract: one line, never a traceback
        if hasattr(e, "exit_code") and hasattr(e, "format_message"):  # click usage errors
            sys.stderr.write(f"error: {e.format_message()}\n")
            sys.exit(e.exit_code)
        logging.getLogger("defectlens").debug("unexpected error", exc_info=True)
        sys.stderr.write(f"error: {type(e).__name__}: {e}\n")
        sys.exit(2)
    # standalone_mode=False makes Click return a typer.Exit's code instead of raising it.
    if isinstance(code, int) and code != 0:
        sys.exit(code)
