"""Micro-batching, driven with a deterministic fake model that records the batches it sees."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from imsearch.core.deadline import Deadline
from imsearch.core.errors import Cancelled, DeadlineExceeded, ResourceExhausted
from services.encoder.batcher import BatcherHooks, MicroBatcher


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


class GatedModel(RecordingModel):
    """Blocks every inference call until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.entered.set()
        self.gate.wait(10)
        return super().__call__(batch)


def test_a_full_queue_refuses_at_once_all_or_nothing() -> None:
    model = GatedModel()
    batcher = MicroBatcher(model, max_batch=1, max_wait=0.0, max_queue=3)
    running = batcher.submit(np.ones((1, 2), np.float32))  # taken by the worker, blocked in the model
    assert model.entered.wait(5)
    queued = batcher.submit(np.ones((3, 2), np.float32))  # fills the queue
    with pytest.raises(ResourceExhausted, match="3 images queued for inference"):
        batcher.submit(np.ones((1, 2), np.float32))
    assert batcher.depth == 3  # the refused request left nothing behind
    model.gate.set()
    assert len([f.result(5) for f in running + queued]) == 4
    batcher.close()


def test_work_whose_caller_has_gone_never_reaches_the_model() -> None:
    model = GatedModel()
    dropped: list[str] = []
    batcher = MicroBatcher(model, max_batch=8, max_wait=0.0, hooks=BatcherHooks(on_dropped=dropped.append))
    blocker = batcher.submit(np.ones((1, 2), np.float32))
    assert model.entered.wait(5)
    expired = batcher.submit(np.full((2, 2), 3.0, np.float32), Deadline.after(0.05))
    cancelled = batcher.submit(np.full((1, 2), 4.0, np.float32), Deadline.after(None, lambda: True))
    threading.Event().wait(0.1)  # the first deadline passes while the model is busy
    model.gate.set()
    blocker[0].result(5)
    for future in expired:
        with pytest.raises(DeadlineExceeded):
            future.result(5)
    with pytest.raises(Cancelled):
        cancelled[0].result(5)
    batcher.close()
    assert model.batches == [1]  # only the blocker was inferred
    assert sorted(dropped) == ["cancelled", "expired", "expired"]


def test_run_gives_up_at_the_deadline_and_its_items_are_skipped() -> None:
    model = GatedModel()
    batcher = MicroBatcher(model, max_batch=8, max_wait=0.0)
    batcher.submit(np.ones((1, 2), np.float32))
    assert model.entered.wait(5)
    with pytest.raises(DeadlineExceeded, match="waiting for inference"):
        batcher.run(np.ones((2, 2), np.float32), Deadline.after(0.05))
    model.gate.set()
    batcher.close()
    assert model.batches == [1]


def test_a_backend_returning_the_wrong_row_count_fails_the_batch_not_the_worker() -> None:
    calls = []

    def short_by_one(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return batch[:-1] * 2 if len(calls) == 1 else batch * 2

    batcher = MicroBatcher(short_by_one, max_batch=4, max_wait=0.0)
    with pytest.raises(RuntimeError, match=r"returned \d rows for a batch of \d"):
        batcher.run(np.ones((2, 2), np.float32))
    np.testing.assert_array_equal(batcher.run(np.ones((1, 2), np.float32)), np.full((1, 2), 2.0))
    batcher.close()
