"""The one thing the encoder needs from a runtime: a batch of preprocessed pixels in, features out."""

from typing import Protocol

import numpy as np


class InferenceBackend(Protocol):
    """A loaded model. `infer` is the only step that touches the runtime."""

    name: str
    kind: str  # "onnxruntime", "triton"
    output_dim: int

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """(n, ...) float32 inputs -> (n, output_dim) float32 features."""
        ...

    def close(self) -> None: ...
