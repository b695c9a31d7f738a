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
