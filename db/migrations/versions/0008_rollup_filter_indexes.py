"""Indexes for the Trends filters' value lists: DISTINCT line, station, product and model over
the rollup read an index each instead of the whole table (bench/trends.py: 10M inspections,
220 ms to about 50 ms).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("line", "station", "product", "model_id")


def upgrade() -> None:
    for column in COLUMNS:
        op.create_index(f"ix_rollups_{column}", "rollups", [column])


def downgrade() -> None:
    for column in COLUMNS:
        op.drop_index(f"ix_rollups_{column}", table_name="rollups")
