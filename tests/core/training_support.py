"""A duck-typed dataset snapshot for tests that call fit without a database."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    """One manifest entry: a file under the snapshot, its class and split."""

    file: str
    cls: str
    split: str


@dataclass
class Snapshot:
    """Stand-in for core.datasets DatasetSnapshot (fit reads only these fields)."""

    path: Path
    class_names: list[str]
    entries: list[Entry] = field(default_factory=list)
    grayscale: bool = True
