"""Per-collection write leases in Redis, with fencing tokens, so several index replicas can
write one collection safely.

A write (and a repair) holds its collection's lease from the Qdrant write to the end of the LSH
transactions. The lease is a Redis key holding a fencing token drawn from a counter that only
grows (Kleppmann's fencing tokens; redis-py's Lock has random tokens, which cannot be ordered;
the counter starts at Redis's clock in microseconds, so it grows across a drop and re-create),
with a time to live that a background thread renews while it is held. If a holder stalls past
the time to live (a long GC pause, a SIGSTOP), another replica takes the lease with a larger
token, and every LSH transaction checks its shard's highest token seen
(services.index.stores.redis_lsh): the stalled holder's late writes abort (FencedOut).

The lease, its counter and the collection's LSH config share one hash tag, so each script below
touches one Redis Cluster slot. The grant carries the config's version, so a replica whose
cached LSH state (centre, parameters, dimension) is stale sees it before it writes.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from imsearch.core.errors import Unavailable
from services.index.stores.redis_lsh import RedisClient

log = logging.getLogger(__name__)

_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
if redis.call('EXISTS', KEYS[2]) == 0 then
  local now = redis.call('TIME')
  redis.call('SET', KEYS[2], now[1] * 1000000 + now[2])
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
return {token, redis.call('HGET', KEYS[3], 'version') or ''}
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Grant:
    token: int  # larger than every earlier holder's
    config_version: str  # the collection's LSH config version when the lease was granted ("" if none)


class CollectionLeases:
    def __init__(
        self,
        client: RedisClient,
        key_of: Callable[[str, str], str],
        ttl_s: float = 10.0,
        wait_s: float = 10.0,
    ) -> None:
        """`key_of(collection, name)`: a key in the slot of the collection's LSH config."""
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._key_of = key_of
        self._ttl_ms = int(ttl_s * 1000)
        self._wait_s = wait_s
        self._held: dict[str, int] = {}  # collection -> token, renewed while held
        self._held_lock = threading.Lock()
        self._renewer: threading.Thread | None = None
        self._closed = threading.Event()

    @contextmanager
    def hold(self, collection: str) -> Iterator[Grant]:
        """Holds the collection's lease for the block; UNAVAILABLE if another replica keeps it
        longer than `wait_s`."""
        grant = self._take(collection)
        with self._held_lock:
            self._held[collection] = grant.token
        self._start_renewer()
        try:
            yield grant
        finally:
            with self._held_lock:
                self._held.pop(collection, None)
            try:
                self._release(keys=[self._key_of(collection, "lease")], args=[grant.token])
            except Exception as exc:  # it runs out by itself; the next holder fences
                log.warning("could not release the write lease of %s: %s", collection, exc)

    def _take(self, collection: str) -> Grant:
        keys = [self._key_of(collection, name) for name in ("lease", "lease_seq", "config")]
        deadline = time.monotonic() + self._wait_s
        pause = 0.002
        while True:
            try:
                granted = self._acquire(keys=keys, args=[self._ttl_ms])
            except redis.exceptions.RedisError as exc:
                raise Unavailable(f"LSH store (Redis) unavailable: {exc}") from None
            if granted is not None:
                token, version = granted
                return Grant(int(token), version.decode() if isinstance(version, bytes) else str(version))
            if time.monotonic() >= deadline:
                raise Unavailable(
                    f"collection {collection!r} is being written by another index replica; retry"
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _start_renewer(self) -> None:
        with self._held_lock:
            if self._renewer is not None and self._renewer.is_alive():
                return
            self._renewer = threading.Thread(target=self._renew_loop, name="lease-renewer", daemon=True)
            self._renewer.start()

    def _renew_loop(self) -> None:
        """Extends every held lease each third of its time to live."""
        while not self._closed.wait(self._ttl_ms / 3000):
            with self._held_lock:
                held = dict(self._held)
            for collection, token in held.items():
                try:
                    key = self._key_of(collection, "lease")
                    renewed = self._renew(keys=[key], args=[token, self._ttl_ms])
                except Exception as exc:  # Redis away: the write itself will fail on it
                    log.info("could not renew the write lease of %s: %s", collection, exc)
                    continue
                if not renewed:
                    log.warning("the write lease of %s ran out while held (token %d)", collection, token)

    def close(self) -> None:
        self._closed.set()
        if self._renewer is not None:
            self._renewer.join()
