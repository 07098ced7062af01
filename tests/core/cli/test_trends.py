"""`defectlens rollup --rebuild` through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CLI = str(Path(sys.executable).with_name("defectlens"))


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEFECTLENS_HOME=str(home))
    env.pop("DEFECTLENS_DB_URL", None)
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def test_rollup_rebuild_reports_its_cells_and_a_bare_call_says_what_to_do(tmp_path: Path) -> None:
    done = _run(tmp_path / "home", "rollup", "--rebuild", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cells"] == 0
    bare = _run(tmp_path / "home", "rollup")
    assert bare.returncode == 1
    assert bare.stderr.strip() == "error: say what to do: defectlens rollup --rebuild"
