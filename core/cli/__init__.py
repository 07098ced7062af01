"""The `defectlens` command line (Typer). See DESIGN.md, "Command line"."""

from core.cli.main import main

__all__ = ["main"]
