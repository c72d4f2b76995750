"""
The Redis store, on redis-py: one module for the daemon and the blocking Python API.

Blocking calls only; the daemon runs them in a thread pool.  Every call touches the
keys of one pk hash tag, so the same code runs on a single server or a Redis Cluster.
Writes go through one Lua script per tag (and per chunk of a large tag) that applies
all increments, set members and expiries atomically, and only once: it records the
writer's batch token in the same slot and ignores a token it has already seen.
"""

import secrets
from collections.abc import Iterable, Sequence

import redis
import redis.cluster

from hailwhale import encoding, keys
from hailwhale.encoding import Path
from hailwhale.query import Read
from hailwhale.rollup import Plan, TagWrite

CHUNK_FIELDS = 10_000
CHUNKS_PER_BATCH = 1 << 16
APPLIED_TOKEN_LIFE = 7 * 86400
SCHEMA_KEY = "hw:schema"

APPLY_SCRIPT = """
local seen = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
local token = tonumber(ARGV[2])
if token <= seen then return 0 end
local a = 4
for i = 2, #KEYS do
  local key, kind, expires, n = KEYS[i], ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  if kind == 'h' then
    for j = a, a + 2 * n - 1, 2 do
      redis.call('HINCRBYFLOAT', key, ARGV[j], ARGV[j + 1])
    end
    a = a + 2 * n
  else
    for j = a, a + n - 1 do
      redis.call('SADD', key, ARGV[j])
    end
    a = a + n
  end
  if redis.call('EXPIRETIME', key) < expires then
    redis.call('EXPIREAT', key, expires)
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return 1
"""


def connect(url: str, cluster: bool = False) -> "redis.Redis | redis.cluster.RedisCluster":
    if cluster:
        return redis.cluster.RedisCluster.from_url(url)
    return redis.Redis.from_url(url)


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


class Store:
    def __init__(self, client, url: str, writer_id: str | None = None):
        self.url = url
        self.writer_id = writer_id or secrets.token_hex(8)
        self._client = client
        self._apply = client.register_script(APPLY_SCRIPT)

    @classmethod
    def connect(cls, url: str, cluster: bool = False) -> "Store":
        return cls(connect(url, cluster), url)

    def close(self) -> None:
        self._client.close()

    def ping(self) -> bool:
        return bool(self._client.ping())

    def apply(self, plan: Plan, seq: int, now: float, done: set[Path]) -> int:
        """
        Apply every tag write of ``plan`` not already in ``done`` (adding each to it
        as it lands); the number of chunks the store had already seen.  Raises on the
        first failure, leaving ``done`` as far as it got, so a retry resumes there.
        """
        repeats = 0
        for write in plan.writes:
            if write.pk in done:
                continue
            repeats += self.apply_write(write, seq, now)
            done.add(write.pk)
        return repeats

    def apply_write(self, write: TagWrite, seq: int, now: float) -> int:
        tag = write.tag
        applied = keys.applied_key(tag)
        repeats = 0
        for index, (chunk_keys, chunk_args) in enumerate(_chunks(write)):
            token = seq * CHUNKS_PER_BATCH + index
            args = [self.writer_id, token, int(now) + APPLIED_TOKEN_LIFE, *chunk_args]
            repeats += 1 - int(self._apply(keys=[applied, *chunk_keys], args=args))
        return repeats

    def read(self, reads: Sequence[Read]) -> list[list]:
        if not reads:
            return []
        pipe = self._client.pipeline(transaction=False)
        for read in reads:
            pipe.hmget(read.key, read.fields)
        return pipe.execute()

    def children(self, pk: Path, node: Path) -> list[Path]:
        members = self._client.smembers(keys.children_key(keys.tag(pk), encoding.encode(node)))
        return sorted(encoding.decode(m.decode("utf-8")) for m in members)

    def descendants(self, pk: Path, node: Path) -> list[Path]:
        """``node`` and everything below it, depth first, siblings in order."""
        found = []
        stack = [node]
        while stack:
            current = stack.pop()
            found.append(current)
            stack.extend(reversed(self.children(pk, current)))
        return found

    def publish_schema(self, schema_text: str) -> str | None:
        """Record the schema the data is written in; the one recorded before, if any."""
        previous = self._client.getset(SCHEMA_KEY, schema_text)
        return previous.decode("utf-8") if previous is not None else None

    def recorded_schema(self) -> str | None:
        value = self._client.get(SCHEMA_KEY)
        return value.decode("utf-8") if value is not None else None


def _chunks(write: TagWrite) -> Iterable[tuple[list[str], list]]:
    chunk_keys: list[str] = []
    chunk_args: list = []
    size = 0
    for key, fields in write.increments.items():
        items = list(fields.items())
        for start in range(0, len(items), CHUNK_FIELDS):
            part = items[start : start + CHUNK_FIELDS]
            chunk_keys.append(key)
            chunk_args += ["h", write.expire_at[key], len(part)]
            for name, value in part:
                chunk_args += [name, _number(value)]
            size += len(part)
            if size >= CHUNK_FIELDS:
                yield chunk_keys, chunk_args
                chunk_keys, chunk_args, size = [], [], 0
    for key, members in write.members.items():
        member_list = sorted(members)
        for start in range(0, len(member_list), CHUNK_FIELDS):
            part = member_list[start : start + CHUNK_FIELDS]
            chunk_keys.append(key)
            chunk_args += ["s", write.expire_at[key], len(part), *part]
            size += len(part)
            if size >= CHUNK_FIELDS:
                yield chunk_keys, chunk_args
                chunk_keys, chunk_args, size = [], [], 0
    if chunk_keys:
        yield chunk_keys, chunk_args
