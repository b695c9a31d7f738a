"""100,000 vectors of the default model's dimension for the index benchmarks.

Real embeddings exist for only 11,944 images (Caltech-101 + cosplay, see bench/embeddings.py),
so the rest are made from them: each new vector mixes two real embeddings of the same class,
v = normalise(a + t * (b - a)) with t ~ U(0, 0.5), plus Gaussian noise of 0.2x the average
distance between same-class embeddings. Queries are 500 real embeddings held out of all of it
(no made vector uses them), so recall is measured on real queries against realistic clusters.
"""

from dataclasses import dataclass

import numpy as np

from bench.embeddings import cached


@dataclass
class AnnDataset:
    gallery: np.ndarray  # (n, dim) float32, unit length
    queries: np.ndarray  # (q, dim) float32, unit length
    real_in_gallery: int
    description: str


def normalise(vectors: np.ndarray) -> np.ndarray:
    normed: np.ndarray = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    return normed


def build(size: int = 100_000, queries: int = 500, seed: int = 0) -> AnnDataset:
    parts = [cached("caltech101"), cached("cosplay")]
    vectors = np.concatenate([v for v, _ in parts])
    labels = np.concatenate([np.char.add(f"{i}:", lab.astype(str)) for i, (_, lab) in enumerate(parts)])
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(vectors))
    query_rows, real_rows = order[:queries], order[queries:]
    real_rows = real_rows[:size]  # small runs (smoke tests of the benchmark) use real vectors only
    real, real_labels = vectors[real_rows], labels[real_rows]
    by_class: dict[str, np.ndarray] = {}
    for label in np.unique(real_labels):
        by_class[str(label)] = np.flatnonzero(real_labels == label)
    made = size - len(real)
    first = rng.integers(0, len(real), made)
    second = np.array([rng.choice(by_class[str(real_labels[i])]) for i in first], dtype=np.int64)
    pairs = rng.integers(0, len(real), 2000)
    partners = np.array([rng.choice(by_class[str(real_labels[i])]) for i in pairs], dtype=np.int64)
    spread = float(np.mean(np.linalg.norm(real[pairs] - real[partners], axis=1)))
    t = rng.uniform(0, 0.5, (made, 1)).astype(np.float32)
    noise = rng.standard_normal((made, vectors.shape[1])).astype(np.float32)
    noise *= 0.2 * spread / np.sqrt(vectors.shape[1])
    mixed = real[first] + t * (real[second] - real[first]) + noise
    gallery = normalise(np.concatenate([real, mixed]))
    return AnnDataset(
        gallery=gallery[rng.permutation(len(gallery))],
        queries=normalise(vectors[query_rows]),
        real_in_gallery=len(real),
        description=(
            f"{size:,} vectors of dim {vectors.shape[1]}: {len(real):,} real EfficientNet-Lite0 embeddings "
            f"(Caltech-101 + cosplay) and {made:,} same-class mixtures of them with noise; "
            f"{queries} held-out real embeddings as queries"
        ),
    )
