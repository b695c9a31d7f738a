"""The LSH store's upsert as one server-side script per shard (Redis Lua).

Building ~70 commands per point (a SREM and a SADD per table, four HSETs) in redis-py and
parsing their replies cost ~1 ms of Python per point, which capped ingest at about a tenth of
Qdrant's. The script takes each point's id, signature, float16 vector, metadata and digest and
does the same commands inside Redis. It is atomic as the MULTI/EXEC it replaces, and checks the
same two guards first: the shard's epoch (unchanged since the write began, so a write we gave
up on never lands after `fence`) and the lease token (FencedOut when a larger one has written).
All keys of one call share the shard's hash tag: one Redis Cluster slot.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

UPSERT = """
-- KEYS: epoch, token, sig, vec, meta, dig of one shard
-- ARGV: expected epoch ('' when unset), token ('' when none), bucket key prefix, tables,
--       then per point: id, signature (uint32 per table, little-endian), vector, metadata, digest
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then
  return redis.error_reply('IMSEARCH_FENCED the shard was fenced after this write began')
end
if ARGV[2] ~= '' then
  local seen = redis.call('GET', KEYS[2])
  if seen and tonumber(seen) > tonumber(ARGV[2]) then
    return redis.error_reply('IMSEARCH_LEASE the write lease passed to another replica')
  end
end
local prefix, tables = ARGV[3], tonumber(ARGV[4])
for i = 5, #ARGV, 5 do
  local id, sig = ARGV[i], ARGV[i + 1]
  local old = redis.call('HGET', KEYS[3], id)
  if old then
    for t = 0, tables - 1 do
      redis.call('SREM', prefix .. t .. ':' .. struct.unpack('<I4', old, 4 * t + 1), id)
    end
  end
  for t = 0, tables - 1 do
    redis.call('SADD', prefix .. t .. ':' .. struct.unpack('<I4', sig, 4 * t + 1), id)
  end
  redis.call('HSET', KEYS[3], id, sig)
  redis.call('HSET', KEYS[4], id, ARGV[i + 2])
  redis.call('HSET', KEYS[5], id, ARGV[i + 3])
  redis.call('HSET', KEYS[6], id, ARGV[i + 4])
end
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[2], ARGV[2])
end
return (#ARGV - 4) / 5
"""
FENCED, LEASE_PASSED = "IMSEARCH_FENCED", "IMSEARCH_LEASE"


@dataclass(frozen=True)
class ShardKeys:
    epoch: str
    token: str
    sig: str
    vec: str
    meta: str
    dig: str
    bucket_prefix: str  # + "<table>:<bucket>"

    def as_list(self) -> list[str]:
        return [self.epoch, self.token, self.sig, self.vec, self.meta, self.dig]


class LeasePassed(Exception):
    """The shard has seen a larger lease token than this write's."""


def upsert_shard(
    script: Any,
    keys: ShardKeys,
    epoch: bytes | str | None,
    token: int | None,
    tables: int,
    points: Sequence[tuple[str, bytes, bytes, str, str]],
) -> None:
    """Runs the script for (id, signature, vector, metadata, digest) points of one shard.
    Raises redis.WatchError when the shard was fenced since `epoch` was read, LeasePassed when
    the lease moved on."""
    args: list[Any] = [epoch or b"", "" if token is None else str(token), keys.bucket_prefix, tables]
    for point in points:
        args.extend(point)
    try:
        script(keys=keys.as_list(), args=args)
    except redis.exceptions.ResponseError as exc:
        message = str(exc)
        if message.startswith(FENCED):
            raise redis.exceptions.WatchError(message) from None
        if message.startswith(LEASE_PASSED):
            raise LeasePassed(message) from None
        raise
