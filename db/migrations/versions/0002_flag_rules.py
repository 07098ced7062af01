"""One name for the flagging rule: table thresholds -> flag_rules, inspections.threshold_id ->
flag_rule_id, every constraint renamed to the naming convention. Rows and ids are kept.

PostgreSQL renames in place (table, constraints, sequence, column). SQLite renames the table
natively, then rebuilds flag_rules and inspections (batch copy) so that the constraint names in
their CREATE TABLE text follow the convention too; later batch migrations find them by name.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


@dataclass(frozen=True)
class _Names:
    """Every name that changes, on one side of the migration."""

    table: str
    column: str  # inspections' reference to the table

    @property
    def pk(self) -> str:
        return f"pk_{self.table}"

    @property
    def uq(self) -> str:
        return f"uq_{self.table}_product_version"

    @property
    def fk_user(self) -> str:
        return f"fk_{self.table}_created_by_users"

    @property
    def fk_inspection(self) -> str:
        return f"fk_inspections_{self.column}_{self.table}"

    @property
    def sequence(self) -> str:
        return f"{self.table}_id_seq"


OLD = _Names(table="thresholds", column="threshold_id")
NEW = _Names(table="flag_rules", column="flag_rule_id")


def _rule_table(names: _Names) -> sa.Table:
    """The rule table as 0001 created it, under the given names (the batch copy's target)."""
    return sa.Table(
        names.table,
        sa.MetaData(),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("good_classes", sa.JSON(), nullable=False),
        sa.Column("min_confidence", sa.Float(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=names.fk_user),
        sa.PrimaryKeyConstraint("id", name=names.pk),
        sa.UniqueConstraint("product", "version", name=names.uq),
    )


def _rename_postgresql(old: _Names, new: _Names) -> None:
    op.rename_table(old.table, new.table)
    for before, after in ((old.pk, new.pk), (old.uq, new.uq), (old.fk_user, new.fk_user)):
        op.execute(f"ALTER TABLE {new.table} RENAME CONSTRAINT {before} TO {after}")
    op.execute(f"ALTER SEQUENCE {old.sequence} RENAME TO {new.sequence}")
    op.alter_column("inspections", old.column, new_column_name=new.column)
    op.execute(
        f"ALTER TABLE inspections RENAME CONSTRAINT {old.fk_inspection} TO {new.fk_inspection}"
    )


def _rename_sqlite(old: _Names, new: _Names) -> None:
    # Since SQLite 3.26 a table rename also rewrites the foreign keys that point at it.
    op.rename_table(old.table, new.table)
    with op.batch_alter_table(new.table, recreate="always", copy_from=_rule_table(new)):
        pass
    with op.batch_alter_table("inspections", recreate="always") as batch_op:
        batch_op.drop_constraint(old.fk_inspection, type_="foreignkey")
        batch_op.alter_column(old.column, new_column_name=new.column)
        # Within a batch a renamed column keeps its old key; the DDL uses the new name.
        batch_op.create_foreign_key(new.fk_inspection, new.table, [old.column], ["id"])


def _rename(old: _Names, new: _Names) -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rename_sqlite(old, new)
    else:
        _rename_postgresql(old, new)


def upgrade() -> None:
    """thresholds -> flag_rules, threshold_id -> flag_rule_id."""
    _rename(OLD, NEW)


def downgrade() -> None:
    """flag_rules -> thresholds, flag_rule_id -> threshold_id."""
    _rename(NEW, OLD)
