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
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import chain

import attrs
import redis
import redis.cluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from hailwhale.aggregate.rollup import TagWrite, WritePlan
from hailwhale.model import keys, kinds, sketch
from hailwhale.model.schema import Schema
from hailwhale.query import periods
from hailwhale.query.periods import Piece
from hailwhale.query.requests import Children, Group, Names, StoreUnavailable, SumPart, SumsRequest

CALL_FIELDS = 1_000  # members written per script call: short calls let queries in between
TAG_FIELDS = 4  # what a tag's own bookkeeping in a call costs, in members
CALLS_IN_FLIGHT = 100  # script calls handed to the connections at once (then their replies are read)
CALLS_PER_PART = 1 << 20
FOLD_NOTES = 200  # finest buckets folded per tag and call (whole buckets)
FOLD_TAGS = 20  # tags per fold call: a few milliseconds of the store's time
APPLIED_TOKEN_LIFE = 7 * 86400
INDEX_MARGIN = 3600  # index sets outlive their data by this much: a writer may skip rewriting them that long
SCHEMA_KEY = "hw:schema"
TIMEOUT = 5.0
UPGRADE_SECONDS = 86400  # the earlier layout's data may reach this far ahead (the default --max-future)
NEVER_WRITTEN = "1e300"  # the fold's reach in a store this layout never wrote: everything counts as folded
CLUSTER_RETRIES = 5  # tries of a call on a cluster, the slot map refreshed before each next one
# a slot moved or moving, a node away, the cluster down or a slot no node serves: sent again
# once the slot map is refreshed.  The cluster's refusals are ResponseErrors in redis-py,
# so a reply is checked against these first: they never mean the store refused a write for good.
RETRIED = (
    redis.exceptions.MovedError,
    redis.exceptions.AskError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.SlotNotCoveredError,
    redis.ConnectionError,
    redis.TimeoutError,
)


@attrs.define
class Applied:
    repeats: int = 0  # calls the store had already applied (a retry after a lost reply)
    refused: list = attrs.field(factory=list)  # (pk, error) of tag writes the store refused for good
    tags: dict[str, tuple[int, int]] = attrs.field(factory=dict)  # tag -> (oldest, newest) finest bucket written


@attrs.define
class Folded:
    notes: int = 0  # finest buckets folded (per metric and parent)
    refused: list = attrs.field(factory=list)  # (tag, error) of folds the store refused for good


@attrs.define
class _Call:
    """One apply-script call: tags of one cluster slot, the first one's token key guarding it."""

    first_tag: str
    flat: list = attrs.field(factory=list)  # the tags' writes, as apply.lua reads them
    buckets: dict[str, tuple[int, int]] = attrs.field(factory=dict)  # tag -> (oldest, newest) bucket written
    members: int = 0


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
        self._cluster = isinstance(client, redis.cluster.RedisCluster)
        self._apply = client.register_script(lua("apply"))
        self._fold = client.register_script(lua("fold"))
        self._sums = client.register_script(lua("sums"))
        self._uniques = client.register_script(lua("uniques"))
        self._group = client.register_script(lua("group"))
        self._quantiles = client.register_script(lua("quantiles"))
        self._levels = client.register_script(lua("levels"))
        self._layout: int | None = None

    @classmethod
    def connect(cls, url: str, cluster: bool = False, timeout: float = TIMEOUT) -> "Store":
        return cls(connect(url, cluster, timeout), url)

    def close(self) -> None:
        self._client.close()

    def ping(self) -> bool:
        return bool(self._client.ping())

    # -- writing ------------------------------------------------------------------------

    def apply(self, plan: WritePlan, seq: int, done: set[int]) -> Applied:
        """
        Apply every script call of ``plan`` not already in ``done`` (call numbers), adding
        each to it once the store has taken it.  The calls (several tags each, of one
        cluster slot, a bounded number of members) go out pipelined, about
        :data:`CALL_FIELDS` members in a pipeline (see :meth:`_execute`), each atomic and
        applied once: a call carries a token, and the store skips a token it has seen.
        Raises if the store could not be reached, leaving ``done`` as far as it got, so a
        retry resends only the rest.  A write the store refuses for good (a key of ours
        holding foreign data) is skipped and reported; the rest of its call applies.
        """
        result = Applied()
        calls = _calls(plan, self._slot)
        pks = {write.tag: write.pk for write in plan.writes}
        header = [
            plan.now,
            self._layout_since(plan.finest.interval) - 1,
            plan.finest.interval,
            plan.finest.retention,
            json.dumps([[size.interval, size.retention] for size in plan.folded]),
        ]
        pending = [(index, call) for index, call in enumerate(calls) if index not in done]
        for start in range(0, len(pending), CALLS_IN_FLIGHT):
            group = pending[start : start + CALLS_IN_FLIGHT]
            replies = self._execute(
                [
                    (
                        keys.applied_key(call.first_tag, self.writer_id),
                        [
                            seq * CALLS_PER_PART + index,
                            APPLIED_TOKEN_LIFE,
                            *header,
                            json.dumps(call.flat),
                            INDEX_MARGIN,
                        ],
                    )
                    for index, call in group
                ],
                self._apply,
                weights=[call.members for _, call in group],
                most=CALL_FIELDS,
            )
            failure, untaken = None, 0
            for (index, call), reply in zip(group, replies):
                if isinstance(reply, RETRIED) or (
                    isinstance(reply, Exception) and not isinstance(reply, redis.ResponseError)
                ):
                    failure, untaken = failure or reply, untaken + 1
                    continue
                if isinstance(reply, redis.ResponseError):
                    result.refused += [(pks[tag], str(reply)) for tag in call.buckets]
                else:
                    result.repeats += 1 - int(reply[0])
                    rest = iter(reply[1:])
                    result.refused += [(pks[tag.decode()], message.decode()) for tag, message in zip(rest, rest)]
                    for tag, (oldest, newest) in call.buckets.items():
                        known = result.tags.get(tag)
                        result.tags[tag] = (
                            (oldest, newest) if known is None else (min(known[0], oldest), max(known[1], newest))
                        )
                done.add(index)
            if failure is not None:
                raise redis.ConnectionError(
                    f"the store did not take {untaken} of {len(group)} script calls "
                    f"({type(failure).__name__}: {failure}); they are sent again on the next try"
                ) from failure
        return result

    def _execute(self, calls: list[tuple[str, list]], script, weights: Sequence[int], most: int) -> list:
        """
        Run script calls of ``script``, each ``(first key,
        args)``; a reply or the exception per call.  Pipelined, each node's calls (all of
        them on a single server; on a cluster, those of the slots the node serves) in
        pipelines whose ``weights`` add up to ``most`` at most, one call at least: Valkey runs
        a client's pipelined calls back to back, so a long pipeline keeps every other client
        (a query) waiting; a pipeline that cannot reach its node leaves the node's later calls
        unsent, with its error.  A call the cluster answers with a redirection (``MOVED``,
        ``ASK``, ``TRYAGAIN``: a slot moved or moving) or whose node could not be reached is
        sent again once the slot map is refreshed, up to :data:`CLUSTER_RETRIES` tries in
        all (about half a second of waits between them); its token keeps it from counting
        twice if the first try went through after all.  A call still not taken after that
        has the last error as its reply.
        """
        if not self._cluster:
            return _send(self._client, calls, script, weights, most)
        replies: list = [None] * len(calls)
        pending = list(range(len(calls)))
        for attempt in range(CLUSTER_RETRIES):
            by_node: dict[str, tuple] = {}
            again = []
            for index in pending:
                try:
                    node = self._client.get_node_from_key(calls[index][0])
                except redis.exceptions.SlotNotCoveredError as error:  # the map we have names no node for it
                    replies[index] = error
                    again.append(index)
                    continue
                by_node.setdefault(node.name, (node, []))[1].append(index)
            for node, indexes in by_node.values():
                results = _send(
                    node.redis_connection,
                    [calls[index] for index in indexes],
                    script,
                    [weights[index] for index in indexes],
                    most,
                )
                for index, reply in zip(indexes, results):
                    replies[index] = reply
                    if isinstance(reply, RETRIED):
                        again.append(index)
            if not again or attempt == CLUSTER_RETRIES - 1:
                break
            pending = again
            time.sleep(0.05 * (attempt + 1))
            try:
                self._client.nodes_manager.initialize()
            except (redis.RedisError, redis.exceptions.RedisClusterException):
                pass  # no node answered, or the slots are not all served: the next try tells
        return replies

    def fold(self, tags: Iterable[str], target: int, now: float, schema: Schema) -> Folded:
        """
        Fold every finest bucket of ``tags`` up to ``target`` (noted as written, not yet
        folded) into the coarser sizes, until none is left; each fold call is atomic and
        folds a bucket once.  Raises if the store could not be reached (what was folded
        stays folded; the rest is folded by the next call).
        """
        result = Folded()
        header = {
            "target": target,
            "now": now,
            "since": self._layout_since(schema.finest.interval) - 1,
            "most": FOLD_NOTES,
            "finest": [schema.finest.interval, schema.finest.retention],
            "folded": [[size.interval, size.retention] for size in schema.stored[1:]],
        }
        by_slot: dict[int, list[str]] = {}
        for tag in sorted(set(tags)):
            by_slot.setdefault(self._slot(tag), []).append(tag)
        queue = [group[i : i + FOLD_TAGS] for group in by_slot.values() for i in range(0, len(group), FOLD_TAGS)]
        while queue:
            group, queue = queue[:CALLS_IN_FLIGHT], queue[CALLS_IN_FLIGHT:]
            replies = self._execute(
                [(keys.folded_key(batch[0]), [json.dumps({**header, "tags": batch})]) for batch in group],
                self._fold,
                weights=[len(batch) for batch in group],
                most=FOLD_TAGS,
            )
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
                result.notes += int(reply[0])
                rest = [item.decode() for item in reply[1:]]
                split = rest.index("")
                if rest[:split]:
                    queue.append(rest[:split])
                pairs = iter(rest[split + 1 :])
                result.refused += list(zip(pairs, pairs))
        return result

    def dirty_tags(self) -> set[str]:
        """The tags that have finest buckets noted and not folded (a scan: for a start after a crash)."""
        found = set()
        for key in self._client.scan_iter(match="hw:*:dirty", count=1000):
            text = key.decode("utf-8")
            found.add(text[len("hw:") : -len(":dirty")])
        return found

    def _layout_since(self, finest: int) -> int:
        """
        The first finest bucket this layout writes live, recorded once: every bucket before
        it was written into every size at once.  On an empty store that is the current one
        (by the store's clock); on a store an earlier version wrote, the one a day after
        the current one (:data:`UPGRADE_SECONDS`), since that version may have written
        buckets up to a day ahead (events timed in the future), and those are in every size
        already.
        """
        if self._layout is None:
            recorded = self._client.get(keys.LAYOUT_KEY)
            if recorded is None:
                seconds, _ = self._client.time()
                earlier = any(True for _ in self._client.scan_iter(match="hw:{*", count=1000))
                since = int(seconds) // finest * finest + (finest + UPGRADE_SECONDS if earlier else 0)
                self._client.set(keys.LAYOUT_KEY, since, nx=True)
                recorded = self._client.get(keys.LAYOUT_KEY)
            self._layout = int(recorded)
        return self._layout

    def _reach_default(self) -> str:
        """The fold's reach for a tag never folded: the layout's start, or everything if this layout never wrote."""
        if self._layout is None:
            recorded = self._client.get(keys.LAYOUT_KEY)
            if recorded is None:
                return NEVER_WRITTEN
            self._layout = int(recorded)
        return str(self._layout - 1)

    def _slot(self, tag: str) -> int:
        return self._client.keyslot(tag) if self._cluster else 0

    # -- reading ------------------------------------------------------------------------

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
        except (redis.RedisError, redis.exceptions.RedisClusterException) as error:
            raise StoreUnavailable(f"{type(error).__name__}: {error}") from error
        raise TypeError(f"not a store request: {request!r}")

    def sums(self, request: SumsRequest) -> list[list[float]]:
        tag = keys.tag(request.pk)
        replies: list = [None] * len(request.parts)
        scored = [(index, part) for index, part in enumerate(request.parts) if part.kind in (kinds.SUM, kinds.GAUGE)]
        counted = [(index, part) for index, part in enumerate(request.parts) if part.kind == kinds.UNIQUE]
        quantiled = [(index, part) for index, part in enumerate(request.parts) if part.kind == kinds.QUANTILE]

        def read_scored(parts: list[SumPart]):
            data_keys: list[str] = [keys.folded_key(tag)]
            args: list = [self._reach_default(), _needed(parts), len(parts)]
            for part in parts:
                args += [len(part.members), *part.members, len(part.pieces), 1 if part.kind == kinds.GAUGE else 0]
                args += [_flag(piece) for piece in part.pieces]
                data_keys += [keys.data_key(tag, p.size, p.start, part.metric, part.parent) for p in part.pieces]
            return self._sums(keys=data_keys, args=args)

        def read_counted(parts: list[SumPart]):
            unique_keys = [keys.folded_key(tag)]
            args: list = [self._reach_default(), _needed(parts), sum(len(part.members) for part in parts)]
            for part in parts:
                for member in part.members:
                    args += [len(part.pieces), *(_flag(piece) for piece in part.pieces)]
                    unique_keys += [keys.unique_key(tag, p.size, p.start, part.metric, member) for p in part.pieces]
            return self._uniques(keys=unique_keys, args=args)

        def read_quantiles(parts: list[SumPart]):
            # one read per sketch set (distribution, node, pieces), answering every quantile asked of it
            reads: dict[tuple, list[float]] = {}
            for part in parts:
                distribution, q = kinds.quantile_of(part.metric) or (part.metric, 0.0)
                for member in part.members:
                    reads.setdefault((distribution, member, part.pieces), []).append(q)
            sketch_keys = [keys.folded_key(tag)]
            args: list = [self._reach_default(), _needed(parts), repr(sketch.GAMMA), len(reads)]
            for (distribution, member, pieces), qs in reads.items():
                args += [len(qs), *(repr(q) for q in qs), len(pieces), *(_flag(piece) for piece in pieces)]
                sketch_keys += [keys.sketch_key(tag, p.size, p.start, distribution, member) for p in pieces]
            values = self._quantiles(keys=sketch_keys, args=args)
            if values and values[0] == b"stale":
                return values
            answers = iter(values)
            taken = {read: iter([float(next(answers)) for _ in qs]) for read, qs in reads.items()}
            answered = []
            for part in parts:
                distribution = (kinds.quantile_of(part.metric) or (part.metric, 0.0))[0]
                answered.append([next(taken[(distribution, member, part.pieces)]) for member in part.members])
            return answered

        if quantiled:
            answered = iter(_until_reached(read_quantiles, [part for _, part in quantiled]))
            for (index, _), values in zip(quantiled, answered):
                replies[index] = values
        if scored:
            answer = _until_reached(read_scored, [part for _, part in scored])
            for (index, _), reply in zip(scored, answer):
                replies[index] = [float(value) for value in reply]
        if counted:
            counts = iter(_until_reached(read_counted, [part for _, part in counted]))
            for index, part in counted:
                replies[index] = [float(next(counts)) for _ in part.members]
        return replies

    def group(self, request: Group) -> tuple[int, list[str], dict[str, list[float]]]:
        tag = keys.tag(request.pk)
        metrics = list(request.metrics)
        for name in (request.numerator, request.denominator, request.presence):
            if name is not None and name not in metrics:
                metrics.append(name)
        position = {metric: index + 1 for index, metric in enumerate(metrics)}

        def read(requests: list[Group]):
            (asked,) = requests
            data_keys = [
                keys.data_key(tag, p.size, p.start, metric, asked.parent) for metric in metrics for p in asked.pieces
            ]
            args = [
                len(asked.pieces),
                len(metrics),
                position[asked.numerator],
                position[asked.denominator] if asked.denominator else 0,
                position[asked.presence],
                1 if asked.descending else 0,
                asked.limit,
                self._reach_default(),
                _needed([asked]),
                *(_flag(piece) for piece in asked.pieces),
            ]
            children = keys.children_key(tag, asked.parent)
            return self._group(keys=[*data_keys, children, keys.folded_key(tag)], args=args)

        found, chosen, *sums = _until_reached(read, [request])
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

    def settle_levels(
        self, series: Mapping[str, Sequence[tuple[str, Sequence[tuple]]]], seq: int, keep_seconds: int
    ) -> dict[str, list[list[float]]]:
        """
        Apply batch ``seq``'s gauge steps to the levels the store holds: ``series`` by pk
        tag, each (name, steps), a step ending with (is a change, value); the level after
        each step, in the same shape.  A batch already applied answers as it did then.
        """
        found = {}
        for tag, named in series.items():
            call_keys = [keys.levels_token_key(tag, self.writer_id)]
            args: list = [seq, keep_seconds]
            for name, steps in named:
                call_keys.append(keys.level_key(tag, name))
                args.append(len(steps))
                for *_, change, value in steps:
                    args.extend((1 if change else 0, repr(float(value))))
            answer = self._levels(keys=call_keys, args=args)
            found[tag] = [[float(value) for value in levels] for levels in answer]
        return found

    def publish_worker(self, group: str, index: int, text: str, keep_seconds: int = 60) -> dict[int, str]:
        """
        Publish a worker's self-stats ``text`` under its ``group`` (the key kept
        ``keep_seconds`` after the last); every worker's of the group, by index.
        """
        key = keys.workers_key(group)
        pipe = self._client.pipeline(transaction=False)
        pipe.hset(key, str(index), text)
        pipe.expire(key, keep_seconds)
        pipe.hgetall(key)
        *_, published = pipe.execute()
        return {int(field): value.decode("utf-8") for field, value in published.items()}


def _flag(piece: Piece) -> str:
    """How a script reads a piece: always ('-'), or only while its finest bucket is not folded (the bucket)."""
    return str(piece.start) if piece.unless_folded else "-"


def _needed(requests) -> str:
    """The fold's reach the pieces of ``requests`` need ('' if none)."""
    needed = [reach for request in requests if (reach := periods.fold_needed(list(request.pieces))) is not None]
    return str(max(needed)) if needed else ""


def _until_reached(read, requests: list):
    """
    ``read(requests)``; if the store answers that the pk's fold is behind what the pieces
    need, read again with the finest pieces from where the fold has reached.
    """
    for _ in range(3):
        reply = read(requests)
        if not (reply and reply[0] == b"stale"):
            return reply
        reach = int(reply[1])
        requests = [
            attrs.evolve(request, pieces=tuple(_from_reach(list(request.pieces), reach))) for request in requests
        ]
    raise StoreUnavailable("the fold of this pk kept moving while it was read")


def _from_reach(pieces: list[Piece], reach: int) -> list[Piece]:
    finest = next((piece.finest for piece in pieces if piece.finest is not None), None)
    if finest is None:
        return pieces
    return periods.with_unfolded(pieces, reach // finest * finest + finest, 0)


def _send(connection, calls: list[tuple[str, list]], script, weights: Sequence[int], most: int) -> list:
    """
    ``calls`` through one node's ``connection``, in pipelines of ``weights`` adding up to
    ``most`` at most (one call at least); a reply or the exception per call.  Once a
    pipeline cannot reach the node, the calls after it are not sent: its error is theirs.
    """
    replies: list = []
    start = 0
    while start < len(calls):
        end = _pipeline_end(weights, start, most)
        pipe = connection.pipeline(transaction=False)
        for first_key, args in calls[start:end]:
            script(keys=[first_key], args=args, client=pipe)
        try:
            replies += pipe.execute(raise_on_error=False)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            return replies + [error] * (len(calls) - start)
        start = end
    return replies


def _pipeline_end(weights: Sequence[int], start: int, most: int) -> int:
    """Where the pipeline from ``start`` ends: its ``weights`` add up to ``most`` at most, one at least."""
    total = 0
    for end in range(start, len(weights)):
        total += weights[end]
        if total > most and end > start:
            return end
    return len(weights)


def _calls(plan: WritePlan, slot_of: Callable[[str], int]) -> list[_Call]:
    """
    The apply-script calls of ``plan``: its tags grouped by cluster slot, each call
    holding about :data:`CALL_FIELDS` members (a large tag goes in several calls).
    The same plan always makes the same calls, so a retry's tokens match.
    """
    calls: list[_Call] = []
    by_slot: dict[int, list[TagWrite]] = {}
    for write in plan.writes:
        by_slot.setdefault(slot_of(write.tag), []).append(write)
    for writes in by_slot.values():
        call: _Call | None = None
        for write in writes:
            tag = write.tag
            for flat, members, span in _pieces_of(write):
                if call is None or call.members >= CALL_FIELDS:
                    call = _Call(tag)
                    calls.append(call)
                call.flat += flat
                call.members += members + TAG_FIELDS
                if span is not None:
                    known = call.buckets.get(tag)
                    call.buckets[tag] = span if known is None else (min(known[0], span[0]), max(known[1], span[1]))
    return calls


def _pieces_of(write: TagWrite) -> Iterator[tuple[list, int, tuple[int, int] | None]]:
    """
    ``write`` flattened as apply.lua reads it (see there), in pieces of about
    :data:`CALL_FIELDS` members: (flat list, members, (oldest, newest) bucket written or None) each.
    """
    piece = _Piece(write.tag)
    for section, bucket, fields, members in _cells_of(write):
        piece.cell(section, bucket, fields, members)
        if piece.members >= CALL_FIELDS:
            yield piece.flat()
            piece = _Piece(write.tag)
    if piece.members:
        yield piece.flat()


def _cells_of(write: TagWrite) -> Iterator[tuple[int, int | None, tuple, int]]:
    """``write``'s cells in apply.lua's sections: (section, bucket or None, the cell's other fields, members)."""
    for section, cells in ((0, write.sums), (1, write.levels), (4, write.samples)):
        for (bucket, metric, parent), amounts in cells.items():
            yield section, bucket, (metric, parent, len(amounts), *chain.from_iterable(amounts.items())), len(amounts)
    for (bucket, metric, node), names in write.uniques.items():
        yield 2, bucket, (metric, node, len(names), *sorted(names)), len(names)
    for suffix, names in write.sets.items():
        ordered = sorted(names)
        for start in range(0, len(ordered), CALL_FIELDS):  # a large set (50,000 new pks) in several calls
            chunk = ordered[start : start + CALL_FIELDS]
            yield 3, None, (suffix, len(chunk), *chunk), len(chunk)


class _Piece:
    """One piece of a tag's write being flattened: apply.lua's five sections, each a cell count and its fields."""

    __slots__ = ("counts", "fields", "members", "newest", "oldest", "tag")

    def __init__(self, tag: str):
        self.tag = tag
        self.counts = [0, 0, 0, 0, 0]
        self.fields: list[list] = [[], [], [], [], []]
        self.members = 0
        self.oldest: int | None = None
        self.newest: int | None = None

    def cell(self, section: int, bucket: int | None, rest: tuple, members: int) -> None:
        """Add a cell of ``members`` (``bucket`` then ``rest``; an index set has no bucket) to ``section``."""
        self.counts[section] += 1
        self.members += members
        fields = self.fields[section]
        if bucket is not None:
            fields.append(bucket)
            if self.oldest is None or bucket < self.oldest:
                self.oldest = bucket
            if self.newest is None or bucket > self.newest:
                self.newest = bucket
        fields += rest

    def flat(self) -> tuple[list, int, tuple[int, int] | None]:
        flat: list = [self.tag]
        for count, fields in zip(self.counts, self.fields):
            flat.append(count)
            flat += fields
        span = None if self.oldest is None or self.newest is None else (self.oldest, self.newest)
        return flat, self.members, span
