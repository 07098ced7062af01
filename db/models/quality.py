"""What is inspected: images, flagging rules, inspections and their hourly rollup, frozen
SPC baselines, annotations and reviews."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base, utcnow


class Image(Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    stored_path: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FlagRule(Base):
    """One version of a product's flagging rule; rows are never updated, only added."""

    __tablename__ = "flag_rules"
    __table_args__ = (UniqueConstraint("product", "version", name="uq_flag_rules_product_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    good_classes: Mapped[list[Any]]
    min_confidence: Mapped[float] = mapped_column(Float)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Inspection(Base):
    __tablename__ = "inspections"
    __table_args__ = (
        # Trend pages filter by time range, then by line or product.
        Index("ix_inspections_captured_at", "captured_at"),
        Index("ix_inspections_line_captured_at", "line", "captured_at"),
        Index("ix_inspections_product_captured_at", "product", "captured_at"),
        Index("ix_inspections_flagged_captured_at", "flagged", "captured_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id"))
    source_name: Mapped[str | None] = mapped_column(Text)
    captured_at: Mapped[datetime] = mapped_column(default=utcnow)
    line: Mapped[str | None] = mapped_column(String(100))
    station: Mapped[str | None] = mapped_column(String(100))
    product: Mapped[str | None] = mapped_column(String(100))
    lot: Mapped[str | None] = mapped_column(String(100))
    serial: Mapped[str | None] = mapped_column(String(100))
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"))
    predicted_class: Mapped[str] = mapped_column(String(100))
    confidence: Mapped[float] = mapped_column(Float)
    probabilities: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_defect: Mapped[bool] = mapped_column(Boolean, default=False)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    flag_reason: Mapped[str | None] = mapped_column(Text)
    flag_rule_id: Mapped[int | None] = mapped_column(ForeignKey("flag_rules.id"))
    heatmap_path: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float | None]
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    review_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Rollup(Base):
    """Hourly counts of inspections per line, station, product, model, class and state.

    Kept in the transaction of every inspection and review (db/queries/rollups.py), so the trend
    queries read it instead of the raw rows. Unknown line/station/product are '' and no model
    is 0 (NULL would make every such row its own key).
    """

    __tablename__ = "rollups"
    __table_args__ = (
        UniqueConstraint(
            "hour",
            "line",
            "station",
            "product",
            "model_id",
            "class_name",
            "flagged",
            "defect",
            "reviewed",
            name="uq_rollups_cell",
        ),  # fmt: skip
        Index("ix_rollups_hour", "hour"),
        # The filters' value lists (DISTINCT over one column) read these instead of the table.
        Index("ix_rollups_line", "line"),
        Index("ix_rollups_station", "station"),
        Index("ix_rollups_product", "product"),
        Index("ix_rollups_model_id", "model_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    hour: Mapped[datetime] = mapped_column()  # start of the hour, UTC
    line: Mapped[str] = mapped_column(String(100), default="")
    station: Mapped[str] = mapped_column(String(100), default="")
    product: Mapped[str] = mapped_column(String(100), default="")
    model_id: Mapped[int] = mapped_column(Integer, default=0)
    class_name: Mapped[str] = mapped_column(String(100))
    flagged: Mapped[bool] = mapped_column(Boolean)
    defect: Mapped[bool] = mapped_column(Boolean)
    reviewed: Mapped[bool] = mapped_column(Boolean)
    parts: Mapped[int] = mapped_column(Integer, default=0)
    corrections: Mapped[int] = mapped_column(Integer, default=0)
    unsure: Mapped[int] = mapped_column(Integer, default=0)
    confidence_sum: Mapped[float] = mapped_column(Float, default=0.0)


class SpcBaseline(Base):
    """Frozen control limits for one view (filter and bucket): the phase I window an engineer
    chose, the points left out with their reasons, and the centre and σ_z it produced.

    Rows are never edited: a new freeze or a withdrawal sets ``retired_at`` on the old row, so
    limits never move silently and every set of limits ever used stays on record.
    """

    __tablename__ = "spc_baselines"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The view it belongs to; NULL means "any" (as TrendFilter's None), '' parts without one.
    line: Mapped[str | None] = mapped_column(String(100))
    station: Mapped[str | None] = mapped_column(String(100))
    product: Mapped[str | None] = mapped_column(String(100))
    model_id: Mapped[int | None] = mapped_column(Integer)
    shift: Mapped[str | None] = mapped_column(String(5))  # a shift's start, "06:00"
    bucket: Mapped[str] = mapped_column(String(16))
    window_start: Mapped[datetime] = mapped_column()
    window_end: Mapped[datetime] = mapped_column()
    excluded: Mapped[list[Any]] = mapped_column(default=list)  # [{"start": UTC ISO, "reason"}]
    chart: Mapped[str] = mapped_column(String(16))
    centre: Mapped[float] = mapped_column(Float)
    sigma_z: Mapped[float] = mapped_column(Float)
    buckets: Mapped[int] = mapped_column(Integer)
    parts: Mapped[int] = mapped_column(Integer)
    defects: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(String(500), default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    retired_at: Mapped[datetime | None]
    retired_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Annotation(Base):
    """A process change an engineer noted on the timeline ("new supplier lot", "tool change")."""

    __tablename__ = "annotations"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    line: Mapped[str | None] = mapped_column(String(100))  # NULL: every line
    text: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Review(Base):
    """One reviewer decision; history is kept, the newest row per inspection is current."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    true_class: Mapped[str] = mapped_column(String(100))
    disposition: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
