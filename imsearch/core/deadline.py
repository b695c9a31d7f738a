"""The caller's deadline, carried from the gRPC context to every stage and hop of a request.

The server interceptor opens a `deadline_scope` for each call; core code reads
`current_deadline()` to drop work the caller no longer waits for (before decoding, before
inference) and to give each downstream call only the time the caller has left. Code running
outside a call (tests, the lab, batch jobs) sees `NO_DEADLINE`: no limit, never cancelled.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from time import monotonic

from imsearch.core.errors import Cancelled, DeadlineExceeded

# gRPC reports "no deadline" as a remaining time of centuries; anything above this is none.
_NO_DEADLINE_ABOVE_S = 10 * 365 * 24 * 3600.0


def _never() -> bool:
    return False


@dataclass(frozen=True)
class Deadline:
    expires_at: float | None  # time.monotonic() seconds; None: the caller set no deadline
    is_cancelled: Callable[[], bool] = field(default=_never, compare=False)

    @classmethod
    def after(cls, seconds: float | None, is_cancelled: Callable[[], bool] = _never) -> "Deadline":
        if seconds is None or seconds > _NO_DEADLINE_ABOVE_S:
            return cls(None, is_cancelled)
        return cls(monotonic() + seconds, is_cancelled)

    def remaining(self) -> float | None:
        """Seconds left (never negative), or None without a deadline."""
        return None if self.expires_at is None else max(0.0, self.expires_at - monotonic())

    def expired(self) -> bool:
        return self.expires_at is not None and monotonic() >= self.expires_at

    def check(self, before: str) -> None:
        """Raises DeadlineExceeded or Cancelled if the caller is gone; `before` names the step."""
        if self.expired():
            raise DeadlineExceeded(f"deadline exceeded before {before}")
        if self.is_cancelled():
            raise Cancelled(f"the caller cancelled before {before}")

    def hop_timeout(self, cap: float) -> float:
        """The timeout for a downstream call: the caller's time left, at most `cap` seconds."""
        remaining = self.remaining()
        return cap if remaining is None else min(cap, remaining)


NO_DEADLINE = Deadline(None)

_current: ContextVar[Deadline] = ContextVar("imsearch_deadline", default=NO_DEADLINE)


def current_deadline() -> Deadline:
    return _current.get()


@contextmanager
def deadline_scope(deadline: Deadline) -> Iterator[Deadline]:
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)
