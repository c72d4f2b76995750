"""
The Redis store, on redis-py: one module for the daemon and the blocking Python API.

Blocking calls only; the daemon runs them in a thread pool.  Every call touches the
keys of one pk hash tag, so the same code runs on a single server or a Redis Cluster.
Writes go through one Lua script per tag (and per chunk of a large tag) that applies
all increments, set members and expiries atomically, and only once: it records the
writer's batch token in the same slot and ignores a token it has already seen.  The
scripts are the package's ``lua/*.lua`` files, read when a Store is made.  A query the
store cannot answer raises :class:`~hailwhale.query.requests.StoreUnavailable`.
"""

import importlib.resources
import json
import secrets
from collections.abc import Iterable

import attrs
import redis
import redis.cluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from hailwhale.aggregate.rollup import TagWrite, WritePlan
from hailwhale.model import keys, kinds
from hailwhale.model.paths import Path
from hailwhale.query.requests import Children, Group, Names, StoreUnavailable, SumsRequest

CHUNK_FIELDS = 10_000
PIPELINED_TAGS = 200
CHUNKS_PER_BATCH = 1 << 16
APPLIED_TOKEN_LIFE = 7 * 86400
SCHEMA_KEY = "hw:schema"
TIMEOUT = 5.0


@attrs.define
class Applied:
    repeats: int = 0  # chunks the store had already applied (a retry after a lost reply)
    refused: list = attrs.field(factory=list)  # (pk, error) of tag writes the store refused for good


def lua(name: str) -> str:
    """The text of the script ``lua/<name>.lua`` shipped with the package."""
    return importlib.resources.files(__package__).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


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
        self._apply = client.register_script(lua("apply"))
        self._sums = client.register_script(lua("sums"))
        self._uniques = client.register_script(lua("uniques"))
        self._group = client.register_script(lua("group"))

    @classmethod
    def connect(cls, url: str, cluster: bool = False, timeout: float = TIMEOUT) -> "Store":
        return cls(connect(url, cluster, timeout), url)

    def close(self) -> None:
        self._client.close()

    def ping(self) -> bool:
        return bool(self._client.ping())

    def apply(self, plan: WritePlan, seq: int, done: set[Path]) -> Applied:
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
            calls = [
                [(applied, chunk) for chunk in chunks]
                for applied, chunks in (
                    (keys.applied_key(w.tag, self.writer_id), list(_script_calls(w, seq))) for w in group
                )
            ]
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
        """Answer one query request (see :mod:`hailwhale.query.requests`)."""
        try:
            if isinstance(request, SumsRequest):
                return self.sums(request)
            if isinstance(request, Group):
                return self.group(request)
            if isinstance(request, Children):
                return self.children_of(request)
            if isinstance(request, Names):
                return self.names(request)
        except redis.RedisError as error:
            raise StoreUnavailable(f"{type(error).__name__}: {error}") from error
        raise TypeError(f"not a store request: {request!r}")

    def sums(self, request: SumsRequest) -> list[list[float]]:
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
            unique_keys = [
                keys.unique_key(tag, p.size, p.start, part.metric, member)
                for _, part in counted
                for member in part.members
                for p in part.pieces
            ]
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
        data_keys = [
            keys.data_key(tag, p.size, p.start, metric, request.parent) for metric in metrics for p in request.pieces
        ]
        position = {metric: index + 1 for index, metric in enumerate(metrics)}
        args = [
            len(request.pieces),
            len(metrics),
            position[request.numerator],
            position[request.denominator] if request.denominator else 0,
            position[request.presence],
            1 if request.descending else 0,
            request.limit,
        ]
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

    def names(self, request: Names) -> tuple[int, list[str]]:
        """A pk's index of child pks or metric names: its size, and up to ``most`` of its names, sorted."""
        key = {"pks": keys.pks_key, "metrics": keys.metric_names_key}[request.index](keys.tag(request.pk))
        size = self._client.scard(key)
        if size <= request.most:
            found = self._client.smembers(key)
        else:  # a huge index is not read whole: the first names a scan gives
            found = set()
            for member in self._client.sscan_iter(key, count=1000):
                found.add(member)
                if len(found) >= request.most:
                    break
        return size, sorted(member.decode("utf-8") for member in found)[: request.most]

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
    parts: list[tuple[str, str, list]] = [
        ("z", key, list(amounts.items())) for key, amounts in write.increments.items()
    ]
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
