"""Frozen SPC baselines and process annotations for the Trends page.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "spc_baselines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("line", sa.String(length=100), nullable=True),
        sa.Column("station", sa.String(length=100), nullable=True),
        sa.Column("product", sa.String(length=100), nullable=True),
        sa.Column("model_id", sa.Integer(), nullable=True),
        sa.Column("shift", sa.String(length=5), nullable=True),
        sa.Column("bucket", sa.String(length=16), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("excluded", sa.JSON(), nullable=False),
        sa.Column("chart", sa.String(length=16), nullable=False),
        sa.Column("centre", sa.Float(), nullable=False),
        sa.Column("sigma_z", sa.Float(), nullable=False),
        sa.Column("buckets", sa.Integer(), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("defects", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_spc_baselines_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["retired_by"], ["users.id"], name=op.f("fk_spc_baselines_retired_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spc_baselines")),
    )
    op.create_index(
        op.f("ix_spc_baselines_created_at"), "spc_baselines", ["created_at"], unique=False
    )
    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("line", sa.String(length=100), nullable=True),
        sa.Column("text", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_annotations_created_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotations")),
    )
    op.create_index(op.f("ix_annotations_at"), "annotations", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_annotations_at"), table_name="annotations")
    op.drop_table("annotations")
    op.drop_index(op.f("ix_spc_baselines_created_at"), table_name="spc_baselines")
    op.drop_table("spc_baselines")
