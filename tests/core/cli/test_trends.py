"""`defectlens rollup --rebuild` through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CLI = str(Path(sys.executable).with_name("defectlens"))


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEFECTLENS_HOME=str(home))
    env.pop("DEFECTLENS_DB_URL", None)
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def test_rollup_rebuild_reports_its_cells_and_a_bare_call_says_what_to_do(tmp_path: Path) -> None:
    done = _run(tmp_path / "home", "rollup", "--rebuild", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cells"] == 0
    bare = _run(tmp_path / "home", "rollup")
    assert bare.returncode == 1
    assert bare.stderr.strip() == "error: say what to do: defectlens rollup --rebuild"


def test_trends_json_has_the_design_keys_and_bad_times_are_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = _run(home, "trends", "--since", "2026-11-01", "--until", "2026-11-08", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert {"chart", "center", "sigma_z", "series", "pareto", "kpis"} <= out.keys()
    assert out["by"] == "shift" and out["series"] == [] and out["kpis"]["parts"] == 0
    assert out["since"] == "2026-11-01T00:00:00+00:00"  # no offset: plant-local (UTC here)
    bad = _run(home, "trends", "--since", "yesterday", "--until", "2026-11-08")
    assert bad.returncode == 1 and "--since 'yesterday' is not an ISO-8601 time" in bad.stderr
    odd = _run(home, "trends", "--since", "2026-11-01", "--until", "2026-11-08", "--by", "year")
    assert odd.returncode == 1 and "bucket must be one of hour, shift, day, week" in odd.stderr


def test_report_writes_a_csv_and_a_pdf_and_refuses_other_formats(tmp_path: Path) -> None:
    home, out = tmp_path / "home", tmp_path / "r.csv"
    done = _run(home, "report", "--since", "2026-11-01", "--until", "2026-11-02", "--out",
                str(out), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.read_text().splitlines()[0].startswith("id,captured_at,line,station,product")
    assert json.loads(done.stdout)["bytes"] == out.stat().st_size
    pdf = _run(home, "report", "--since", "2026-11-01", "--until", "2026-11-02", "--out",
               str(tmp_path / "r.pdf"), "--format", "pdf", "--shift", "06:00")  # fmt: skip
    assert pdf.returncode == 0, pdf.stderr
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF-")
    odd = _run(home, "report", "--since", "2026-11-01", "--until", "2026-11-02", "--out",
               str(tmp_path / "r.xlsx"), "--format", "xlsx")  # fmt: skip
    assert odd.returncode == 1 and "--format must be csv or pdf, not 'xlsx'" in odd.stderr
    shift = _run(home, "report", "--since", "2026-11-01", "--until", "2026-11-02", "--out",
                 str(tmp_path / "s.pdf"), "--format", "pdf", "--shift", "07:00")  # fmt: skip
    assert shift.returncode == 1 and "shift must be the start of a shift" in shift.stderr
    assert not (tmp_path / "r.xlsx").exists() and not (tmp_path / "s.pdf").exists()
    assert not list(tmp_path.glob(".*.part"))  # no half file left behind
