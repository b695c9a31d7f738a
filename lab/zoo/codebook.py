"""Learns the ORB bag-of-visual-words codebook from a folder of images.

    imsearch models fit-codebook --dataset DIR [--words 256] [--repository model_repository]

ORB descriptors of the images (preprocessed as the encoder will) are clustered with
mini-batch k-means (scikit-learn) on their bits; each centre, rounded to bits, is a visual word. Writes
`<repository>/orb_bovw/codebook.npy` and its `imsearch.json`, after which the encoder serves
`orb_bovw` like any model.
"""

import random
from pathlib import Path

import numpy as np
from sklearn.cluster import MiniBatchKMeans

from lab.datasets import labelled_images
from services.encoder.backends.classic import OrbBagOfWordsBackend
from services.encoder.images import decode_image, preprocess
from services.encoder.model_spec import SPEC_FILE, ModelSpec, Preprocessing

NAME = "orb_bovw"
CODEBOOK_FILE = "codebook.npy"
PREPROCESSING = Preprocessing(resize=320, crop_size=320, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def fit_codebook(
    dataset: Path, repository: Path, words: int = 256, max_images: int = 1000, seed: int = 0
) -> ModelSpec:
    paths = [path for _, path, _ in labelled_images([dataset])]
    return fit_codebook_on(paths, dataset.name, repository, NAME, words, max_images, seed)


def fit_codebook_on(
    paths: list[Path],
    source: str,
    repository: Path,
    name: str = NAME,
    words: int = 256,
    max_images: int = 1000,
    seed: int = 0,
) -> ModelSpec:
    """Fits on (a sample of) `paths`, e.g. an evaluation's gallery only, never its queries."""
    paths = list(paths)
    random.Random(seed).shuffle(paths)
    describer = OrbBagOfWordsBackend(NAME, np.zeros((1, 32), np.uint8))
    descriptors = []
    for path in paths[:max_images]:
        image = decode_image(path.read_bytes(), max_bytes=50_000_000, max_pixels=100_000_000)
        found = describer.describe(preprocess(image, PREPROCESSING))
        if found is not None:
            descriptors.append(found)
    bits = np.unpackbits(np.concatenate(descriptors), axis=1).astype(np.float32)
    sample = np.random.default_rng(seed).permutation(len(bits))[:50_000]
    kmeans = MiniBatchKMeans(words, random_state=seed, batch_size=4096, n_init=1, max_iter=50)
    codebook = np.packbits(kmeans.fit(bits[sample]).cluster_centers_ > 0.5, axis=1)
    spec = ModelSpec(
        name=name,
        dim=words + 1,
        preprocessing=PREPROCESSING,
        weights=f"{words} ORB words fitted on {min(len(paths), max_images)} images of {source}",
        runtime="orb_bovw",
    )
    folder = repository / name
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / CODEBOOK_FILE, codebook)
    (folder / SPEC_FILE).write_text(spec.model_dump_json(indent=2) + "\n")
    return spec
