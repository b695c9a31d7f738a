"""Client streams that cannot hold a server thread forever.

gRPC's request iterator blocks its handler thread until the client sends the next message,
so a few idle clients could once occupy every worker. `IdleTimeoutStream` reads the client's
messages on a small reader thread and gives up with DEADLINE_EXCEEDED when none arrives
within the idle timeout; the handler then ends the call, which also ends the reader.
"""

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, Literal, TypeVar

from imsearch.core.errors import StreamIdle

T = TypeVar("T")
_Entry = tuple[Literal["item", "end", "error"], object]
_POLL_S = 0.5  # how often a blocked reader checks whether the handler has gone


class IdleTimeoutStream(Generic[T], Iterator[T]):
    def __init__(self, source: Iterable[T], idle_timeout_s: float) -> None:
        self._idle_timeout_s = idle_timeout_s
        self._queue: queue.Queue[_Entry] = queue.Queue(maxsize=2)  # little read-ahead
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._pump, args=(source,), name="stream-reader", daemon=True)
        self._reader.start()

    def _pump(self, source: Iterable[T]) -> None:
        try:
            for item in source:
                if not self._offer(("item", item)):
                    return
            self._offer(("end", None))
        except BaseException as exc:  # the client cancelled, or a message failed to parse
            self._offer(("error", exc))

    def _offer(self, entry: _Entry) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def __next__(self) -> T:
        if self._closed.is_set():
            raise StopIteration
        try:
            kind, value = self._queue.get(timeout=self._idle_timeout_s)
        except queue.Empty:
            self.close()
            raise StreamIdle(
                f"stream idle: no message for {self._idle_timeout_s:g} s; send the next one sooner "
                "or close the stream"
            ) from None
        if kind == "item":
            return value  # type: ignore[return-value]
        self.close()
        if kind == "error":
            assert isinstance(value, BaseException)
            raise value
        raise StopIteration

    def close(self) -> None:
        self._closed.set()
