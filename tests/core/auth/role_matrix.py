"""The role x action matrix, read from the code: which core functions check which action.

Every public function in ``core/`` that takes ``actor`` is scanned (with ``ast``, nothing is
imported) for the actions it passes to ``require`` / ``can``, directly or through another such
function it hands ``actor`` to. ``render()`` is the table in docs/reliability.md;
``python -m tests.core.auth.role_matrix`` prints it.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from core.auth.permissions import MIN_ROLE, ROLES, Action

CORE = Path(__file__).resolve().parents[3] / "core"
# Functions that take the actor only to name it, not to gate anything, and why.
NAMES_ONLY = {
    "core.auth.audit.record_audit": "writes who did something; the caller checked the action",
    "core.quality.review.reviewer_stats": "a person's own review counts, for that person",
}
WRITE_WORDS = ("add", "create", "record", "save", "set", "submit", "cancel", "promote", "import",
               "remove", "delete", "deactivate", "reset", "freeze", "register", "ingest",
               "update", "bind", "merge", "rollback", "unbind", "build", "edit", "run", "train",
               "withdraw", "snapshot")  # fmt: skip

Scanned = dict[str, tuple[set[str], set[str]]]


def _scan() -> Scanned:
    found: Scanned = {}
    for path in sorted(CORE.rglob("*.py")):
        module = ".".join(path.relative_to(CORE.parent).with_suffix("").parts)
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
                continue
            if "actor" not in [a.arg for a in node.args.args + node.args.kwonlyargs]:
                continue
            direct: set[str] = set()
            calls: set[str] = set()
            for sub in ast.walk(node):
                if not isinstance(sub, ast.Call):
                    continue
                fn = sub.func
                name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
                if name in ("require", "can"):
                    direct |= {a.attr for a in sub.args if isinstance(a, ast.Attribute)
                               and getattr(a.value, "id", "") == "Action"}  # fmt: skip
                elif any(isinstance(a, ast.Name) and a.id == "actor" for a in sub.args) or any(
                    k.arg == "actor" for k in sub.keywords
                ):
                    calls.add(name)
            found[f"{module}.{node.name}"] = (direct, calls)
    return found


def checks() -> dict[str, set[str]]:
    """Each public core function taking an actor -> the actions it checks (transitively)."""
    found = _scan()
    by_name: dict[str, list[str]] = defaultdict(list)
    for qualified in found:
        by_name[qualified.rsplit(".", 1)[1]].append(qualified)

    def actions(fn: str, seen: frozenset[str]) -> set[str]:
        direct, calls = found[fn]
        out = set(direct)
        for name in calls:
            for callee in by_name.get(name, []):
                if callee not in seen:
                    out |= actions(callee, seen | {fn})
        return out

    return {fn: actions(fn, frozenset({fn})) for fn in found}


def render() -> str:
    """The markdown table: one row per action, its roles, and the functions that check it."""
    by_action: dict[str, list[str]] = defaultdict(list)
    for fn, acts in sorted(checks().items()):
        for act in acts:
            by_action[act].append(fn.removeprefix("core."))
    lines = ["| action | " + " | ".join(r.value for r in ROLES) + " | checked in core by |",
             "| --- |" + " --- |" * len(ROLES) + " --- |"]  # fmt: skip
    rank = {r: i for i, r in enumerate(ROLES)}
    for action in Action:
        need = rank[MIN_ROLE[action]]
        marks = " | ".join("yes" if rank[r] >= need else "–" for r in ROLES)
        fns = by_action.get(action.name, [])
        reads = [f for f in fns if not f.rsplit(".", 1)[1].startswith(WRITE_WORDS)]
        writes = [f for f in fns if f not in reads]
        cell = "; ".join(
            part for part in (
                f"reads: {', '.join(f'`{f}`' for f in reads)}" if reads else "",
                f"writes: {', '.join(f'`{f}`' for f in writes)}" if writes else "",
            ) if part
        )  # fmt: skip
        lines.append(f"| `{action.value}` | {marks} | {cell or '–'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render())
