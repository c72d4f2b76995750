"""
The Redis key schema, in one place.

Every key of one pk carries the pk's hash tag, so a Redis Cluster keeps a pk in one
slot and each script call touches one slot only:

- ``hw:{<pk>}:d:<interval>:<bucket>:<parent>``: HASH, field ``<metric>|<node>``,
  value the bucket's total.  A node's numbers live in its parent's hash, so one hash
  holds a whole group of siblings (the shape a group-by reads).  The root ``_`` lives
  in the hash whose parent part is empty.
- ``hw:{<pk>}:sub:<node>``: SET of the encodings of the node's direct children.
- ``hw:{<pk>}:applied``: HASH of writer id to the last batch it applied (exactly-once).

``<pk>``, ``<node>`` and ``<parent>`` are :mod:`hailwhale.encoding` strings; the tag
escapes ``{``, ``}`` and ``%`` so that any pk makes a valid tag.
"""

from hailwhale.encoding import Path, encode

ROOT_PARENT = ""
FIELD_SEPARATOR = "|"


def tag(pk: Path) -> str:
    escaped = encode(pk).replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
    return "{" + escaped + "}"


def data_key(pk_tag: str, interval: int, bucket: int, parent_encoding: str) -> str:
    return f"hw:{pk_tag}:d:{interval}:{bucket}:{parent_encoding}"


def parent_encoding(node: Path) -> str:
    """The parent part of the data key holding ``node``'s numbers."""
    return encode(node[:-1]) if node else ROOT_PARENT


def field(metric: str, node_encoding: str) -> str:
    return metric + FIELD_SEPARATOR + node_encoding


def children_key(pk_tag: str, node_encoding: str) -> str:
    return f"hw:{pk_tag}:sub:{node_encoding}"


def applied_key(pk_tag: str) -> str:
    return f"hw:{pk_tag}:applied"
