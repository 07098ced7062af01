"""Four ingest processes and the app's reviews on one database: exact counts, nothing locked."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.db.ingest_race import PROCESSES, run_race

IMAGES = 25


def _check(result) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_codes == [0] * PROCESSES, "\n".join(result.outputs)
    assert result.locked_messages() == []
    assert result.app_errors == []
    assert result.per_line == {f"L{p}": IMAGES for p in range(PROCESSES)}
    # Every part stored was reviewed once by the app while the ingests ran, and only once.
    assert result.reviews == result.reviews_saved == PROCESSES * IMAGES


@pytest.mark.slow
def test_four_ingests_and_the_app_write_one_sqlite_file(tmp_path: Path) -> None:
    _check(run_race(tmp_path / "home", None, IMAGES))


@pytest.mark.slow
@pytest.mark.postgres
def test_four_ingests_and_the_app_write_one_postgresql_database(
    tmp_path: Path, fresh_pg_url: str
) -> None:
    _check(run_race(tmp_path / "home", fresh_pg_url, IMAGES))
