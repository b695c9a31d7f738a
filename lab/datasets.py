"""Labelled image folders: one folder per class, as Caltech-101 and the cosplay set ship."""

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def _files_under(root: Path) -> list[Path]:
    """Every file below `root`, following symbolic links to folders (unlike Path.rglob)."""
    return sorted(Path(d) / name for d, _, names in os.walk(root, followlinks=True) for name in names)


def labelled_images(roots: Iterable[Path]) -> Iterator[tuple[str, Path, str]]:
    """(id, path, label) for every image under the roots; label = the parent folder's name.

    Ids are paths from each root's parent (`cosplay/luffy/001.jpg`), so files with the same
    name in different folders given together stay apart.
    """
    for root in roots:
        root = root.resolve()
        files = [root] if root.is_file() else _files_under(root)
        for path in files:
            if path.suffix.lower() in IMAGE_SUFFIXES:
                yield str(path.relative_to(root.parent)), path, path.parent.name
