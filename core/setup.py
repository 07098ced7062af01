"""Bring a data directory and database to a usable state: folders, migrations, first admin."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from core.auth import accounts, permissions
from core.config import Settings
from core.quality import rollup
from db import migrate as db_migrate
from db.engine import Database
from db.models import Dataset, Inspection, Model, Role

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InitResult:
    """What `defectlens init` did."""

    home: str
    db_url: str
    revision: str | None
    admin_username: str | None
    admin_password: str | None


def open_database(settings: Settings) -> Database:
    """A Database for the configured URL (does not migrate)."""
    return Database(settings.db_url)


def migrate(settings: Settings) -> None:
    """Create the data directory and bring the schema to the newest revision."""
    settings.ensure_dirs()
    db_migrate.upgrade(settings.db_url)
    db = open_database(settings)
    try:
        rollup.rebuild_if_empty(db)  # a database from before the rollup table (revision 0004)
    finally:
        db.dispose()


def initialise(settings: Settings, admin_username: str = "admin") -> InitResult:
    """Migrate and, on first start, create an admin with a random password (returned once)."""
    migrate(settings)
    db = open_database(settings)
    try:
        username: str | None = None
        password: str | None = None
        if not accounts.has_users(db):
            info, password = accounts.create_user(
                db, permissions.SYSTEM, admin_username, Role.ADMIN
            )
            username = info.username
            log.info("created first admin %s", username)
        return InitResult(
            home=str(settings.home),
            db_url=_redact(settings.db_url),
            revision=db_migrate.current_revision(db.engine),
            admin_username=username,
            admin_password=password,
        )
    finally:
        db.dispose()


def _redact(url: str) -> str:
    """The URL without its password, for printing."""
    return make_url(url).render_as_string(hide_password=True)


def is_empty(settings: Settings) -> bool:
    """Whether the plant has no data yet (no dataset, model or inspection): a first start."""
    db = open_database(settings)
    try:
        with db.read() as session:
            return not any(
                session.scalar(select(func.count()).select_from(table))
                for table in (Dataset, Model, Inspection)
            )
    finally:
        db.dispose()
