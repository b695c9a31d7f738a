"""Classic (hand-made) image features served through the same encoder API, in-process."""

import numpy as np


class ColorHistogramBackend:
    """Joint RGB histogram, `bins` per channel, as a Hellinger-mapped vector.

    Takes the encoder's preprocessed batch (NCHW, mean 0 / std 1, i.e. RGB in [0, 1]). The
    square root of the L1-normalised histogram makes cosine similarity the Bhattacharyya
    coefficient, the usual way to compare histograms.
    """

    kind = "builtin"

    def __init__(self, name: str, bins: int = 8) -> None:
        self.name = name
        self._bins = bins
        self.output_dim = bins**3

    def infer(self, batch: np.ndarray) -> np.ndarray:
        levels = np.clip((batch * self._bins).astype(np.int64), 0, self._bins - 1)  # (n, 3, h, w)
        codes = (levels[:, 0] * self._bins + levels[:, 1]) * self._bins + levels[:, 2]
        flat = codes.reshape(len(batch), -1)
        histograms = np.stack([np.bincount(row, minlength=self.output_dim) for row in flat]).astype(
            np.float32
        )
        histograms /= histograms.sum(axis=1, keepdims=True)
        features: np.ndarray = np.sqrt(histograms)
        return features

    def close(self) -> None:
        """Nothing to release."""


class OrbBagOfWordsBackend:
    """ORB descriptors quantised against a learned codebook of binary visual words.

    Takes the encoder's preprocessed batch (NCHW, RGB in [0, 1]). Each image becomes a histogram
    of its descriptors' nearest words (Hamming distance), square-rooted and L2-normalised like
    the colour histogram. The last dimension counts images where ORB finds no keypoint, so no
    embedding is ever all zeros.
    """

    kind = "builtin"

    def __init__(self, name: str, codebook: np.ndarray, max_features: int = 500) -> None:
        import cv2

        self.name = name
        self._words = np.unpackbits(codebook, axis=1).astype(np.float32)  # (k, 256) bits
        self._orb = cv2.ORB.create(nfeatures=max_features)
        self._cv2 = cv2
        self.output_dim = len(codebook) + 1

    def describe(self, pixels: np.ndarray) -> np.ndarray | None:
        """(3, h, w) in [0, 1] -> (m, 32) uint8 ORB descriptors, or None without keypoints."""
        grey = (np.clip(pixels.mean(axis=0), 0.0, 1.0) * 255).astype(np.uint8)
        _, descriptors = self._orb.detectAndCompute(grey, None)
        return None if descriptors is None else np.asarray(descriptors, dtype=np.uint8)

    def words(self, descriptors: np.ndarray) -> np.ndarray:
        bits = np.unpackbits(descriptors, axis=1).astype(np.float32)
        # Hamming distance = bits differing, as two matrix products.
        distance = bits @ (1.0 - self._words).T + (1.0 - bits) @ self._words.T
        nearest: np.ndarray = distance.argmin(axis=1)
        return nearest

    def infer(self, batch: np.ndarray) -> np.ndarray:
        histograms = np.zeros((len(batch), self.output_dim), dtype=np.float32)
        for row, pixels in enumerate(batch):
            descriptors = self.describe(pixels)
            if descriptors is None:
                histograms[row, -1] = 1.0
            else:
                histograms[row, : self.output_dim - 1] = np.bincount(
                    self.words(descriptors), minlength=self.output_dim - 1
                )
        features: np.ndarray = np.sqrt(histograms / histograms.sum(axis=1, keepdims=True))
        return features

    def close(self) -> None:
        """Nothing to release."""
