"""The `defectlens` Typer app: every command group registered in one place, and `main()`, which
keeps the DESIGN.md contract (errors are one line on stderr and a non-zero exit, never a
traceback)."""

from __future__ import annotations

import logging
import os
import sys

import click
import typer

from core import storage_faults
from core.cli import datasets, demo, evaluate, inspect, jobs, models, server, train, trends, users
from core.cli.common import settings
from core.errors import DefectLensError

app = typer.Typer(
    name="defectlens",
    help="DefectLens: self-hosted visual quality inspection.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("init")(server.init)
app.add_typer(users.app, name="user")
app.command("run")(server.run)
app.add_typer(jobs.app, name="jobs")
app.command("worker")(jobs.worker)
app.command("ingest")(inspect.ingest_cmd)
app.add_typer(datasets.app, name="dataset")
app.add_typer(models.app, name="models")
app.command("train")(train.train)
app.command("evaluate")(evaluate.evaluate)
app.command("rollup")(trends.rollup)
app.command("trends")(trends.trends)
app.command("report")(trends.report)
app.command("demo")(demo.demo)


def main() -> None:
    """Run the CLI; errors become one line on stderr and a non-zero exit code."""
    # Owner-only files: the database and its WAL (password hashes, e-mails, the audit log), job
    # logs, images. Every process `defectlens` starts (web server, worker, training) inherits it.
    os.umask(0o077)
    try:
        # Inside the try: a bad setting is a one-line error like any other.
        logging.basicConfig(
            level=settings().log_level or "WARNING",
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
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
    except click.ClickException as e:  # usage errors: unknown command, missing option
        sys.stderr.write(f"error: {e.format_message()}\n")
        sys.exit(e.exit_code)
    except Exception as e:  # noqa: BLE001 - the CLI contract: one line, never a traceback
        logging.getLogger("defectlens").debug("unexpected error", exc_info=True)
        explained = storage_faults.explain(e)
        if explained is not None:  # a full disk, a read-only directory, a locked database
            sys.stderr.write(f"error: {explained}\n")
            sys.exit(1)
        sys.stderr.write(f"error: {type(e).__name__}: {e}\n")
        sys.exit(2)
    # standalone_mode=False makes Click return a typer.Exit's code instead of raising it.
    if isinstance(code, int) and code != 0:
        sys.exit(code)
