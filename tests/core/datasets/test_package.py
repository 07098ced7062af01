"""core.datasets never loads torch: the CLI's dataset commands and the Training page stay light."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import core.datasets

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_no_dataset_module_imports_torch() -> None:
    modules = sorted(
        f"core.datasets.{m.name}" for m in pkgutil.iter_modules(core.datasets.__path__)
    )
    assert "core.datasets.from_reviews" in modules and "core.datasets.importer" in modules
    probe = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(m for m in ('torch', 'torchvision') if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []
