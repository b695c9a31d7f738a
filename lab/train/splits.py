"""Training data for a model evaluated on a protocol split: the split's gallery, never its queries.

A slice of the gallery (per class, seeded) is held out for validation (the curves and the
choice of epoch); the rest is trained on. The evaluation's queries are not in either.
"""

import random
from dataclasses import dataclass

from lab.eval.protocol import Item, Split


@dataclass(frozen=True)
class TrainingSplit:
    train: list[Item]
    validation: list[Item]
    classes: list[str]

    def label_ids(self, items: list[Item]) -> list[int]:
        index = {name: i for i, name in enumerate(self.classes)}
        return [index[item.label] for item in items]


def training_split(data: Split, validation_fraction: float = 0.1, seed: int = 0) -> TrainingSplit:
    by_class: dict[str, list[Item]] = {}
    for item in data.gallery:
        by_class.setdefault(item.label, []).append(item)
    rng = random.Random(seed)
    train, validation = [], []
    for label in sorted(by_class):
        items = list(by_class[label])
        rng.shuffle(items)
        held = max(1, round(len(items) * validation_fraction)) if len(items) > 2 else 0
        validation += items[:held]
        train += items[held:]
    queries = {item.path for item in data.queries}
    if queries & {item.path for item in train + validation}:
        raise ValueError("the split puts a query image in the gallery: it must never be trained on")
    return TrainingSplit(train, validation, sorted(by_class))
