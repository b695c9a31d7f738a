"""Admission control: a fixed number of calls in flight, the rest refused at once.

Refusing fast (RESOURCE_EXHAUSTED, which clients retry with backoff) keeps the latency of the
admitted calls bounded under overload; queueing everything would make every caller slow and
most of them time out while the server still does their work.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from imsearch.core.errors import ResourceExhausted


class ConcurrencyLimit:
    def __init__(self, limit: int, what: str) -> None:
        if limit < 1:
            raise ValueError(f"a limit on {what} must be >= 1, not {limit}")
        self.limit = limit
        self._what = what
        self._slots = threading.BoundedSemaphore(limit)

    @contextmanager
    def admit(self) -> Iterator[None]:
        if not self._slots.acquire(blocking=False):
            raise ResourceExhausted(
                f"server busy: {self.limit} {self._what} already in flight; retry with backoff"
            )
        try:
            yield
        finally:
            self._slots.release()
