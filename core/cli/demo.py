"""`defectlens demo [--fresh] [--remove]`: seed the synthetic demo, rebuild it, or remove it."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from core.auth import permissions
from core.cli.common import JsonOpt, emit_json, open_database
from core.demo import remove as demo_remove
from core.demo import seed as demo_seed
from core.demo import status
from core.errors import Conflict
from db.queries import catalog as catalog_queries


def demo(
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Remove the demo first, then seed it anew.")
    ] = False,
    remove: Annotated[
        bool, typer.Option("--remove", help="Remove the demo and its files; real data stays.")
    ] = False,
    days: Annotated[int, typer.Option(min=10, max=90, help="Days of production.")] = 30,
    parts_per_shift: Annotated[
        int, typer.Option(min=1, max=500, help="Parts per line and shift.")
    ] = demo_seed.DemoPlan.parts_per_shift,
    per_class: Annotated[
        int, typer.Option(min=10, max=2000, help="Training images per class.")
    ] = demo_seed.DemoPlan.per_class,
    epochs: Annotated[
        int, typer.Option(min=1, max=200, help="Epochs of the first demo model.")
    ] = demo_seed.DemoPlan.epochs,
    as_json: JsonOpt = False,
) -> None:
    """Seed a living demo: generated parts, a demo model, 30 days of production on three lines."""
    s, db = open_database()
    started = time.perf_counter()
    if remove or fresh:
        done = demo_remove.remove_demo(db, s, permissions.SYSTEM)
        if remove:
            if as_json:
                emit_json({"removed": done.removed, "kept": done.kept, "files": done.files})
            else:
                typer.echo(f"demo removed: {_counts(done.removed)}; {done.files} files deleted")
                if done.kept:
                    typer.echo(f"kept (real data uses them): {_counts(done.kept)}")
            return
    if any(demo_remove.demo_counts(db, permissions.SYSTEM).values()):
        raise Conflict("the demo is already there; `defectlens demo --fresh` rebuilds it")
    with db.read() as session:
        active = catalog_queries.active_model(session)
    if active is not None and not active.is_demo:
        raise Conflict(
            f"model {active.id} ({active.name}) is active: the demo would replace it; "
            "the demo is for a fresh installation"
        )

    def progress(text: str, share: float) -> None:
        if not as_json:
            typer.echo(f"demo [{share:4.0%}] {text}", err=True)

    try:
        # The second model goes on from the first for a third as many epochs (10 of 30).
        plan = demo_seed.DemoPlan(
            days=days, parts_per_shift=parts_per_shift, per_class=per_class, epochs=epochs,
            second_epochs=max(1, epochs // 3),
        )  # fmt: skip
        made = demo_seed.seed_demo(db, s, plan, progress=progress)
    except BaseException:
        status.write(s, "failed", "seeding the demo failed; see the terminal", 1.0)
        raise
    seconds = round(time.perf_counter() - started, 1)
    if as_json:
        emit_json({**made, "seconds": seconds})
    else:
        typer.echo(f"demo ready in {seconds:.0f} s: {_counts(made)}")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "nothing"
