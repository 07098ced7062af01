"""The PDF trend report, made without a browser (fpdf2 for the pages, matplotlib for the
charts), from the same TrendReport the Trends page draws: title, period and every active
filter, KPIs, the rate chart with its limits and signals, the signal table, Pareto, drift,
forecast, annotations and markers, and the most recent flagged parts with thumbnails.

Text is set in DejaVu Sans (shipped with matplotlib), so p̄, σ and any line name print.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

from fpdf import FPDF

from core.auth.permissions import Action, CurrentUser, require
from core.config import Settings
from core.quality import inspections, spc
from core.quality.buckets import plant_zone
from core.quality.trends import TrendReport
from db.engine import Database

log = logging.getLogger(__name__)
RECENT_FLAGGED = 12
_W = 190  # printable width in mm on A4 with 10 mm margins


def trend_pdf(db: Database, settings: Settings, actor: CurrentUser, report: TrendReport) -> bytes:
    """The report's PDF bytes."""
    require(actor, Action.DOWNLOAD_REPORTS)
    tz = plant_zone(settings)
    pdf = _document()
    _title(pdf, report, settings, tz)
    _kpis(pdf, report)
    if report.chart is None:
        pdf.cell(_W, 8, "No inspections in this period and filter.", new_x="LMARGIN", new_y="NEXT")
        return bytes(pdf.output())
    charts = _charts(report, tz)
    _image(pdf, charts["rate"], "Defect rate")
    _text(pdf, _chart_words(report), size=8)
    _signals(pdf, report)
    pdf.add_page()
    if "pareto" in charts:
        _image(pdf, charts["pareto"], "Pareto of defect classes")
    _image(pdf, charts["drift"], "Drift")
    if "forecast" in charts:
        _image(pdf, charts["forecast"], "Forecast (not a measurement)")
        _text(pdf, report.forecast.reason if report.forecast else "", size=8)
    _events(pdf, report, tz)
    _recent(pdf, db, settings, actor, report, tz)
    return bytes(pdf.output())


def _document() -> FPDF:
    # matplotlib is imported for its font file only here; the charts import it lazily too.
    import matplotlib

    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    pdf = FPDF(format="A4")
    pdf.set_margins(10, 10, 10)
    pdf.set_auto_page_break(True, margin=12)
    pdf.add_font("DejaVu", "", str(fonts / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(fonts / "DejaVuSans-Bold.ttf"))
    pdf.set_font("DejaVu", size=10)
    pdf.add_page()
    return pdf


def _text(pdf: FPDF, text: str, size: int = 10, bold: bool = False) -> None:
    pdf.set_font("DejaVu", "B" if bold else "", size)
    pdf.multi_cell(_W, size * 0.5, text, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 10)


def _title(pdf: FPDF, report: TrendReport, settings: Settings, tz: ZoneInfo) -> None:
    _text(pdf, "DefectLens trend report", size=18, bold=True)
    w = report.where
    filters = [f"{name}: {value}" for name, value in (
        ("line", w.line), ("station", w.station), ("product", w.product),
        ("model", None if w.model_id is None else f"#{w.model_id}"), ("shift", w.shift),
    ) if value is not None]  # fmt: skip
    _text(pdf, f"{report.since.astimezone(tz):%Y-%m-%d %H:%M} to "
               f"{report.until.astimezone(tz):%Y-%m-%d %H:%M} ({settings.timezone}), "
               f"by {report.by}")  # fmt: skip
    _text(pdf, "Filters: " + (", ".join(filters) if filters else "none (the whole plant)"))
    _text(pdf, "A part counts as defective by its reviewed class once reviewed, else by the "
               "model's.", size=8)  # fmt: skip
    pdf.ln(2)


def _share(v: float | None) -> str:
    return "–" if v is None else f"{v:.1%}"


def _kpis(pdf: FPDF, report: TrendReport) -> None:
    k, p = report.kpis, report.previous_kpis
    rows = [
        ("Parts inspected", f"{k['parts']:,}", f"{p.get('parts', 0):,}"),
        ("Defect rate", _share(k["defect_rate"]), _share(p.get("defect_rate"))),
        ("Flagged", _share(k["flagged_share"]), _share(p.get("flagged_share"))),
        ("Reviewed", _share(k["reviewed_share"]), _share(p.get("reviewed_share"))),
        ("Corrections", f"{k['corrections']:,}", f"{p.get('corrections', 0):,}"),
        ("Model-inspector agreement", _share(k["agreement"]), _share(p.get("agreement"))),
    ]
    _table(pdf, ("KPI", "This period", "Previous period"), rows, (90, 50, 50))


def _table(
    pdf: FPDF, head: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[int]
) -> None:
    pdf.set_font("DejaVu", "B", 9)
    for text, width in zip(head, widths, strict=True):
        pdf.cell(width, 6, text, border=1)
    pdf.ln()
    pdf.set_font("DejaVu", "", 9)
    for row in rows:
        for text, width in zip(row, widths, strict=True):
            pdf.cell(width, 6, _fit(pdf, str(text), width), border=1)
        pdf.ln()
    pdf.ln(2)


def _fit(pdf: FPDF, text: str, width: float) -> str:
    """The text cut with an ellipsis to fit a cell (long names must not run over)."""
    if pdf.get_string_width(text) <= width - 2:
        return text
    while text and pdf.get_string_width(text + "…") > width - 2:
        text = text[:-1]
    return text + "…"


def _image(pdf: FPDF, png: bytes, title: str) -> None:
    _text(pdf, title, size=11, bold=True)
    pdf.image(io.BytesIO(png), w=_W)
    pdf.ln(1)


def _chart_words(report: TrendReport) -> str:
    name = (
        "Laney p′ chart" if report.chart and report.chart.chart == spc.LANEY_P_CHART else "p-chart"
    )
    base = "" if report.baseline else " Baseline: the displayed period (no limits frozen)."
    return f"{name}: {report.choice.reason if report.choice else ''}{base}"


def _signals(pdf: FPDF, report: TrendReport) -> None:
    assert report.chart is not None
    hits = [(b, p, s) for b, p, s in zip(report.buckets, report.chart.points, report.signals,
                                         strict=True) if s]  # fmt: skip
    if not hits:
        _text(pdf, "No control-chart signals in this period.")
        return
    _text(pdf, "Signals", size=11, bold=True)
    rows = [(f"{b.start:%Y-%m-%d %H:%M}", _share(p.rate), ", ".join(f"rule {r}" for r in s))
            for b, p, s in hits]  # fmt: skip
    _table(pdf, ("Bucket", "Rate", "Western Electric rules"), rows, (45, 30, 115))
    seen = sorted({r for _, _, s in hits for r in s})
    _text(pdf, "\n".join(spc.RULE_DESCRIPTIONS[r] for r in seen), size=8)


def _events(pdf: FPDF, report: TrendReport, tz: ZoneInfo) -> None:
    _text(pdf, "Annotations and changes", size=11, bold=True)
    if not report.events:
        _text(pdf, "None in this period.")
        return
    kinds = {"annotation": "annotation", "model": "model", "flag_rule": "flagging rule"}
    rows = [(f"{e.at.astimezone(tz):%Y-%m-%d %H:%M}", kinds.get(e.kind, e.kind), e.line or "all",
             e.label) for e in report.events]  # fmt: skip
    _table(pdf, ("When", "Kind", "Line", "What"), rows, (32, 25, 25, 108))


def _recent(
    pdf: FPDF,
    db: Database,
    settings: Settings,
    actor: CurrentUser,
    report: TrendReport,
    tz: ZoneInfo,
) -> None:
    w = report.where
    recent = inspections.list_inspections(
        db, actor, limit=RECENT_FLAGGED, flagged_only=True, line=w.line, product=w.product,
        since=report.since, until=report.until,
    )  # fmt: skip
    _text(pdf, "Most recent flagged parts", size=11, bold=True)
    if not recent:
        _text(pdf, "None in this period.")
        return
    for r in recent:
        if pdf.will_page_break(20):
            pdf.add_page()
        y = pdf.get_y()
        try:
            pdf.image(
                io.BytesIO(inspections.thumbnail_png(settings, actor, r, size=96)), x=10, y=y, h=18
            )
        except Exception as e:  # a missing or unreadable image file must not stop the report
            log.warning("no thumbnail for inspection %s: %s", r.id, e)
        pdf.set_xy(32, y)
        pdf.set_font("DejaVu", "", 9)
        reviewed = f", reviewed as {r.true_class}" if r.true_class else ""
        reason = f" · {r.flag_reason}" if r.flag_reason else ""
        pdf.multi_cell(
            _W - 22, 4.5,
            f"{r.captured_at.astimezone(tz):%Y-%m-%d %H:%M} · line {r.line or '–'} · station "
            f"{r.station or '–'} · {r.product or '–'} · serial {r.serial or '–'}\n"
            f"{r.predicted_class} at {r.confidence:.0%}{reviewed}{reason}",
            new_x="LMARGIN", new_y="NEXT",
        )  # fmt: skip
        pdf.set_y(max(pdf.get_y(), y + 20))


def _charts(report: TrendReport, tz: ZoneInfo) -> dict[str, bytes]:
    """The report's charts as PNGs."""
    # Deferred: matplotlib costs about half a second to import and only the PDF needs it.
    import matplotlib

    matplotlib.use("Agg")
    from core.quality import pdf_charts

    out = {"rate": pdf_charts.rate(report, tz), "drift": pdf_charts.drift(report, tz)}
    if report.pareto.rows:
        out["pareto"] = pdf_charts.pareto(report)
    if report.forecast is not None:
        out["forecast"] = pdf_charts.forecast(report, tz)
    return out
