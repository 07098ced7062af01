"""Regenerate the README screenshots: a real server with a small casting model, driven by
Debian's Chromium. Needs ../shared/datasets/casting (not part of the repository).

    .venv/bin/python docs/make_screenshots.py
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

REPO = Path(__file__).resolve().parents[1]
CASTING = REPO.parent / "shared" / "datasets" / "casting"
OUT = REPO / "docs" / "screenshots"
CLI = str(Path(sys.executable).with_name("defectlens"))
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def cli(env: dict[str, str], *args: str) -> dict:  # type: ignore[type-arg]
    out = subprocess.run(
        [CLI, *args, "--json"], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="defectlens-shots-"))
    env = dict(os.environ, DEFECTLENS_HOME=str(home))
    env.pop("DEFECTLENS_DB_URL", None)
    admin = cli(env, "init")
    ds = cli(
        env,
        "dataset",
        "import",
        str(CASTING),
        "--name",
        "casting impellers",
        "--split-file",
        str(CASTING / "splits.csv"),
    )
    job = cli(
        env,
        "jobs",
        "submit",
        "--dataset",
        str(ds["id"]),
        "--epochs",
        "4",
        "--img-size",
        "64",
        "--device",
        "cpu",
    )
    subprocess.run([CLI, "worker", "--once", "--poll-seconds", "0.2"], env=env, check=True)
    model = cli(env, "jobs", "show", str(job["id"]))["model_id"]
    cli(env, "models", "promote", str(model))
    with (CASTING / "splits.csv").open() as f:
        test = [CASTING / r["file"] for r in csv.DictReader(f) if r["original_split"] == "test"]
    for i, line in enumerate(("Line 1", "Line 2", "Line 3")):
        cli(
            env,
            "ingest",
            *map(str, test[i * 40 : (i + 1) * 40]),
            "--line",
            line,
            "--station",
            "X-ray 2",
            "--product",
            "impeller-A",
            "--lot",
            f"L-2611-{i}",
        )

    port = 8599
    server = subprocess.Popen([CLI, "run", "--port", str(port), "--no-demo"], env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health").read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(url)
            page.screenshot(path=OUT / "login.png")
            page.get_by_label("Username").fill(admin["admin"])
            page.get_by_label("Password", exact=True).fill(admin["password"])
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("heading", name="Plant overview")).to_be_visible()
            page.wait_for_timeout(1500)
            page.screenshot(path=OUT / "overview.png")

            page.get_by_test_id("stSidebarNav").get_by_role(
                "link", name="Inspect", exact=True
            ).click()
            page.get_by_label("Line").fill("Line 1")
            page.get_by_label("Product").fill("impeller-A")
            page.locator('input[type="file"]').set_input_files([str(p) for p in test[200:206]])
            page.get_by_role("button", name="Inspect", exact=True).click()
            expect(page.get_by_role("heading", name="Results")).to_be_visible()
            page.wait_for_timeout(2500)
            page.screenshot(path=OUT / "inspect.png", full_page=True)

            for name, heading in (
                ("Review", "Review queue"),
                ("Models", "Models"),
                ("Flagging rules", "Flagging rules"),
            ):
                page.get_by_test_id("stSidebarNav").get_by_role(
                    "link", name=name, exact=True
                ).click()
                expect(page.get_by_role("heading", name=heading)).to_be_visible()
                page.wait_for_timeout(2500)
                page.screenshot(path=OUT / f"{name.lower().replace(' ', '_')}.png", full_page=True)

            page.get_by_test_id("stSidebarNav").get_by_role(
                "link", name="Training", exact=True
            ).click()
            page.get_by_role("tab", name="Jobs").click()
            page.wait_for_timeout(3000)
            page.screenshot(path=OUT / "training.png", full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
