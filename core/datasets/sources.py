"""What a dataset source holds: the class folders and files of a folder or a checked zip.

Listing only; nothing is read or decoded here (core.datasets.importer does that). Hidden files,
OS/archiver artefacts and links are skipped, and a file outside every class folder has no label.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from core.datasets.archives import is_ignored, zip_parts


@dataclass(frozen=True)
class Candidate:
    """A file found in the source: its class and where to read it from."""

    rel: str  # path relative to the class root, posix separators
    cls: str
    ref: str  # folder: absolute path; zip: entry name


@dataclass(frozen=True)
class ScannedImage:
    """A validated image, already copied into the temp snapshot."""

    rel: str
    cls: str
    sha: str
    fmt: str
    width: int
    height: int
    mode: str
    gray: bool


@dataclass(frozen=True)
class Listing:
    """The files of a source by class, before any of them is read."""

    found: list[Candidate]
    classes: set[str]  # every class folder, including empty ones
    stray: int  # files outside any class folder


def scan_folder(root: Path, unreadable: list[tuple[str, str]]) -> Listing:
    """Walk a folder source (links are reported in unreadable, never followed)."""
    classes: set[str] = set()
    found: list[Candidate] = []
    stray = 0
    for top in sorted(root.iterdir(), key=lambda p: p.name):
        if is_ignored(top.name):
            continue
        if top.is_symlink():
            unreadable.append((top.name, "symbolic link (not followed)"))
            continue
        if not top.is_dir():
            stray += 1
            continue
        classes.add(top.name)
        for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not is_ignored(d))
            base = Path(dirpath)
            for fname in sorted(filenames):
                if is_ignored(fname):
                    continue
                path = base / fname
                rel = path.relative_to(root).as_posix()
                if path.is_symlink() or not path.is_file():
                    unreadable.append((rel, "not a regular file (links are not followed)"))
                    continue
                found.append(Candidate(rel=rel, cls=top.name, ref=str(path)))
    return Listing(found, classes, stray)


def _unwrap(
    items: list[tuple[list[str], zipfile.ZipInfo]],
) -> list[tuple[list[str], zipfile.ZipInfo]]:
    """Drop one folder that wraps the class folders (what "Compress" in file managers makes).

    Only when it holds folders and no files of its own; otherwise it is a class.
    """
    tops = {parts[0] for parts, _ in items}
    if len(tops) == 1 and not any(len(p) == 1 and not i.is_dir() for p, i in items):
        inner = [(p[1:], i) for p, i in items if len(p) > 1]
        if inner and not any(len(p) == 1 and not i.is_dir() for p, i in inner):
            return inner
    return items


def scan_zip(zf: zipfile.ZipFile, unreadable: list[tuple[str, str]]) -> Listing:
    """List a validated archive's files (encrypted entries are reported in unreadable)."""
    items = _unwrap(
        [
            (parts, info)
            for info in zf.infolist()
            if (parts := zip_parts(info.filename)) and not any(is_ignored(p) for p in parts)
        ]
    )
    classes: set[str] = set()
    found: list[Candidate] = []
    stray = 0
    for parts, info in items:
        if info.is_dir():
            classes.add(parts[0])
            continue
        if len(parts) < 2:
            stray += 1  # a file next to the class folders has no label
            continue
        classes.add(parts[0])
        rel = "/".join(parts)
        if info.flag_bits & 0x1:
            unreadable.append((rel, "encrypted entry"))
            continue
        found.append(Candidate(rel=rel, cls=parts[0], ref=info.filename))
    return Listing(found, classes, stray)
