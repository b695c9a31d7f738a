"""The evaluation protocol: which images are queries and which form the gallery.

Per class, `queries_per_class` images (chosen with `seed`) are queries and never enter the
gallery; the rest are the gallery. Classes listed in EXCLUDED are dropped: Caltech-101's
BACKGROUND_Google is clutter, not a class (the reference study drops it too), and Faces_easy
holds the same photos as Faces, which would inflate every score.
"""

import random
from dataclasses import dataclass
from pathlib import Path

from lab.datasets import labelled_images

EXCLUDED = frozenset({"BACKGROUND_Google", "Faces_easy"})


@dataclass(frozen=True)
class Item:
    path: Path
    label: str


@dataclass(frozen=True)
class Split:
    gallery: list[Item]
    queries: list[Item]

    def relevant_in_gallery(self, label: str) -> int:
        return sum(item.label == label for item in self.gallery)


def split(dataset: Path, queries_per_class: int, seed: int = 0, classes: int | None = None) -> Split:
    by_class: dict[str, list[Path]] = {}
    for _, path, label in labelled_images([dataset]):
        if label not in EXCLUDED:
            by_class.setdefault(label, []).append(path)
    rng = random.Random(seed)
    labels = sorted(by_class)
    if classes is not None:
        labels = sorted(rng.sample(labels, classes))
    gallery, queries = [], []
    for label in labels:
        paths = sorted(by_class[label])
        rng.shuffle(paths)
        if len(paths) <= queries_per_class:
            raise ValueError(
                f"class {label!r} has {len(paths)} images: too few for {queries_per_class} queries"
            )
        queries += [Item(p, label) for p in paths[:queries_per_class]]
        gallery += [Item(p, label) for p in paths[queries_per_class:]]
    return Split(gallery, queries)
