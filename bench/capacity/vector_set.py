"""The vectors the index figures are measured on: gallery, held-out queries, exact top K, recall."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.embeddings import OUT
from bench.vectors import build, normalise

DEFAULT_DIM = 1280  # efficientnet_lite0, the encoder's default model
K = 10


def point_id(i: int) -> str:
    # Not digits only: Redis keeps all-integer sets as compact intsets, which real ids are not.
    return f"img{i:09d}"


@dataclass
class Vectors:
    gallery: np.ndarray
    queries: np.ndarray
    description: str

    def half(self) -> "Vectors":
        return Vectors(self.gallery[: len(self.gallery) // 2], self.queries, self.description)

    def truth(self) -> np.ndarray:
        """Exact top K of every query (numpy brute force)."""
        top: np.ndarray = np.argsort(-(self.queries @ self.gallery.T), axis=1)[:, :K]
        return top


def make_vectors(size: int, dim: int, queries: int, kind: str) -> Vectors:
    """bench.vectors' real-embedding set when asked for (or, with `auto`, when its cache is
    there and the dimension is the default model's); random unit vectors otherwise."""
    cached = all((OUT / f"{name}.npz").is_file() for name in ("caltech101", "cosplay"))
    if kind == "real" or (kind == "auto" and cached and dim == DEFAULT_DIM):
        data = build(size, queries)
        return Vectors(data.gallery, data.queries, data.description)
    rng = np.random.default_rng(0)
    gallery = normalise(rng.standard_normal((size, dim)).astype(np.float32))
    held_out = normalise(rng.standard_normal((queries, dim)).astype(np.float32))
    why = (
        "asked for"
        if kind == "random"
        else "no embedding cache (python -m bench.embeddings) or another --dim"
    )
    return Vectors(
        gallery,
        held_out,
        f"{size:,} random unit vectors of dim {dim} and {queries} random unit queries ({why}); random "
        "vectors are a hard case for HNSW, so recall and QPS are lower than on embeddings",
    )


def recall(found: Sequence[Sequence[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t.tolist())) / K for f, t in zip(found, truth, strict=True)]))
