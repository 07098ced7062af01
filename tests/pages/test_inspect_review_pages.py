"""AppTest: upload on the inspect page, work the review queue, and a review conflict between
two browser sessions. Real model, real database, real images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.auth import accounts, audit, permissions
from core.quality import ingest, inspections, review
from core.registry import catalog
from db.queries.inspections import InspectionRecord
from tests.pages.conftest import APP

pytestmark = pytest.mark.slow


def _png(value: int, stripe: bool = False) -> bytes:
    rng = np.random.default_rng(value)
    a = (rng.random((40, 40)) * 60 + 100).astype(np.uint8)
    if stripe:
        a[:, 18:22] = 250
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _page(user: object, path: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["defectlens_user"] = user
    at.run()
    return at.switch_page(path).run()


@pytest.fixture
def active_model(db, train_tiny):  # type: ignore[no-untyped-def]
    model = train_tiny(epochs=2)
    catalog.promote_model(db, permissions.SYSTEM, model.id)
    return model


def test_upload_two_good_one_bad(app_env, make_user, db, active_model) -> None:  # type: ignore[no-untyped-def]
    reviewer, _ = make_user("rita", "reviewer")
    at = _page(reviewer, "pages/inspect.py")
    assert not at.exception
    at.text_input[0].input("L1")  # line
    at.text_input[2].input("P-100")  # product
    at.file_uploader[0].set_value(
        [
            ("a.png", _png(1), "image/png"),
            ("b.png", _png(2, stripe=True), "image/png"),
            ("<script>x</script>.png", b"<html>not an image</html>", "image/png"),
        ]
    )
    next(b for b in at.button if b.label == "Inspect").click().run()
    assert not at.exception
    stored = inspections.list_inspections(db, permissions.SYSTEM)
    assert len(stored) == 2
    assert {r.line for r in stored} == {"L1"} and {r.product for r in stored} == {"P-100"}
    rejected = at.dataframe[0].value
    assert list(rejected["file"]) == ["<script>x</script>.png"]
    assert "not an image" in rejected["reason"][0] or "HTML" in rejected["reason"][0]
    results = at.dataframe[1].value
    assert sorted(results["file"]) == ["a.png", "b.png"]


def _flag_one(db, settings) -> InspectionRecord:  # type: ignore[no-untyped-def]
    result = ingest.ingest(
        db,
        settings,
        permissions.SYSTEM,
        [("part.png", _png(7, stripe=True))],
        ingest.Traceability(line="L2", product="P-7"),
    )
    (rec,) = result.processed
    assert rec.flagged, "a stripe part is a defect for the tiny model"
    return rec


def test_review_writes_review_and_audit(app_env, make_user, db, settings, active_model) -> None:  # type: ignore[no-untyped-def]
    reviewer, _ = make_user("rita", "reviewer")
    rec = _flag_one(db, settings)
    at = _page(reviewer, "pages/review.py")
    assert not at.exception
    assert any(s.value == f"Part #{rec.id}" for s in at.subheader)
    at.radio(key="review_true_class").set_value("ok").run()
    at.text_input(key=f"note_{rec.id}").input("<b>burr</b> on edge").run()
    next(b for b in at.button if b.label.startswith("Scrap")).click().run()
    assert not at.exception
    (entry,) = review.history(db, permissions.SYSTEM, rec.id)
    assert (entry.true_class, entry.disposition, entry.note) == (
        "ok",
        "scrap",
        "<b>burr</b> on edge",
    )
    assert entry.reviewer == "rita"
    (audited,) = audit.audit_log(db, permissions.SYSTEM, action="part_reviewed")
    assert (audited["user"], audited["entity"], audited["entity_id"]) == (
        "rita",
        "inspection",
        str(rec.id),
    )
    assert any("Nothing waiting" in s.value for s in at.success)


def test_two_sessions_same_part_second_gets_conflict(
    app_env, make_user, db, settings, active_model
) -> None:  # type: ignore[no-untyped-def]
    first, _ = make_user("rita", "reviewer")
    second, _ = make_user("sam", "reviewer")
    rec = _flag_one(db, settings)
    a = _page(first, "pages/review.py")
    b = _page(second, "pages/review.py")
    next(x for x in a.button if x.label.startswith("Accept")).click().run()
    next(x for x in b.button if x.label.startswith("Rework")).click().run()
    assert not b.exception
    assert any("rita" in w.value for w in b.warning), [w.value for w in b.warning]
    history = review.history(db, permissions.SYSTEM, rec.id)
    assert [(h.reviewer, h.disposition) for h in history] == [("rita", "accept")]


def test_viewer_cannot_open_inspect_or_review(app_env, make_user) -> None:  # type: ignore[no-untyped-def]
    viewer, _ = make_user("vic", "viewer")
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["defectlens_user"] = viewer
    at.run()
    for path in ("pages/inspect.py", "pages/review.py"):
        with pytest.raises(ValueError):
            at.switch_page(path)


def test_a_deactivated_reviewers_open_tab_cannot_save_a_review(
    app_env, make_user, db, settings, active_model
) -> None:  # type: ignore[no-untyped-def]
    reviewer, _ = make_user("rita", "reviewer")
    rec = _flag_one(db, settings)
    at = _page(reviewer, "pages/review.py")
    assert any(s.value == f"Part #{rec.id}" for s in at.subheader)
    accounts.set_active(db, permissions.SYSTEM, reviewer.id, False)  # while her tab is open
    next(b for b in at.button if b.label.startswith("Accept")).click().run()
    assert not at.exception
    assert (
        review.history(db, permissions.SYSTEM, rec.id) == []
    )  # the button's callback acted as no one
    assert not any(s.value == f"Part #{rec.id}" for s in at.subheader)
