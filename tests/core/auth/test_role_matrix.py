"""Every public core function that takes the acting user checks a role, and docs/reliability.md
shows the matrix the code has (issue 12: the role x action matrix for reads and writes)."""

from __future__ import annotations

from pathlib import Path

from tests.core.auth import role_matrix

DOC = Path(__file__).resolve().parents[3] / "docs" / "reliability.md"


def test_every_core_function_taking_an_actor_checks_an_action() -> None:
    checks = role_matrix.checks()
    assert len(checks) > 50
    unchecked = sorted(fn for fn, acts in checks.items() if not acts)
    assert unchecked == sorted(role_matrix.NAMES_ONLY), (
        "a core function takes an actor but checks no action: add require(actor, Action.X), "
        f"or say in role_matrix.NAMES_ONLY why it needs none: {unchecked}"
    )


def test_reliability_md_shows_the_matrix_the_code_has() -> None:
    table = role_matrix.render()
    assert table in DOC.read_text(), (
        "docs/reliability.md's role x action table is stale: paste the output of "
        "`python -m tests.core.auth.role_matrix`"
    )
