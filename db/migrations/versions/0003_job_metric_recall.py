"""Per-class validation recall of every epoch: job_metrics.class_recall (JSON, class -> recall).

A rare class that the model stops recognising shows in the recall of that class long before
it moves the accuracy; the Training page plots it per epoch. Existing rows keep NULL.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job_metrics") as batch:
        batch.add_column(sa.Column("class_recall", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_metrics") as batch:
        batch.drop_column("class_recall")
