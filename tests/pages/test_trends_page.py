"""AppTest: the Trends page with no data, one part, and a month; filters in the query string."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.quality import rollup
from db.models import Inspection
from db.queries import rollups
from tests.pages.conftest import APP

PAGE = str(Path(APP).parent / "pages" / "trends.py")


def _open(user: object, **query: str) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["defectlens_user"] = user
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def _parts(db, rows) -> None:  # type: ignore[no-untyped-def]
    with db.write() as s:
        objs = [
            Inspection(captured_at=t, line=line, product="pump", predicted_class=cls,
                       confidence=0.9, probabilities={}, is_defect=cls != "ok",
                       flagged=cls != "ok")
            for t, line, cls in rows
        ]  # fmt: skip
        s.add_all(objs)
        s.flush()
        rollups.apply(s, rollups.cells_of_parts(s, [o.id for o in objs], rollup.FALLBACK))


def test_no_data_says_so(app_env, make_user) -> None:  # type: ignore[no-untyped-def]
    viewer, _ = make_user("vic", "viewer")
    at = _open(viewer)
    assert not at.exception
    assert any(t.value == "Trends" for t in at.title)
    assert any("No inspections in this period" in i.value for i in at.info)
    assert at.metric[0].value == "0"


def test_one_part_draws_its_point(app_env, make_user, db) -> None:  # type: ignore[no-untyped-def]
    viewer, _ = make_user("vic", "viewer")
    _parts(db, [(datetime.now(UTC) - timedelta(hours=2), "L1", "pit")])
    at = _open(viewer)
    assert not at.exception
    assert at.metric[0].value == "1" and at.metric[1].value == "100.0%"
    assert len(at.get("plotly_chart")) >= 2


def test_a_month_with_a_spike_lists_its_signal_and_keeps_filters_in_the_url(  # type: ignore[no-untyped-def]
    app_env, make_user, db
) -> None:
    viewer, _ = make_user("vic", "viewer")
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rows = []
    for d in range(1, 29):
        day = end - timedelta(days=d, hours=3)
        for i in range(50):
            bad = i < (30 if d == 10 else 3)
            rows.append((day, "L1" if i % 2 else "L2", ("pit" if i % 2 else "scratch") if bad
                         else "ok"))  # fmt: skip
    _parts(db, rows)
    at = _open(viewer, period="30d", line="L1", by="day")
    assert not at.exception
    assert at.query_params["period"] == "30d" and at.query_params["line"] == "L1"
    assert at.metric[0].value == "700"  # L1 only: 25 of each day's 50
    table = at.dataframe[0].value
    assert "Rule 1" in " ".join(table["rules"])
    assert any("chart" in c.value and "Baseline" in c.value for c in at.caption)
    everything = _open(viewer, period="30d")
    assert everything.metric[0].value == "1,400"
    assert any("Forecast, not a measurement" in c.value for c in at.caption)  # 28 days of data
    prepare = next(b for b in at.button if b.label == "Prepare CSV")
    prepare.click().run()
    assert not at.exception and at.get("download_button")
    pdf = next(b for b in at.button if b.label == "Prepare PDF report")
    pdf.click().run()
    assert not at.exception and len(at.get("download_button")) == 1
    assert not any(b.label == "Freeze limits" for b in at.button)  # a viewer reads the limits
    hostile = _open(viewer, period="30d", line="' OR 1=1 --")
    assert not hostile.exception and hostile.metric[0].value == "1,400"  # unknown: shows any


def test_an_engineer_freezes_limits_and_annotates_from_the_page(  # type: ignore[no-untyped-def]
    app_env, make_user, db
) -> None:
    engineer, _ = make_user("erin", "engineer")
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    _parts(db, [(end - timedelta(days=d, hours=3), "L1", "pit" if i < 3 else "ok")
                for d in range(1, 15) for i in range(40)])  # fmt: skip
    at = _open(engineer, period="30d", by="day")
    assert not at.exception
    freeze = next(b for b in at.button if b.label == "Freeze limits")
    freeze.click().run()
    assert not at.exception
    assert any("Limits frozen by erin" in c.value for c in at.caption)
    history = next(d.value for d in at.dataframe if "in force" in d.value.columns)
    assert list(history["in force"]) == [True]
    text = next(t for t in at.text_input if t.label == "What changed")
    text.input("new supplier lot")
    next(b for b in at.button if b.label == "Add annotation").click().run()
    assert not at.exception
    assert any(t.value == "new supplier lot" for t in at.text)
    assert any("Markers:" in c.value for c in at.caption)
