"""AppTest: the Overview (home) page through app.py: with no inspections it points to the pages
that do the job, as the role allows; with two lines, the one with an open signal stands out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.quality import rollup
from db.models import Inspection
from db.queries import rollups


def _parts(db, line: str, at: datetime, n: int, bad: int) -> None:  # type: ignore[no-untyped-def]
    with db.write() as s:
        rows = [
            Inspection(captured_at=at, line=line, product="pump",
                       predicted_class="pit" if i < bad else "ok", confidence=0.95,
                       probabilities={}, is_defect=i < bad, flagged=i < bad)
            for i in range(n)
        ]  # fmt: skip
        s.add_all(rows)
        s.flush()
        rollups.apply(s, rollups.cells_of_parts(s, [r.id for r in rows], rollup.FALLBACK))


def test_no_inspections_links_to_training_and_inspect_when_the_role_may(  # type: ignore[no-untyped-def]
    app_as, make_user
) -> None:
    engineer, _ = make_user("erin", "engineer")
    at = app_as(engineer)
    assert not at.exception
    assert any(t.value == "Plant overview" for t in at.title)
    assert any("No inspections yet" in i.value for i in at.info)
    links = {p.value: p.proto.page for p in at.page_link}
    assert links == {
        "Training: import a dataset and train a model": "training",
        "Inspect: upload part images": "inspect",
    }
    assert at.metric[0].value == "0" and at.metric[4].value == "none yet"

    viewer, _ = make_user("vic", "viewer")
    seen = app_as(viewer)
    assert not seen.exception and len(seen.page_link) == 0
    assert any("Training page" in c.value and "Inspect page" in c.value for c in seen.caption)


def test_the_line_with_an_open_signal_stands_out(app_as, make_user, db) -> None:  # type: ignore[no-untyped-def]
    viewer, _ = make_user("vic", "viewer")
    now = datetime.now(UTC)
    for h in range(1, 167):  # a steady 10 % on both lines, every hour of the week
        _parts(db, "L1", now - timedelta(hours=h), 10, bad=1)
        _parts(db, "L2", now - timedelta(hours=h), 10, bad=1)
    _parts(db, "L1", now - timedelta(hours=1), 20, bad=16)  # and a burst on L1 an hour ago
    at = app_as(viewer)
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("**L1**: open SPC signal")
    assert "Rule 1: 1 point beyond 3σ" in errors[0]
    assert any(m.value == "**L2**: no open signal" for m in at.markdown)
    trend_links = [p for p in at.page_link if p.proto.page == "trends"]
    assert [p.proto.query_string for p in trend_links] == [
        "line=L1&period=7d&by=shift",
        "line=L2&period=7d&by=shift",
    ]
    assert any("7 days by" in c.value and "plant-local" in c.value for c in at.caption)
    waiting = [m.value for m in at.metric if m.label == "Waiting for review"]
    assert waiting == [f"{166 * 2 + 16:,}", f"{166 + 16:,}", "166"]  # plant-wide, L1, L2


def test_a_line_name_is_shown_as_typed_not_as_markdown(app_as, make_user, db) -> None:  # type: ignore[no-untyped-def]
    viewer, _ = make_user("vic", "viewer")
    _parts(db, "**L3** :red[x]", datetime.now(UTC) - timedelta(hours=1), 5, bad=0)
    at = app_as(viewer)
    assert not at.exception
    assert [m.value for m in at.markdown if "open signal" in m.value] == [
        r"**\*\*L3\*\* \:red\[x\]**: no open signal"
    ]
    assert [p.proto.query_string for p in at.page_link] == [
        "line=%2A%2AL3%2A%2A+%3Ared%5Bx%5D&period=7d&by=shift"
    ]
