"""The hourly rollup of inspections that the trend queries read (db/queries/rollups.py).

Created empty: ``core.setup.migrate`` rebuilds it from the inspections and reviews when it is
empty and there are inspections (a database from before this revision), using the current
code, so the migration holds no copy of the row-to-cell rules.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rollups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("line", sa.String(length=100), nullable=False),
        sa.Column("station", sa.String(length=100), nullable=False),
        sa.Column("product", sa.String(length=100), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("class_name", sa.String(length=100), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("defect", sa.Boolean(), nullable=False),
        sa.Column("reviewed", sa.Boolean(), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("corrections", sa.Integer(), nullable=False),
        sa.Column("unsure", sa.Integer(), nullable=False),
        sa.Column("confidence_sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollups")),
        sa.UniqueConstraint(
            "hour",
            "line",
            "station",
            "product",
            "model_id",
            "class_name",
            "flagged",
            "defect",
            "reviewed",
            name=op.f("uq_rollups_cell"),
        ),  # fmt: skip
    )
    op.create_index("ix_rollups_hour", "rollups", ["hour"])


def downgrade() -> None:
    op.drop_index("ix_rollups_hour", table_name="rollups")
    op.drop_table("rollups")
