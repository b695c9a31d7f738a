"""Micro-batching: concurrent requests are merged into one inference call.

A worker thread takes the first waiting item, then keeps collecting until it has `max_batch`
items or `max_wait` has passed since that first item, runs one inference and hands each caller
its rows. Under load batches fill up (throughput); alone, a request waits at most `max_wait`.

The queue is bounded (`max_queue` images): past it `submit` refuses with RESOURCE_EXHAUSTED
instead of letting waits grow without limit. Items whose caller has gone (deadline passed or
call cancelled) are dropped before inference, so no model time is spent on them.
"""

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from time import monotonic

import numpy as np

from imsearch.core.deadline import NO_DEADLINE, Deadline
from imsearch.core.errors import Cancelled, DeadlineExceeded, ResourceExhausted

log = logging.getLogger(__name__)


@dataclass
class _Item:
    pixels: np.ndarray
    deadline: Deadline
    queued_at: float = field(default_factory=monotonic)
    future: "Future[np.ndarray]" = field(default_factory=Future)


@dataclass
class BatcherHooks:
    """Where the batcher reports what an autoscaler and an operator want to see."""

    on_batch: Callable[[int], None] = lambda size: None  # images per inference call
    on_queue_wait: Callable[[float], None] = lambda seconds: None  # per image, queued -> batched
    on_dropped: Callable[[str], None] = lambda reason: None  # "expired" or "cancelled"


class MicroBatcher:
    def __init__(
        self,
        infer: Callable[[np.ndarray], np.ndarray],
        max_batch: int,
        max_wait: float,
        hooks: BatcherHooks | None = None,
        workers: int = 1,
        max_queue: int = 256,
    ) -> None:
        if max_batch < 1 or max_wait < 0 or workers < 1 or max_queue < 1:
            raise ValueError("max_batch, workers and max_queue must be >= 1, max_wait >= 0")
        self._infer = infer
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._hooks = hooks or BatcherHooks()
        self._max_queue = max_queue
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._admit = threading.Lock()  # makes "is there room for n?" and the puts one step
        self._threads = [
            threading.Thread(target=self._run, name=f"batcher-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def alive(self) -> bool:
        return all(thread.is_alive() for thread in self._threads)

    @property
    def depth(self) -> int:
        """Images waiting for inference."""
        return self._queue.qsize()

    def submit(self, pixels: np.ndarray, deadline: Deadline = NO_DEADLINE) -> list["Future[np.ndarray]"]:
        """Queues each image of an (n, ...) array, all or none; returns one future per image."""
        items = [_Item(row, deadline) for row in pixels]
        with self._admit:
            waiting = self._queue.qsize()
            if waiting + len(items) > self._max_queue:
                raise ResourceExhausted(
                    f"encoder busy: {waiting} images queued for inference (limit {self._max_queue}); "
                    "retry with backoff"
                )
            for item in items:
                self._queue.put(item)
        return [item.future for item in items]

    def run(self, pixels: np.ndarray, deadline: Deadline = NO_DEADLINE) -> np.ndarray:
        """Blocking form of `submit`: (n, ...) in, (n, dim) out; gives up at the deadline."""
        futures = self.submit(pixels, deadline)
        try:
            return np.stack([f.result(timeout=deadline.remaining()) for f in futures])
        except TimeoutError:
            raise DeadlineExceeded("deadline exceeded waiting for inference") from None
        finally:
            for f in futures:
                f.cancel()  # whatever is still queued is skipped by the worker

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

    def _still_wanted(self, item: _Item) -> bool:
        """Claims the item for inference, or settles it if its caller has gone."""
        if not item.future.set_running_or_notify_cancel():  # the caller stopped waiting
            self._hooks.on_dropped("expired" if item.deadline.expired() else "cancelled")
            return False
        try:
            item.deadline.check("inference")
        except (DeadlineExceeded, Cancelled) as exc:
            self._hooks.on_dropped("expired" if isinstance(exc, DeadlineExceeded) else "cancelled")
            item.future.set_exception(exc)
            return False
        return True

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            collected, stop = self._collect(first)
            now = monotonic()
            for item in collected:
                self._hooks.on_queue_wait(now - item.queued_at)
            batch = [item for item in collected if self._still_wanted(item)]
            if batch:
                self._infer_batch(batch)
            if stop:
                return

    def _infer_batch(self, batch: list[_Item]) -> None:
        try:
            features = self._infer(np.stack([item.pixels for item in batch]))
            if len(features) != len(batch):
                raise RuntimeError(f"backend returned {len(features)} rows for a batch of {len(batch)}")
            self._hooks.on_batch(len(batch))
            for item, row in zip(batch, features, strict=True):
                item.future.set_result(row)
        except Exception as exc:  # every waiting caller gets the error, the worker lives on
            log.exception("inference failed for a batch of %d", len(batch))
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
