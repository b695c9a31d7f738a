"""In-process onnxruntime backend: the embedded default."""

from pathlib import Path

import numpy as np
import onnxruntime as ort

from imsearch.core.errors import FailedPrecondition


class OnnxRuntimeBackend:
    kind = "onnxruntime"

    def __init__(self, name: str, model_path: Path, intra_op_threads: int = 0) -> None:
        if not model_path.is_file():
            raise FailedPrecondition(
                f"model file {model_path} is missing: run `make setup` (or the export command)"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle threads sleep instead of spinning: the encoder shares its cores with decoding
        # threads (and, embedded, with the other services), which spinning would starve.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.name = name
        self._session = ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        # Names and dims come from the model, not from us. An image model has one input (the
        # pixels); a text model two (token ids, attention mask), given stacked on axis 1.
        self._input_names: list[str] = [i.name for i in self._session.get_inputs()]
        (model_output,) = self._session.get_outputs()
        self._output_name: str = model_output.name
        self.output_dim = int(model_output.shape[-1])

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if len(self._input_names) == 1:
            feeds = {self._input_names[0]: batch}
        else:
            feeds = {name: np.ascontiguousarray(batch[:, i]) for i, name in enumerate(self._input_names)}
        (features,) = self._session.run([self._output_name], feeds)
        return np.asarray(features, dtype=np.float32)

    def close(self) -> None:
        del self._session
