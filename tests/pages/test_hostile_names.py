"""Issue 12, hole 8: names users type (a dataset, its source and health warnings, a class, a
model, a line and product, an uploaded file) made of Markdown that would show a fake sign-in
link and load a remote image, or of HTML, reach every page that shows them as typed text:
escaped wherever Streamlit renders Markdown, as typed in plain-text widgets and tables, and
HTML-escaped in Plotly, never as a link, an image or a tag."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from core.auth import permissions
from core.config import Settings
from core.quality import ingest, timeline
from core.registry import catalog
from core.training.config import TrainConfig
from db.engine import Database
from db.models import Model, utcnow
from db.queries import jobs
from pages._ui import literal, plot_text
from tests.core.inspection_support import png, register_active_model
from tests.pages.conftest import APP

pytestmark = pytest.mark.slow

LINK = "![](https://x.example/t.gif)[Session expired, sign in](https://x.example/login)"
TAG = "<img src=x onerror=alert(1)>"
# Markup that would be live in Markdown: a link or image's "](" or an HTML tag, unescaped.
_LIVE = re.compile(r"(?<!\\)\]\(|(?<!\\)<img", re.IGNORECASE)


@dataclass(frozen=True)
class World:
    """One hostile name given to everything a user can name."""

    name: str
    second_class: str
    upload: str  # the file name the Inspect page uploads


def _world(db: Database, settings: Settings, name: str) -> World:
    second = f"{name} 2"
    dataset, _ = catalog.register_dataset(
        db,
        permissions.SYSTEM,
        name=name,
        source=f"upload: {name}.zip",
        class_names=[name, second],
        counts={name: 3, second: 3},
        manifest_path=settings.datasets_dir / "gone" / "manifest.json",  # deleted from disk
        content_hash=uuid.uuid4().hex,
        health={
            "warnings": [f"class {name} has only 3 images"],
            "unreadable": [[f"{name}.png", "not an image"]],
        },
    )
    # Both classes are defects under the built-in rule, so every part is flagged.
    model = register_active_model(db, settings, class_names=(name, second), dataset_id=dataset.id)
    with db.write() as session:
        row = session.get(Model, model.id)
        row.name = name
        row.metrics = {"confusion_matrix": [[1, 0], [0, 1]], "accuracy": 1.0}
    ingest.ingest(
        db,
        settings,
        permissions.SYSTEM,
        [(f"{name}.png", png(1)), (f"{name} b.png", png(2, scratch=True))],
        ingest.Traceability(line=name, product=name),
    )
    timeline.add_annotation(
        db, permissions.SYSTEM, utcnow() - timedelta(hours=1), f"die changed: {name}", line=name
    )
    with db.write() as session:
        jobs.add_job(
            session,
            dataset_id=dataset.id,
            config=TrainConfig().to_dict(),
            backend="local",
            created_by=None,
            message=f"waiting for a worker to train {name}",
        )
    return World(name, second, f"{name} upload.png")


def _markdown(at: AppTest) -> list[str]:
    """The source of everything Streamlit rendered as Markdown."""
    out: list[str] = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "title",
                 "header", "subheader"):  # fmt: skip
        out += [str(e.value) for e in getattr(at, kind)]
    out += [str(e.label) for e in at.expander] + [str(b.label) for b in at.button]
    out += [str(t.label) for t in at.tabs] + [str(o) for r in at.radio for o in r.options]
    out += [f"{m.label} {m.value}" for m in at.metric]
    out += [str(c) for img in at.get("image") for c in img.captions]  # type: ignore[attr-defined]
    return out


def _plain(at: AppTest) -> list[str]:
    """What Streamlit shows as plain text: select options, st.text, st.code and table cells."""
    out = [str(o) for box in [*at.selectbox, *at.multiselect] for o in box.options]
    out += [str(t.value) for t in at.text] + [str(c.value) for c in at.code]
    for frame in at.dataframe:
        out += [str(v) for v in frame.value.astype(str).to_numpy().ravel()]
    return out


def _plotly(at: AppTest) -> list[Any]:
    """Every Plotly figure's traces and layout, parsed."""
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]  # type: ignore[attr-defined]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _open(page: str, user: Any) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["defectlens_user"] = user
    at.run()
    return at.switch_page(page).run()


def _act(at: AppTest, page: str, world: World) -> AppTest:
    """What a user does on the page before looking: upload a file, pick a class, a product."""
    if page == "pages/inspect.py":
        at.text_input[0].input(world.name)  # line
        at.text_input[2].input(world.name)  # product
        at.file_uploader[0].set_value([(world.upload, png(3), "image/png")])
        return next(b for b in at.button if b.label == "Inspect").click().run()
    if page == "pages/flag_rules.py":
        at.text_input[0].input(world.name)  # the product
        return at.multiselect[0].select(world.second_class).run()  # runs the threshold helper
    return at


# Per page: the user text that must appear escaped in Markdown, as typed in plain text, and
# HTML-escaped in Plotly, so a page that stops showing the name also fails.
EXPECT: dict[str, dict[str, list[str]]] = {
    "pages/home.py": {"markdown": ["{name}"]},  # the line, the active model's metric
    "pages/inspect.py": {
        "markdown": ["{name}", "Image: {upload}"],  # the model, class and file
        "plain": ["{upload}"],  # the results table and picker
    },
    "pages/review.py": {"markdown": ["{name}", "{second}"], "plain": ["File: {name}"]},
    "pages/trends.py": {"markdown": ["{name}"], "plain": ["{name}"], "plotly": ["{name}"]},
    "pages/training.py": {
        "markdown": ["{name}", "Source: upload: {name}.zip", "class {name} has only 3"],
        "plain": ["{name}.png", "{name}"],
    },
    "pages/models.py": {"markdown": ["{name}"], "plain": ["{name}"], "plotly": ["{second}"]},
    "pages/flag_rules.py": {"markdown": ["{name}", "Threshold helper unavailable: dataset"]},
    "pages/admin.py": {"plain": ["{name}"]},  # the audit log's details
}


@pytest.mark.parametrize("name", [LINK, TAG], ids=["markdown-link", "html-tag"])
@pytest.mark.parametrize("page", sorted(EXPECT))
def test_hostile_names_are_shown_as_typed(
    app_env: Settings, make_user: Any, db: Database, page: str, name: str
) -> None:
    world = _world(db, app_env, name)
    admin, _ = make_user("ada", "admin")
    at = _act(_open(page, admin), page, world)
    assert not at.exception, at.exception

    markdown = _markdown(at)
    live = [t for t in markdown if _LIVE.search(t)]
    assert not live, f"user text rendered as live Markdown on {page}: {live}"
    fill = {"name": name, "second": world.second_class, "upload": world.upload}
    for want in EXPECT[page].get("markdown", []):
        shown = literal(want.format(**fill)) if "{" in want else want
        assert any(shown in t for t in markdown), f"{page}: no escaped {shown!r} in Markdown"
    plain = _plain(at)
    for want in EXPECT[page].get("plain", []):
        typed = want.format(**fill)
        assert any(typed in t for t in plain), f"{page}: {typed!r} not shown as typed"
    figures = [s for fig in _plotly(at) for s in _strings(fig)]
    assert not [s for s in figures if TAG in s], f"a raw HTML tag in a Plotly figure on {page}"
    for want in EXPECT[page].get("plotly", []):
        escaped = plot_text(want.format(**fill))
        assert any(escaped in s for s in figures), f"{page}: no {escaped!r} in Plotly"
