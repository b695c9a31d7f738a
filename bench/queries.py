"""Query and gallery images for the service benchmarks: Caltech-101 when present, else synthetic."""

import random
from pathlib import Path

from bench.embeddings import DATA
from lab.datasets import labelled_images
from lab.synthetic import synthetic_image


def gallery_and_queries(
    gallery_size: int, query_count: int, seed: int = 0
) -> tuple[list[tuple[str, bytes]], list[bytes], str]:
    """(gallery (id, bytes), held-out query bytes, where they came from)."""
    root = DATA / "caltech101"
    if root.is_dir():
        files = [
            (image_id, path)
            for image_id, path, label in labelled_images([root])
            if label != "BACKGROUND_Google"
        ]
        random.Random(seed).shuffle(files)
        gallery = [(image_id, Path(path).read_bytes()) for image_id, path in files[:gallery_size]]
        queries = [Path(path).read_bytes() for _, path in files[gallery_size : gallery_size + query_count]]
        return (
            gallery,
            queries,
            f"Caltech-101: {len(gallery)} gallery images, {len(queries)} held-out queries",
        )
    gallery = [(f"synthetic{i}", synthetic_image(i)) for i in range(gallery_size)]
    queries = [synthetic_image(10_000 + i) for i in range(query_count)]
    return (
        gallery,
        queries,
        f"synthetic noise images (no ../shared/data): {gallery_size} gallery, {query_count} queries",
    )
