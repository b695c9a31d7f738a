"""Real embeddings of the evaluation images, cached under bench/out/ for the index benchmarks.

    python -m bench.embeddings            # encodes ../shared/data/{caltech101,cosplay}

Runs the service's own encoder engine in-process (same decode, preprocessing and model).
"""

import argparse
import time
from pathlib import Path

import numpy as np

from imsearch.core.metrics import ServiceMetrics
from lab.datasets import labelled_images
from services.encoder.engine import Encoder
from services.encoder.settings import EncoderSettings

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
OUT = Path(__file__).resolve().parent / "out"


def embed_folder(root: Path, batch: int = 32) -> tuple[np.ndarray, list[str]]:
    encoder = Encoder(EncoderSettings(metrics_port=-1), ServiceMetrics("bench"))
    paths = [(path, label) for _, path, label in labelled_images([root])]
    vectors, labels = [], []
    start = time.perf_counter()
    for i in range(0, len(paths), batch):
        chunk = paths[i : i + batch]
        _, emb = encoder.encode("", [p.read_bytes() for p, _ in chunk])
        vectors.append(emb)
        labels += [label for _, label in chunk]
        if (i // batch) % 20 == 0:
            print(
                f"{root.name}: {i + len(chunk)}/{len(paths)} in {time.perf_counter() - start:.0f}s",
                flush=True,
            )
    encoder.close()
    return np.concatenate(vectors), labels


def cached(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, labels) of a data set, encoding it on first use."""
    path = OUT / f"{name}.npz"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        vectors, labels = embed_folder(DATA / name)
        np.savez(path, vectors=vectors, labels=np.asarray(labels))
    data = np.load(path)
    return data["vectors"], data["labels"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", default="caltech101,cosplay")
    for name in parser.parse_args().sets.split(","):
        vectors, _ = cached(name)
        print(f"{name}: {vectors.shape}")


if __name__ == "__main__":
    main()
