"""
Lenient decoding of parameter text, as the original accepted it.

Values arrive as JSON, as Python-style literals (``['a', 'b']``, ``{"spent": .50}``)
or as bare strings.  Text that starts like a list or a dict must decode, or it is an
error; anything else that does not decode stays the string it was.
"""

import ast
import json
import math

_LITERAL_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


class LenientError(ValueError):
    """The text looks like a list or a dict but is neither JSON nor a Python literal."""


def decode(text: str) -> object:
    """
    Decode ``text`` if it looks like a literal; otherwise return it unchanged.
    """
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{\"'":
        return text
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        pass
    try:
        return _literal(ast.parse(stripped, mode="eval").body)
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError) as error:
        if stripped[0] in "[{":
            raise LenientError(f"cannot decode {_clip(stripped)!r}") from error
        return text


def _literal(node: ast.AST) -> object:
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
        return node.value
    if isinstance(node, ast.Name) and node.id in _LITERAL_NAMES:
        return _LITERAL_NAMES[node.id]
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):
            raise ValueError("dict unpacking is not a literal")
        return {_key(_literal(key)): _literal(value) for key, value in zip(node.keys, node.values) if key is not None}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _literal(node.operand)
        if isinstance(operand, bool) or not isinstance(operand, (int, float)):
            raise ValueError("a sign needs a number")
        return -operand if isinstance(node.op, ast.USub) else operand
    raise ValueError(f"{type(node).__name__} is not a literal")


def _key(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return json.dumps(value)
    raise ValueError("dict keys must be strings or numbers")


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
