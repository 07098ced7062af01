"""Every role's journey in a real browser, against `defectlens run` on a data directory where
`defectlens demo` was seeded; the journeys also take a screenshot of every page.

The tests run in file order and share one server: the admin's journey creates the people the
others log in as. By default the demo is a smaller plan than `make run` seeds (fewer training
images and epochs, so CI stays quick; its model is weaker, so more parts are flagged). The
README's screenshots come from the full default demo:

    defectlens demo                                   # in DEFECTLENS_HOME=/some/dir
    DEFECTLENS_E2E_DEMO_HOME=/some/dir DEFECTLENS_SCREENSHOT_DIR=docs/screenshots \
        .venv/bin/python -m pytest tests/e2e/test_journeys.py

(DEFECTLENS_E2E_DEMO_HOME is copied; the directory itself is not touched.) Without
DEFECTLENS_SCREENSHOT_DIR the screenshots go to a temporary folder.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import write_tiny_dataset
from tests.e2e.conftest import (
    CHROMIUM_FLAGS,
    Server,
    _cli,
    _free_port,
    _serve,
    _stop,
    chromium_path,
    run_cli,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SHOTS = Path(
    os.environ.get("DEFECTLENS_SCREENSHOT_DIR") or Path(tempfile.gettempdir()) / "defectlens-shots"
)
# The CI plan: a month on three lines, as the default, with a smaller, quicker demo model.
SMALL_DEMO = ("--per-class", "150", "--epochs", "8", "--parts-per-shift", "12")
people: dict[str, tuple[str, str]] = {}  # role -> (username, password), filled by journey 1


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`defectlens init` and `defectlens demo` (or a copy of a seeded directory), then
    `defectlens run`."""
    root = tmp_path_factory.mktemp("journeys")
    home, log = root / "home", root / "server.log"
    env = dict(os.environ, DEFECTLENS_HOME=str(home))
    env.pop("DEFECTLENS_DB_URL", None)
    template = os.environ.get("DEFECTLENS_E2E_DEMO_HOME")
    if template:
        shutil.copytree(template, home)
        out = subprocess.run([_cli(), "user", "add", "e2e_admin", "--role", "admin", "--json"],
                             env=env, capture_output=True, check=True)  # fmt: skip
        creds = json.loads(out.stdout)
        admin, password = "e2e_admin", creds["password"]
    else:
        out = subprocess.run([_cli(), "init", "--json"], env=env, capture_output=True, check=True)
        creds = json.loads(out.stdout)
        admin, password = creds["admin"], creds["password"]
        started = time.monotonic()
        seeded = subprocess.run([_cli(), "demo", *SMALL_DEMO, "--json"], env=env,
                                capture_output=True, text=True, timeout=1800)  # fmt: skip
        assert seeded.returncode == 0, seeded.stderr[-3000:]
        print(f"demo seeded in {time.monotonic() - started:.0f} s: {seeded.stdout.strip()}")
    port = _free_port()
    proc = _serve(home, port, log)
    server = Server(f"http://127.0.0.1:{port}", home, admin, password, proc, log)
    assert json.loads((home / "demo.json").read_text())["state"] == "ready"
    yield server
    _stop(server.process)
    assert "Traceback" not in log.read_text(errors="replace"), log.read_text()[-4000:]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser profile (no cookies) for each journey."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()


# --- helpers ---------------------------------------------------------------------------------


def settle(page: Page) -> None:
    """Wait until the script run is over, then fail on any Streamlit exception shown."""
    expect(page.get_by_test_id("stApp")).to_be_visible()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stApp\"]')"
        "?.getAttribute('data-test-script-state') === 'notRunning'"
    )
    expect(page.get_by_test_id("stException")).to_have_count(0)


def shot(page: Page, name: str, height: int = 1000) -> None:
    """A README screenshot of the settled page (charts given a moment to draw). Streamlit
    scrolls inside its own container, so a long page is shot in a taller window."""
    settle(page)
    size = page.viewport_size
    if height != 1000:
        page.set_viewport_size({"width": 1440, "height": height})
        settle(page)
    page.wait_for_timeout(1200)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / f"{name}.png")
    if size is not None and height != 1000:
        page.set_viewport_size(size)


def choose(page: Page, label: str, option: re.Pattern[str]) -> None:
    """Pick an option of a select box. A click that lands while the page is still re-running
    can open a list that the rerun closes again: then the click is repeated."""
    settle(page)
    wanted = page.get_by_role("option", name=option)
    for _ in range(3):
        page.get_by_label(label).click()
        try:
            expect(wanted).to_be_visible(timeout=10_000)
            break
        except AssertionError:
            page.keyboard.press("Escape")
            settle(page)
    wanted.click()


def nav(page: Page, name: str, heading: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
    settle(page)


def log_in(page: Page, server: Server, who: str) -> None:
    username, password = people.get(who, (server.admin, server.password))
    page.goto(server.url)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Plant overview")).to_be_visible()
    expect(page.get_by_text("Demo data: generated parts on three lines")).to_be_visible()
    settle(page)


def session_survives_then_logout(page: Page, server: Server, path: str, heading: str) -> None:
    """Journey 6: a refresh and a typed deep link keep the session; logout then refresh shows
    the login form."""
    page.reload()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    settle(page)
    page.goto(f"{server.url}{path}")
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
    settle(page)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("link", name="Log in")).to_be_visible()
    page.reload()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.get_by_label("Username")).to_be_visible()


def _dispositions(server: Server, ids: list[int]) -> list[str]:
    """The stored disposition of each part's latest review, read from the database."""
    from core import setup
    from core.config import load_settings
    from db.models import Review

    db = setup.open_database(load_settings({"DEFECTLENS_HOME": str(server.home)}))
    try:
        with db.read() as s:
            latest = {r.inspection_id: r.disposition for r in s.query(Review).order_by(Review.id)}
    finally:
        db.dispose()
    return [str(getattr(latest[i], "value", latest[i])) for i in ids]


def _png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


# --- the journeys ----------------------------------------------------------------------------


def test_1_admin_creates_a_reviewer_a_viewer_and_an_engineer(demo: Server, page: Page) -> None:
    page.goto(demo.url)
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    page.wait_for_timeout(500)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / "login.png")
    log_in(page, demo, "admin")
    expect(page.get_by_text("Line 2").first).to_be_visible()
    shot(page, "overview", height=1500)

    nav(page, "Administration", "Administration")
    form = page.get_by_test_id("stForm").filter(has=page.get_by_role("button", name="Add user"))
    for role, username in (("reviewer", "quinn"), ("viewer", "vera"), ("engineer", "eli")):
        form.get_by_label("Username", exact=True).fill(username)
        form.get_by_label("Role", exact=True).click()
        page.get_by_role("option", name=role, exact=True).click()
        page.get_by_role("button", name="Add user").click()
        added = page.get_by_text(re.compile(rf"Added {username}\. Their password"))
        expect(added).to_be_visible()
        password = added.inner_text().rsplit(": ", 1)[1].strip()
        people[role] = (username, password)
        settle(page)
    expect(page.get_by_role("tab", name="Demo data")).to_be_visible()
    shot(page, "admin")
    nav(page, "Flagging rules", "Flagging rules")
    shot(page, "flagging_rules")
    session_survives_then_logout(page, demo, "/admin", "Administration")


def test_2_reviewer_uploads_good_and_bad_files_and_opens_a_heatmap(
    demo: Server, page: Page, tmp_path: Path
) -> None:
    from core.demo.images import part_image

    rng = np.random.default_rng(11)
    files = []
    for name, cls in (("ok_part.png", "ok"), ("scratched.png", "scratch"), ("pitted.png", "pit")):
        files.append({"name": name, "mimeType": "image/png", "buffer": _png(part_image(cls, rng))})
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w") as zf:
        zf.writestr("lot7/cracked.png", _png(part_image("crack", rng)))
        zf.writestr("lot7/readme.txt", b"not an image")
    files += [
        {"name": "lot7.zip", "mimeType": "application/zip", "buffer": bundle.getvalue()},
        {"name": "notes.png", "mimeType": "image/png", "buffer": b"this is text, not a PNG"},
        {"name": "cut.png", "mimeType": "image/png", "buffer": _png(part_image("ok", rng))[:300]},
    ]
    log_in(page, demo, "reviewer")
    expect(
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Training", exact=True)
    ).to_have_count(0)
    nav(page, "Inspect", "Inspect parts")
    page.get_by_label("Line").fill("Line 1")
    page.get_by_label("Product").fill("impeller-A")
    page.locator('input[type="file"]').set_input_files(files)
    expect(page.get_by_text("cut.png").first).to_be_visible()
    page.get_by_role("button", name="Inspect", exact=True).click()
    expect(page.get_by_text(re.compile(r"4 inspected, \d+ flagged, 3 rejected"))).to_be_visible(
        timeout=60_000
    )
    expect(page.get_by_role("heading", name="Rejected files")).to_be_visible()
    expect(page.get_by_role("heading", name="Results")).to_be_visible()
    # The rejected table is a canvas grid; its rows are checked through the count above.
    expect(page.get_by_test_id("stDataFrame")).to_have_count(2)  # rejected files, results
    # Open a result's heatmap: stored for a flagged part, computed on request for the others.
    choose(page, "Open a result", re.compile(r"scratched\.png"))
    # Wait for the chosen part itself: the script run may not have started yet when the option
    # is clicked, and until it has, the first result's heatmap is still on the page.
    expect(page.get_by_text(re.compile(r"^Image: scratched\.png$"))).to_be_visible()
    settle(page)
    compute = page.get_by_role("button", name="Compute heatmap")
    if compute.count():
        compute.click()
    expect(page.get_by_text("Grad-CAM heatmap: where the model looked")).to_have_count(1)
    shot(page, "inspect", height=1600)
    session_survives_then_logout(page, demo, "/review", "Review queue")


def test_3_reviewer_works_three_parts_with_the_keyboard(demo: Server, page: Page) -> None:
    log_in(page, demo, "reviewer")
    nav(page, "Review", "Review queue")
    shot(page, "review")
    saved = []
    for key, disposition in (("a", "accept"), ("w", "rework"), ("s", "scrap")):
        heading = page.get_by_role("heading", name=re.compile(r"^Part #\d+$"))
        expect(heading).to_be_visible()
        part = heading.inner_text().removeprefix("Part #")
        page.evaluate("document.activeElement?.blur()")  # keys go to the page, not a text field
        page.keyboard.press("2")  # the second class button: choose that class
        page.keyboard.press(key)
        flash = page.get_by_text(re.compile(rf"Part #{part} saved: \w+, {disposition}\."))
        expect(flash).to_be_visible()
        saved.append(part)
        settle(page)
    assert len(set(saved)) == 3  # three different parts left the queue
    assert _dispositions(demo, [int(p) for p in saved]) == ["accept", "rework", "scrap"]
    session_survives_then_logout(page, demo, "/inspect", "Inspect parts")


def test_4_engineer_imports_trains_watches_and_promotes(
    demo: Server, page: Page, tmp_path: Path
) -> None:
    data = write_tiny_dataset(tmp_path / "tiny")
    bundle = tmp_path / "bench_parts.zip"
    with zipfile.ZipFile(bundle, "w") as zf:
        for f in sorted(data.rglob("*.png")):
            zf.write(f, f.relative_to(data))
    log_in(page, demo, "engineer")
    nav(page, "Training", "Training")
    page.locator('input[type="file"]').set_input_files(str(bundle))
    page.get_by_label("Dataset name", exact=True).first.fill("bench parts")
    page.get_by_role("button", name="Import zip").click()
    expect(page.get_by_text(re.compile(r"Dataset #\d+ imported\."))).to_be_visible(timeout=60_000)
    settle(page)

    page.get_by_role("tab", name="Launch a job").click()
    page.get_by_label("Dataset", exact=True).click()
    page.get_by_role("option", name=re.compile("bench parts")).click()
    page.get_by_role("spinbutton", name="Epochs").fill("1")
    page.get_by_role("spinbutton", name="Image size (px)").fill("32")
    page.get_by_role("button", name="Queue training job").click()
    expect(page.get_by_text("queued; a worker picks it up")).to_be_visible()
    page.get_by_role("tab", name="Jobs").click()
    # Live, no reload; the job's status line, not the job table's hidden grid cell.
    done = page.get_by_text(re.compile(r"^Job #\d+: succeeded$"))
    expect(done).to_be_visible(timeout=240_000)
    shot(page, "training")

    nav(page, "Models", "Models")
    page.get_by_label("Model", exact=True).click()
    page.get_by_role("option", name=re.compile(r"\(candidate\)")).first.click()
    settle(page)
    shot(page, "models", height=2000)
    page.get_by_role("button", name="Promote to active").click()
    settle(page)
    models = run_cli(demo, "models", "list")["models"]
    active = [m for m in models if m["status"] == "active"]
    assert len(active) == 1 and active[0]["classes"] == ["ok", "scratch"], active
    expect(page.get_by_label("Model", exact=True)).to_have_value(re.compile(r"\(active\)$"))
    session_survives_then_logout(page, demo, "/models", "Models")


def test_5_viewer_reads_trends_downloads_reports_and_is_kept_out(
    demo: Server, page: Page, tmp_path: Path
) -> None:
    log_in(page, demo, "viewer")
    sidebar = page.get_by_test_id("stSidebarNav")
    expect(sidebar.get_by_role("link", name="Trends", exact=True)).to_be_visible()
    for hidden in ("Training", "Administration", "Inspect", "Review", "Models"):
        expect(sidebar.get_by_role("link", name=hidden, exact=True)).to_have_count(0)
    nav(page, "Trends", "Trends")
    page.get_by_label("Period").click()
    page.get_by_role("option", name="30d").click()
    expect(page).to_have_url(re.compile(r"[?&]period=30d"))
    expect(page.get_by_text("Forecast, not a measurement")).to_be_visible()
    shot(page, "trends", height=2600)

    page.get_by_role("button", name="Prepare CSV").click()
    with page.expect_download() as csv_info:
        page.get_by_role("button", name="Download CSV").click()
    csv_path = tmp_path / "trend.csv"
    csv_info.value.save_as(csv_path)
    assert csv_path.read_text().count("\n") > 20
    page.get_by_role("button", name="Prepare PDF report").click()
    with page.expect_download() as pdf_info:
        page.get_by_role("button", name="Download PDF").click()
    pdf = tmp_path / "report.pdf"
    pdf_info.value.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF-")
    pdftoppm = shutil.which("pdftoppm")
    assert pdftoppm, ".ci/run installs poppler-utils"
    subprocess.run([pdftoppm, "-r", "60", "-png", "-f", "1", "-l", "1", "-singlefile", str(pdf),
                    str(SHOTS / "report_page1")], check=True, timeout=60)  # fmt: skip

    for path, heading in (("/training", "Training"), ("/admin", "Administration")):
        page.goto(f"{demo.url}{path}")
        expect(page.get_by_role("dialog", name="Page not found")).to_be_visible()
        expect(sidebar.get_by_role("link", name="Trends", exact=True)).to_be_visible()
        expect(page.get_by_role("heading", name=heading)).to_have_count(0)
    session_survives_then_logout(page, demo, "/trends?period=90d", "Trends")
