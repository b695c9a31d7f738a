"""Micro-batching: concurrent requests are merged into one inference call.

A worker thread takes the first waiting item, then keeps collecting until it has `max_batch`
items or `max_wait` has passed since that first item, runs one inference and hands each caller
its rows. Under load batches fill up (throughput); alone, a request waits at most `max_wait`.
"""

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from time import monotonic

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class _Item:
    pixels: np.ndarray
    future: "Future[np.ndarray]" = field(default_factory=Future)


class MicroBatcher:
    def __init__(
        self,
        infer: Callable[[np.ndarray], np.ndarray],
        max_batch: int,
        max_wait: float,
        on_batch: Callable[[int], None] | None = None,
        workers: int = 1,
    ) -> None:
        if max_batch < 1 or max_wait < 0 or workers < 1:
            raise ValueError("max_batch and workers must be >= 1, max_wait >= 0")
        self._infer = infer
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._on_batch = on_batch
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._run, name=f"batcher-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, pixels: np.ndarray) -> list["Future[np.ndarray]"]:
        """Queues each image of an (n, ...) array; returns one future per image."""
        items = [_Item(row) for row in pixels]
        for item in items:
            self._queue.put(item)
        return [item.future for item in items]

    def run(self, pixels: np.ndarray) -> np.ndarray:
        """Blocking form of `submit`: (n, ...) in, (n, dim) out."""
        return np.stack([f.result() for f in self.submit(pixels)])

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()

    def _collect(self, first: _Item) -> tuple[list[_Item], bool]:
        batch, stop = [first], False
        deadline = monotonic() + self._max_wait
        while len(batch) < self._max_batch:
            remaining = deadline - monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                stop = True
                break
            batch.append(item)
        return batch, stop

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._collect(first)
            try:
                features = self._infer(np.stack([item.pixels for item in batch]))
                if self._on_batch is not None:
                    self._on_batch(len(batch))
                for item, row in zip(batch, features, strict=True):
                    item.future.set_result(row)
            except Exception as exc:  # every waiting caller gets the error, the worker lives on
                log.exception("inference failed for a batch of %d", len(batch))
                for item in batch:
                    item.future.set_exception(exc)
            if stop:
                return
