"""Caltech-101 end to end: index a few classes through the gateway, query with held-out images.

Needs ../shared/data/caltech101 (skipped with a reason when absent).
"""

import random

import numpy as np
import pytest

from cli.suite import Suite
from imsearch.client import SearchClient
from tests.conftest import data_dir_or_skip
from tests.helpers import caltech_root

CLASSES = 10
GALLERY_PER_CLASS = 15
QUERIES_PER_CLASS = 3


def test_held_out_queries_find_their_own_class(suite: Suite) -> None:
    root = data_dir_or_skip(caltech_root())
    names = sorted(p.name for p in root.iterdir() if p.name not in {"BACKGROUND_Google", "Faces_easy"})
    rng = random.Random(0)
    gallery, queries = [], []
    for name in rng.sample(names, CLASSES):
        files = sorted((root / name).iterdir())
        rng.shuffle(files)
        gallery += [(f"{name}/{f.name}", f.read_bytes(), {"label": name}) for f in files[:GALLERY_PER_CLASS]]
        queries += [
            (name, f.read_bytes()) for f in files[GALLERY_PER_CLASS : GALLERY_PER_CLASS + QUERIES_PER_CLASS]
        ]
    client = SearchClient(suite.address)
    assert client.add_images(gallery) == len(gallery)
    precision: dict[str, list[float]] = {"hnsw": [], "lsh": [], "exact": []}
    top1 = []
    for label, image in queries:
        for index, values in precision.items():
            results = client.search(image, top_k=5, index=index).results
            values.append(np.mean([r.metadata["label"] == label for r in results]))
            if index == "hnsw":
                top1.append(results[0].metadata["label"] == label)
    p5 = {index: float(np.mean(v)) for index, v in precision.items()}
    print(
        f"\nCaltech-101, {CLASSES} classes, {len(queries)} held-out queries: precision@5 {p5}, top-1 {np.mean(top1):.2f}"
    )
    assert p5["exact"] >= 0.85
    assert p5["hnsw"] == pytest.approx(p5["exact"], abs=0.02)
    assert p5["lsh"] == pytest.approx(p5["exact"], abs=0.02)
    assert np.mean(top1) >= 0.9
