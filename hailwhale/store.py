"""
The Redis store, on redis-py: one module for the daemon and the blocking Python API.

Blocking calls only; the daemon runs them in a thread pool.  Every call touches the
keys of one pk hash tag, so the same code runs on a single server or a Redis Cluster.
Writes go through one Lua script per tag (and per chunk of a large tag) that applies
all increments, set members and expiries atomically, and only once: it records the
writer's batch token in the same slot and ignores a token it has already seen.
"""

import json
import secrets
from collections.abc import Iterable

import attrs
import redis
import redis.cluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from hailwhale import keys, kinds
from hailwhale.encoding import Path
from hailwhale.query import Children, Group, Sums
from hailwhale.rollup import Plan, TagWrite

CHUNK_FIELDS = 10_000
PIPELINED_TAGS = 200
CHUNKS_PER_BATCH = 1 << 16
APPLIED_TOKEN_LIFE = 7 * 86400
SCHEMA_KEY = "hw:schema"
TIMEOUT = 5.0

APPLY_SCRIPT = """
-- KEYS[1]: this writer's last token under the tag; KEYS[2..]: the keys written, in the order
-- of ARGV[3], a JSON list of [kind, expires at, members]: 'z' adds {member: amount} to a
-- sorted set, 's' adds [member, ...] to a set.  ARGV[1]: the token; ARGV[2]: its lifetime.
local seen = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) <= seen then return 0 end
local writes = cjson.decode(ARGV[3])
local types = {z = 'zset', g = 'zset', s = 'set', h = 'string'}
-- a script is not rolled back if a command fails, so refuse before writing anything
for i = 2, #KEYS do
  local found, wanted = redis.call('TYPE', KEYS[i]).ok, types[writes[i - 1][1]]
  if found ~= 'none' and found ~= wanted then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. found .. ', not a ' .. wanted)
  end
end
for i = 2, #KEYS do
  local key, write = KEYS[i], writes[i - 1]
  local expires = write[2]
  if write[1] == 'z' or write[1] == 'g' then
    local command = write[1] == 'z' and 'ZINCRBY' or 'ZADD'
    for member, amount in pairs(write[3]) do
      redis.call(command, key, amount, member)
    end
    -- a bucket's expiry follows from its start alone
    redis.call('EXPIREAT', key, expires)
  elseif write[1] == 'h' then
    local names = write[3]
    for first = 1, #names, 1000 do
      redis.call('PFADD', key, unpack(names, first, math.min(first + 999, #names)))
    end
    redis.call('EXPIREAT', key, expires)
  else
    for _, member in ipairs(write[3]) do
      redis.call('SADD', key, member)
    end
    -- a children set lives as long as its longest-lived bucket
    if redis.call('EXPIRETIME', key) < expires then
      redis.call('EXPIREAT', key, expires)
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""

SUMS_SCRIPT = """
-- ARGV: the number of parts, then per part: the member count, the members, the piece count
-- and '1' if the part is a gauge (the latest piece holding a value wins) or '0' (a sum)
local out = {}
local a, k = 2, 1
for p = 1, tonumber(ARGV[1]) do
  local count = tonumber(ARGV[a])
  local first, last = a + 1, a + count
  local pieces = tonumber(ARGV[last + 1])
  local latest = ARGV[last + 2] == '1'
  a = last + 3
  local sums = {}
  for i = 1, count do sums[i] = 0 end
  for q = 1, pieces do
    local scores = redis.call('ZMSCORE', KEYS[k], unpack(ARGV, first, last))
    k = k + 1
    for i = 1, count do
      if scores[i] then
        if latest then sums[i] = tonumber(scores[i]) else sums[i] = sums[i] + tonumber(scores[i]) end
      end
    end
  end
  local texts = {}
  for i = 1, count do texts[i] = string.format('%.17g', sums[i]) end
  out[p] = texts
end
return out
"""

UNIQUES_SCRIPT = """
-- ARGV: how many keys each count unites, in the order of KEYS; one PFCOUNT per count
local out, k = {}, 1
for i = 1, #ARGV do
  local n = tonumber(ARGV[i])
  out[i] = redis.call('PFCOUNT', unpack(KEYS, k, k + n - 1))
  k = k + n
end
return out
"""

GROUP_SCRIPT = """#!lua flags=no-writes
-- KEYS: the data keys, metric by metric, piece by piece; last, the parent's children set
local pieces, metrics = tonumber(ARGV[1]), tonumber(ARGV[2])
local num, den, present = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local descending, limit = ARGV[6] == '1', tonumber(ARGV[7])
local sign = descending and -1 or 1
local function key(m, q) return KEYS[(m - 1) * pieces + q] end
local function union(m, weight)
  -- ZUNION answers in score order (then by name): weighted by -1, the largest first
  local args = {'ZUNION', pieces}
  for q = 1, pieces do args[#args + 1] = key(m, q) end
  args[#args + 1] = 'WEIGHTS'
  for q = 1, pieces do args[#args + 1] = weight end
  args[#args + 1] = 'WITHSCORES'
  return redis.call(unpack(args))
end
local function bytewise_before(a, b)
  -- Lua's < on strings follows the server's locale; ties must break by bytes, as ZUNION does
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local function better(a, sa, b, sb)
  if sa ~= sb then
    if descending then return sa > sb else return sa < sb end
  end
  return bytewise_before(a, b)
end
-- the best `limit` so far, in order (an insertion list: limits are small); with a large
-- limit, everything is collected and sorted once at the end
local small = limit > 0 and limit <= 64
local best, seen, unsorted = {}, {}, false
local function consider(member, score)
  local n = #best
  if not small then
    best[n + 1] = {member, score}
    unsorted = true
    return
  end
  if n >= limit and not better(member, score, best[n][1], best[n][2]) then return end
  local i = n
  while i > 0 and better(member, score, best[i][1], best[i][2]) do
    best[i + 1] = best[i]
    i = i - 1
  end
  best[i + 1] = {member, score}
  if #best > limit then best[#best] = nil end
end
local function finish()
  if unsorted then
    table.sort(best, function(x, y) return better(x[1], x[2], y[1], y[2]) end)
    if limit > 0 then
      for i = #best, limit + 1, -1 do best[i] = nil end
    end
    unsorted = false
  end
end
if den == 0 then
  local flat = union(num, sign)
  local count = #flat / 2
  if limit > 0 and limit < count then count = limit end
  for i = 1, #flat, 2 do seen[flat[i]] = true end
  for i = 1, count do best[i] = {flat[2 * i - 1], sign * tonumber(flat[2 * i])} end
else
  local above = {}
  local flat = union(num, 1)
  for i = 1, #flat, 2 do above[flat[i]] = tonumber(flat[i + 1]) end
  flat = union(den, 1)
  for i = 1, #flat, 2 do
    local member, below = flat[i], tonumber(flat[i + 1])
    local score = 0
    if below ~= 0 then score = (above[member] or 0) / below end
    seen[member] = true
    consider(member, score)
  end
  for member in pairs(above) do
    if not seen[member] then
      seen[member] = true
      consider(member, 0)
    end
  end
end
-- children with no numbers for the sort score 0: look at them only if 0 could still make the cut
finish()
local n = #best
if not (limit > 0 and n >= limit and better(best[n][1], best[n][2], best[n][1], 0)) then
  local flat = union(present, 0)
  for i = 1, #flat, 2 do
    if not seen[flat[i]] then consider(flat[i], 0) end
  end
  finish()
end
local chosen = {}
for i, pair in ipairs(best) do chosen[i] = pair[1] end
n = #chosen
local out = {redis.call('SCARD', KEYS[#KEYS]), chosen}
for m = 1, metrics do
  local sums = {}
  for i = 1, n do sums[i] = 0 end
  for q = 1, pieces do
    for first = 1, n, 4000 do
      local last = math.min(first + 3999, n)
      local got = redis.call('ZMSCORE', key(m, q), unpack(chosen, first, last))
      for i = first, last do
        local score = got[i - first + 1]
        if score then sums[i] = sums[i] + tonumber(score) end
      end
    end
  end
  for i = 1, n do sums[i] = string.format('%.17g', sums[i]) end
  out[#out + 1] = sums
end
return out
"""


@attrs.define
class Applied:
    repeats: int = 0  # chunks the store had already applied (a retry after a lost reply)
    refused: list = attrs.field(factory=list)  # (pk, error) of tag writes the store refused for good


def connect(url: str, cluster: bool = False, timeout: float = TIMEOUT) -> "redis.Redis | redis.cluster.RedisCluster":
    """
    A client whose every call fails within about twice ``timeout`` if the store is away
    or hung (without a socket timeout a stopped server holds a thread forever), after one
    retry on a fresh connection (a restarted server has closed the pooled ones); callers
    retry beyond that themselves.
    """
    settings = dict(socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 1))
    if cluster:
        return redis.cluster.RedisCluster.from_url(url, **settings)
    return redis.Redis.from_url(url, **settings)


class Store:
    def __init__(self, client, url: str, writer_id: str | None = None):
        self.url = url
        self.writer_id = writer_id or secrets.token_hex(8)
        self._client = client
        self._apply = client.register_script(APPLY_SCRIPT)
        self._sums = client.register_script(SUMS_SCRIPT)
        self._uniques = client.register_script(UNIQUES_SCRIPT)
        self._group = client.register_script(GROUP_SCRIPT)

    @classmethod
    def connect(cls, url: str, cluster: bool = False, timeout: float = TIMEOUT) -> "Store":
        return cls(connect(url, cluster, timeout), url)

    def close(self) -> None:
        self._client.close()

    def ping(self) -> bool:
        return bool(self._client.ping())

    def apply(self, plan: Plan, seq: int, done: set[Path]) -> Applied:
        """
        Apply every tag write of ``plan`` not already in ``done``, adding each to it once
        the store has taken it (or refused it for good).  The script calls go out
        pipelined, each still atomic for its tag.  Raises if the store could not be
        reached, leaving ``done`` as far as it got, so a retry resends only the rest (and
        the tokens keep a resent chunk from counting twice).  A tag the store refuses (an
        error reply: a key of ours holding foreign data, a total overflowing) would be
        refused again on every retry, so it is dropped and reported instead of blocking
        every later flush.
        """
        result = Applied()
        pending = [write for write in plan.writes if write.pk not in done]
        for start in range(0, len(pending), PIPELINED_TAGS):
            group = pending[start : start + PIPELINED_TAGS]
            calls = [[(applied, chunk) for chunk in chunks] for applied, chunks in
                     ((keys.applied_key(w.tag, self.writer_id), list(_script_calls(w, seq))) for w in group)]
            replies = iter(self._execute([call for chunks in calls for call in chunks]))
            failure = None
            for write, chunks in zip(group, calls):
                results = [next(replies) for _ in chunks]
                refused = [r for r in results if isinstance(r, redis.ResponseError)]
                failed = [r for r in results if isinstance(r, Exception) and not isinstance(r, redis.ResponseError)]
                if failed:
                    failure = failure or failed[0]
                    continue
                if refused:
                    result.refused.append((write.pk, str(refused[0])))
                result.repeats += sum(1 - int(r) for r in results if not isinstance(r, Exception))
                done.add(write.pk)
            if failure is not None:
                raise failure
        return result

    def _execute(self, calls: list[tuple[str, tuple[list[str], list]]]) -> list:
        """
        Run apply-script calls, each ``(applied key, (keys, args))``; a reply or the
        exception per call.  Pipelined on a single server; one by one on a cluster
        (redis-py does not pipeline scripts there), stopping at the first call the
        cluster could not be reached for.
        """
        if not isinstance(self._client, redis.cluster.RedisCluster):
            pipe = self._client.pipeline(transaction=False)
            for applied, (chunk_keys, args) in calls:
                self._apply(keys=[applied, *chunk_keys], args=args, client=pipe)
            return pipe.execute(raise_on_error=False)
        replies: list = []
        for applied, (chunk_keys, args) in calls:
            try:
                replies.append(self._apply(keys=[applied, *chunk_keys], args=args))
            except redis.ResponseError as error:
                replies.append(error)
            except redis.RedisError as error:
                replies += [error] * (len(calls) - len(replies))
                break
        return replies

    def run(self, request):
        """Answer one query request (see :mod:`hailwhale.query`)."""
        if isinstance(request, Sums):
            return self.sums(request)
        if isinstance(request, Group):
            return self.group(request)
        if isinstance(request, Children):
            return self.children_of(request)
        raise TypeError(f"not a store request: {request!r}")

    def sums(self, request: Sums) -> list[list[float]]:
        tag = keys.tag(request.pk)
        replies: list = [None] * len(request.parts)
        scored = [(index, part) for index, part in enumerate(request.parts) if part.kind != kinds.UNIQUE]
        if scored:
            data_keys: list[str] = []
            args: list = [len(scored)]
            for _, part in scored:
                args += [len(part.members), *part.members, len(part.pieces), 1 if part.kind == kinds.GAUGE else 0]
                data_keys += [keys.data_key(tag, p.size, p.start, part.metric, part.parent) for p in part.pieces]
            for (index, _), reply in zip(scored, self._sums(keys=data_keys, args=args)):
                replies[index] = [float(value) for value in reply]
        counted = [(index, part) for index, part in enumerate(request.parts) if part.kind == kinds.UNIQUE]
        if counted:
            unique_keys = [keys.unique_key(tag, p.size, p.start, part.metric, member)
                           for _, part in counted for member in part.members for p in part.pieces]
            sizes = [len(part.pieces) for _, part in counted for _ in part.members]
            counts = iter(self._uniques(keys=unique_keys, args=sizes))
            for index, part in counted:
                replies[index] = [float(next(counts)) for _ in part.members]
        return replies

    def group(self, request: Group) -> tuple[int, list[str], dict[str, list[float]]]:
        tag = keys.tag(request.pk)
        metrics = list(request.metrics)
        for name in (request.numerator, request.denominator, request.presence):
            if name is not None and name not in metrics:
                metrics.append(name)
        data_keys = [keys.data_key(tag, p.size, p.start, metric, request.parent)
                     for metric in metrics for p in request.pieces]
        position = {metric: index + 1 for index, metric in enumerate(metrics)}
        args = [len(request.pieces), len(metrics), position[request.numerator],
                position[request.denominator] if request.denominator else 0, position[request.presence],
                1 if request.descending else 0, request.limit]
        children = keys.children_key(tag, request.parent)
        found, chosen, *sums = self._group(keys=[*data_keys, children], args=args)
        members = [member.decode("utf-8") for member in chosen]
        return found, members, {m: [float(v) for v in sums[position[m] - 1]] for m in request.metrics}

    def children_of(self, request: Children) -> list[list[str]]:
        tag = keys.tag(request.pk)
        pipe = self._client.pipeline(transaction=False)
        for node in request.nodes:
            pipe.smembers(keys.children_key(tag, node))
        return [sorted(member.decode("utf-8") for member in members) for members in pipe.execute()]

    def publish_schema(self, schema_text: str) -> str | None:
        """Record the schema the data is written in; the one recorded before, if any."""
        previous = self._client.getset(SCHEMA_KEY, schema_text)
        return previous.decode("utf-8") if previous is not None else None

    def recorded_schema(self) -> str | None:
        value = self._client.get(SCHEMA_KEY)
        return value.decode("utf-8") if value is not None else None


def _script_calls(write: TagWrite, seq: int) -> Iterable[tuple[list[str], list]]:
    """The (keys, args) of each apply-script call for ``write``, one per chunk, each with its own token."""
    for index, (chunk_keys, chunk_writes) in enumerate(_chunks(write)):
        yield chunk_keys, [seq * CHUNKS_PER_BATCH + index, APPLIED_TOKEN_LIFE, json.dumps(chunk_writes)]


def _chunks(write: TagWrite) -> Iterable[tuple[list[str], list]]:
    """The keys and ``[kind, expires at, members]`` writes of each script call, a chunk at a time."""
    chunk_keys: list[str] = []
    chunk_writes: list = []
    size = 0
    parts = [("z", key, list(amounts.items())) for key, amounts in write.increments.items()]
    parts += [("g", key, list(values.items())) for key, values in write.levels.items()]
    parts += [("s", key, sorted(members)) for key, members in write.members.items()]
    parts += [("h", key, sorted(members)) for key, members in write.uniques.items()]
    for kind, key, items in parts:
        for start in range(0, len(items), CHUNK_FIELDS):
            part = items[start : start + CHUNK_FIELDS]
            chunk_keys.append(key)
            chunk_writes.append([kind, write.expire_at[key], dict(part) if kind in "zg" else part])
            size += len(part)
            if size >= CHUNK_FIELDS:
                yield chunk_keys, chunk_writes
                chunk_keys, chunk_writes, size = [], [], 0
    if chunk_keys:
        yield chunk_keys, chunk_writes
