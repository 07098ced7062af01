"""app.py's and every page's top-level imports never load torch (or onnx, captum, ray).

Each check runs in a fresh interpreter (this test process has long imported torch), executes
exactly the file's top-level ``from core…`` / ``from db…`` / ``from pages…`` statements, and
fails naming the import chain that pulled a heavy package in. What a page does when it runs
is not covered: the Training page's GPU probe (core.jobs.backend.detected_gpu) loads torch the
first time the launch form renders.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "onnxruntime", "onnx", "captum", "ray")
OWN_PACKAGES = ("core", "db", "pages")
ENTRY_FILES = [REPO_ROOT / "app.py", *sorted((REPO_ROOT / "pages").glob("*.py"))]
# Modules that torch-free code imports at its top, and that therefore defer torch themselves.
LIGHT_MODULES = (
    "core.training.config",
    "core.training.register",
    "core.vision.gradcam",
    "core.vision.images",
    "core.vision.preprocess",
    "core.registry.compare",
)

# Runs in the child: a meta-path finder that never finds anything, but records the project
# modules on the stack when a heavy package is first imported.
_PROBE = """
import json, sys, traceback
HEAVY = {heavy!r}
chains = {{}}

class Recorder:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in HEAVY and top not in chains:
            chains[top] = [
                f"{{f.filename}}:{{f.lineno}}"
                for f in traceback.extract_stack()
                if f.filename.startswith({root!r}) and "/.venv/" not in f.filename
            ]
        return None

sys.meta_path.insert(0, Recorder())
{imports}
loaded = sorted(m for m in HEAVY if m in sys.modules)
print(json.dumps({{"loaded": loaded, "chains": {{m: chains.get(m, []) for m in loaded}}}}))
"""


def own_top_level_imports(path: Path) -> list[str]:
    """The file's module-level import statements of project packages, as source lines."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top = node.module.partition(".")[0]
        elif isinstance(node, ast.Import):
            tops = {alias.name.partition(".")[0] for alias in node.names}
            top = next((t for t in tops if t in OWN_PACKAGES), "")
        else:
            continue
        if top in OWN_PACKAGES:
            found.append(ast.unparse(node))
    return found


def test_every_entry_file_imports_project_modules() -> None:
    # Guards the parser: a page with no project import would make its check below vacuous.
    for path in ENTRY_FILES:
        assert own_top_level_imports(path), f"{path.name}: no core/db/pages import found"


def heavy_imports(imports: list[str]) -> tuple[list[str], str]:
    """(heavy packages loaded, the chain that loaded each) after the imports, in a fresh process."""
    code = _PROBE.format(heavy=HEAVY, root=str(REPO_ROOT), imports="\n".join(imports))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    chains = "\n".join(
        f"  {mod} via " + " -> ".join(chain) for mod, chain in report["chains"].items()
    )
    return report["loaded"], chains


@pytest.mark.parametrize("path", ENTRY_FILES, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_top_level_imports_do_not_load_heavy_packages(path: Path) -> None:
    loaded, chains = heavy_imports(own_top_level_imports(path))
    assert loaded == [], f"{path.name} loads {loaded}:\n{chains}"


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_light_modules_defer_heavy_packages(module: str) -> None:
    loaded, chains = heavy_imports([f"import {module}"])
    assert loaded == [], f"{module} loads {loaded}:\n{chains}"
