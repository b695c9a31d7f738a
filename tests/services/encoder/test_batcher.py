"""Micro-batching, driven with a deterministic fake model that records the batches it sees."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from services.encoder.batcher import MicroBatcher


class RecordingModel:
    """Doubles its input; remembers batch sizes; sleeps a little like a real model."""

    def __init__(self, fail_on: float | None = None) -> None:
        self.batches: list[int] = []
        self._lock = threading.Lock()
        self._fail_on = fail_on

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            self.batches.append(len(batch))
        if self._fail_on is not None and np.any(batch == self._fail_on):
            raise RuntimeError("model failed")
        threading.Event().wait(0.01)
        return batch * 2


def test_results_come_back_to_their_callers() -> None:
    model = RecordingModel()
    batcher = MicroBatcher(model, max_batch=8, max_wait=0.01)
    inputs = [np.full((2, 3), i, dtype=np.float32) for i in range(20)]
    with ThreadPoolExecutor(16) as pool:
        outputs = list(pool.map(batcher.run, inputs))
    batcher.close()
    for given, got in zip(inputs, outputs, strict=True):
        np.testing.assert_array_equal(got, given * 2)


def test_concurrent_requests_share_batches_up_to_the_limit() -> None:
    model = RecordingModel()
    batcher = MicroBatcher(model, max_batch=8, max_wait=0.05)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(batcher.run, [np.ones((1, 4), np.float32)] * 32))
    batcher.close()
    assert sum(model.batches) == 32
    assert max(model.batches) == 8
    assert len(model.batches) < 32  # some requests were merged


def test_a_lone_request_waits_at_most_max_wait() -> None:
    model = RecordingModel()
    batcher = MicroBatcher(model, max_batch=64, max_wait=0.0)
    batcher.run(np.ones((1, 4), np.float32))
    batcher.close()
    assert model.batches == [1]


def test_a_failing_batch_fails_its_callers_and_the_worker_survives() -> None:
    model = RecordingModel(fail_on=-1.0)
    batcher = MicroBatcher(model, max_batch=4, max_wait=0.0)
    with pytest.raises(RuntimeError, match="model failed"):
        batcher.run(np.full((1, 2), -1.0, np.float32))
    np.testing.assert_array_equal(batcher.run(np.ones((1, 2), np.float32)), np.full((1, 2), 2.0))
    batcher.close()


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        MicroBatcher(RecordingModel(), max_batch=0, max_wait=0.01)
