"""Triton backend: the encoder's `infer` step runs on a Triton server over tritonclient.grpc.

Tensor names, dims and the largest batch come from the server's model metadata and config,
never from us. Triton errors become our status codes; UNAVAILABLE is retried with backoff,
which is safe because inference has no side effects.
"""

import logging
import time

import numpy as np
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from imsearch.core.errors import (
    DeadlineExceeded,
    ImsearchError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)

log = logging.getLogger(__name__)

_STATUS_ERRORS: dict[str, type[ImsearchError]] = {
    "StatusCode.NOT_FOUND": NotFound,
    "StatusCode.INVALID_ARGUMENT": InvalidArgument,
    "StatusCode.RESOURCE_EXHAUSTED": ResourceExhausted,
    "StatusCode.UNAVAILABLE": Unavailable,  # the only one retried: the server may come back
    "StatusCode.DEADLINE_EXCEEDED": DeadlineExceeded,
}


def to_domain_error(exc: InferenceServerException, model: str) -> ImsearchError:
    """Triton's status as ours. Anything unlisted (INTERNAL, UNKNOWN: a model that failed)
    stays INTERNAL and is not retried: running a broken model again only doubles the load."""
    status = exc.status()
    if status is None:  # raised by the client itself: no server reached
        return Unavailable(f"triton ({model}): {exc.message()}")
    return _STATUS_ERRORS.get(str(status), ImsearchError)(f"triton ({model}): {exc.message()}")


class TritonBackend:
    kind = "triton"

    def __init__(
        self, name: str, url: str, timeout_s: float = 30.0, retries: int = 3, backoff_s: float = 0.1
    ) -> None:
        self.name = name
        self._client = triton_grpc.InferenceServerClient(url)
        self._timeout = timeout_s
        self._retries = retries
        self._backoff = backoff_s
        try:
            if not self._client.is_model_ready(name):
                raise NotFound(f"triton at {url} has no ready model {name!r}")
            metadata = self._client.get_model_metadata(name, as_json=True)
            config = self._client.get_model_config(name, as_json=True)["config"]
        except InferenceServerException as exc:
            raise to_domain_error(exc, name) from None
        (model_input,) = metadata["inputs"]
        (model_output,) = metadata["outputs"]
        self._input_name: str = model_input["name"]
        self._input_dtype: str = model_input["datatype"]
        self._output_name: str = model_output["name"]
        self.output_dim = int(model_output["shape"][-1])
        self.max_batch_size = int(config.get("max_batch_size", 0)) or 1

    def _infer_once(self, batch: np.ndarray) -> np.ndarray:
        model_input = triton_grpc.InferInput(self._input_name, list(batch.shape), self._input_dtype)
        model_input.set_data_from_numpy(batch)
        for attempt in range(self._retries + 1):
            try:
                result = self._client.infer(
                    self.name,
                    [model_input],
                    outputs=[triton_grpc.InferRequestedOutput(self._output_name)],
                    client_timeout=self._timeout,
                )
                features = result.as_numpy(self._output_name)
                if features is None:
                    raise Unavailable(f"triton ({self.name}) returned no {self._output_name!r}")
                return np.asarray(features, dtype=np.float32)
            except InferenceServerException as exc:
                error = to_domain_error(exc, self.name)
                if not isinstance(error, Unavailable) or attempt == self._retries:
                    raise error from None
                log.warning("triton unavailable (%s); retry %d", exc.message(), attempt + 1)
                time.sleep(self._backoff * 2**attempt)
        raise AssertionError("unreachable")

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Splits batches larger than the model's max_batch_size."""
        chunks = [batch[i : i + self.max_batch_size] for i in range(0, len(batch), self.max_batch_size)]
        return np.concatenate([self._infer_once(np.ascontiguousarray(c)) for c in chunks])

    def close(self) -> None:
        self._client.close()
