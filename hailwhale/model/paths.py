"""
The string forms of pk and dimension paths, as the original encoded them.

A path is a tuple of names.  The root dimension ``()`` is ``_``, a path of one name is
that name, and a longer path is a JSON array with Python's default separators:
``["country", "US"]`` (as is a lone name starting with ``[``, so encodings never
collide).  These strings are the dimension keys of query responses and part of the
Redis key schema.
"""

import json

ROOT = ()
ROOT_ENCODING = "_"
ROOT_PARENT = ""  # the parent part of the root's own key (see hailwhale.model.keys)

Path = tuple[str, ...]


def encode(path: Path) -> str:
    """The canonical string form of ``path``."""
    if not path:
        return ROOT_ENCODING
    if len(path) == 1 and not path[0].startswith("["):
        return path[0]
    # a lone name that starts with [ is written as a list too, so it cannot pass for a path
    return json.dumps(list(path), ensure_ascii=False)


def decode(text: str) -> Path:
    """The path whose encoding is ``text`` (the inverse of :func:`encode`)."""
    if text == ROOT_ENCODING:
        return ROOT
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            return (text,)
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return tuple(value)
    return (text,)


def plain(path: Path) -> str | list[str]:
    """The path as the original's API returned it: a string, or a list of names."""
    if not path:
        return ROOT_ENCODING
    if len(path) == 1:
        return path[0]
    return list(path)


def parent_encoding(node: Path) -> str:
    """The encoding of ``node``'s parent: the part of the data key holding ``node``'s numbers."""
    return encode(node[:-1]) if node else ROOT_PARENT
