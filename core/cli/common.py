"""Helpers every CLI command shares: settings, JSON output, one-line errors."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from core.config import Settings, load_settings


def settings() -> Settings:
    """Settings from the environment, read once per command."""
    return load_settings()


def emit_json(payload: dict[str, Any]) -> None:
    """Print exactly one JSON object on stdout."""
    sys.stdout.write(json.dumps(payload, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one line on stderr and return the Exit to raise."""
    sys.stderr.write(f"error: {message}\n")
    return typer.Exit(code)
