"""Every hostile zip of the corpus, imported as a dataset: a snapshot or a DatasetError naming
the archive, never another exception (issue 12: the dataset importer reads zips too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import DatasetError
from tests.core.vision.hostile_uploads import archives

ZIPS = [c for c in archives() if c.data[:2] == b"PK"]


def test_the_corpus_has_damaged_zips() -> None:
    assert len(ZIPS) >= 30


@pytest.mark.parametrize("case", ZIPS, ids=[c.label for c in ZIPS])
def test_a_hostile_zip_imports_or_is_refused_with_its_name(case, settings, tmp_path: Path) -> None:
    from core.datasets import importer

    settings.ensure_dirs()
    path = tmp_path / f"{case.label}.zip"
    path.write_bytes(case.data)
    try:
        importer.import_dataset(path, case.label, settings)
    except DatasetError as e:
        assert str(e).startswith(f"{path.name}:") or path.name in str(e) or "class" in str(e), e
