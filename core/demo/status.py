"""Where the demo stands, for the banner every page shows: a small JSON file in the data
directory that `defectlens demo` rewrites as it goes (the pages stay usable meanwhile)."""

from __future__ import annotations

import json
import os
from typing import Any

from core.config import Settings
from core.files import write_atomic
from db.models import utcnow

FILE = "demo.json"


def write(settings: Settings, state: str, step: str, share: float) -> None:
    """Record the demo's state ('preparing', 'ready', 'failed'), its step and progress."""
    payload = {"state": state, "step": step, "progress": round(share, 3), "pid": os.getpid(),
               "at": utcnow().isoformat()}  # fmt: skip
    write_atomic(settings.home / FILE, json.dumps(payload).encode("utf-8"))


def read(settings: Settings) -> dict[str, Any] | None:
    """The last state written, or None when there is no demo (never seeded, or removed)."""
    try:
        return dict(json.loads((settings.home / FILE).read_text("utf-8")))
    except (OSError, ValueError):
        return None


def interrupted(settings: Settings) -> bool:
    """Whether a seeding stopped half-way (see unfinished)."""
    return unfinished(read(settings))


def unfinished(state: dict[str, Any] | None) -> bool:
    """Whether this state is a seeding that stopped half-way: it says preparing (or failed), and
    its process is gone (the server was stopped meanwhile, Ctrl-C, a restart of the machine)."""
    if state is None or state.get("state") not in ("preparing", "failed"):
        return False
    pid = int(state.get("pid") or 0)
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False  # a process of another user holds the pid: not ours to judge
    return False


def clear(settings: Settings) -> None:
    """Forget the demo's state (after it was removed)."""
    (settings.home / FILE).unlink(missing_ok=True)
