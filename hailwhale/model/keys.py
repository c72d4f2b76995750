"""
The Redis key schema, in one place.

Every key of one pk carries the pk's hash tag, so a Redis Cluster keeps a pk in one
slot and each script call touches one slot only:

- ``hw:{<pk>}:z:<size>:<bucket>:<metric>:<parent>``: ZSET, member ``<node>``, score
  the node's total of the metric in the bucket (of ``size`` seconds, starting at epoch
  second ``bucket``).  A node's numbers live in its parent's sets, so one set holds a
  whole group of siblings: the shape a group-by reads, and sums on the server with
  ZUNION.  The root ``_`` lives in the sets whose parent part is empty.  For a gauge
  (``*.gauge``) the score is the last value reported in the bucket, not a sum.
- ``hw:{<pk>}:u:<size>:<bucket>:<metric>:<node>``: HyperLogLog of the members of a
  unique count (``*.unique``) at one node in one bucket.
- ``hw:{<pk>}:d:<size>:<bucket>:<metric>:<node>``: ZSET, the sketch of a distribution
  (``*.dist``) at one node in one bucket: member the sketch bucket
  (:mod:`hailwhale.model.sketch`), score its count.
- ``hw:{<pk>}:sub:<node>``: SET of the encodings of the node's direct children.
- ``hw:{<pk>}:pks``: SET of the last names of the pk's direct child pks (``123`` under
  ``Product`` for ``["Product", "123"]``); the top-level pks are in ``hw:{%}:pks``, under
  the tag of the root of the pk tree, which no pk has (a pk's ``%`` is escaped).
- ``hw:{<pk>}:metrics``: SET of the metric names counted under the pk.
- ``hw:{<pk>}:applied:<writer>``: STRING, the last batch token that writer applied under
  the tag (exactly-once); it expires a week after the writer's last write.
- ``hw:{<pk>}:dirty``: ZSET of the finest buckets written and not yet folded into the
  coarser sizes, member ``<kind>|<bucket>|<metric>|<parent or node>``, score the bucket.
- ``hw:{<pk>}:folded``: STRING, the last finest bucket folded: every finest bucket up to
  it is in the coarser sizes too.  Without it, :data:`LAYOUT_KEY`'s moment stands in.
- :data:`LAYOUT_KEY` (``hw:layout``): STRING, the first finest bucket this layout wrote
  live; the buckets before it were written into every size at once (by earlier versions,
  or as late events), so they count as folded.

- ``hw:amqp:{<queue>}:batch`` and ``hw:amqp:{<queue>}:holder``: STRINGs, the record of
  a RabbitMQ stream's batches (JSON) and the lease of the daemon reading it (see
  :mod:`hailwhale.store.stream_log`); their writes go under writer ids ``amqp-<epoch>``.

- ``hw:{<pk>}:level:<series>``: STRING, the level of a gauge series (``<series>``: the
  metric and the leaves, as JSON), which statsd's relative gauges change; kept as long as
  the longest retention after its last write.  ``hw:{<pk>}:levels:<writer>``: STRING, the
  last batch (and its answer) that writer applied to the levels under the tag.
- ``hw:workers:<group>``: HASH, with ``--workers``, each worker's self-stats (JSON) by
  its index, published every flush interval; the key expires a minute after the last.

``<pk>``, ``<node>`` and ``<parent>`` are :mod:`hailwhale.model.paths` strings; the tag
escapes ``{``, ``}`` and ``%`` so that any pk makes a valid tag.  The indexes (children,
pks, metric names) are written with the data they index and live as long as it.
"""

import functools

from hailwhale.model.paths import Path, encode

ROOT_TAG = "{%}"  # the root of the pk tree: its children are the top-level pks


@functools.lru_cache(maxsize=1 << 16)
def tag(pk: Path) -> str:
    """
    The hash tag of ``pk``'s keys (``()``, the root of the pk tree, has :data:`ROOT_TAG`);
    remembered for the most recent pks: a flush asks for each pk's tag many times.
    """
    if not pk:
        return ROOT_TAG
    escaped = encode(pk).replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
    return "{" + escaped + "}"


def data_key(pk_tag: str, size: int, bucket: int, metric: str, parent_encoding: str) -> str:
    return f"hw:{pk_tag}:z:{size}:{bucket}:{metric}:{parent_encoding}"


def unique_key(pk_tag: str, size: int, bucket: int, metric: str, node_encoding: str) -> str:
    return f"hw:{pk_tag}:u:{size}:{bucket}:{metric}:{node_encoding}"


CHILDREN, PKS, METRIC_NAMES = "sub:", "pks", "metrics"  # the index sets' key suffixes


def children_key(pk_tag: str, node_encoding: str) -> str:
    return f"hw:{pk_tag}:{CHILDREN}{node_encoding}"


def applied_key(pk_tag: str, writer_id: str) -> str:
    return f"hw:{pk_tag}:applied:{writer_id}"


LAYOUT_KEY = "hw:layout"


def level_key(pk_tag: str, series: str) -> str:
    return f"hw:{pk_tag}:level:{series}"


def levels_token_key(pk_tag: str, writer_id: str) -> str:
    return f"hw:{pk_tag}:levels:{writer_id}"


def workers_key(group: str) -> str:
    return f"hw:workers:{group}"


def sketch_key(pk_tag: str, size: int, bucket: int, metric: str, node_encoding: str) -> str:
    return f"hw:{pk_tag}:d:{size}:{bucket}:{metric}:{node_encoding}"


def dirty_key(pk_tag: str) -> str:
    return f"hw:{pk_tag}:dirty"


def folded_key(pk_tag: str) -> str:
    return f"hw:{pk_tag}:folded"


def pks_key(pk_tag: str) -> str:
    return f"hw:{pk_tag}:{PKS}"


def metric_names_key(pk_tag: str) -> str:
    return f"hw:{pk_tag}:{METRIC_NAMES}"


def stream_record_key(queue: str) -> str:
    return f"hw:amqp:{tag((queue,))}:batch"


def stream_holder_key(queue: str) -> str:
    return f"hw:amqp:{tag((queue,))}:holder"
