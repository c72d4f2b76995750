"""
hailwhale: real-time counting of rolled-up, multi-dimensional metrics.

The original's names load on first use, so importing ``hailwhale`` (or
``hailwhale.client``) loads nothing else: ``from hailwhale import Whale`` (the blocking
API on the store), ``Hail`` and ``Client`` (a daemon over HTTP and UDP), ``periods``.
"""

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Whale": ("hailwhale.whale", "Whale"),
    "Hail": ("hailwhale.client", "Hail"),
    "Client": ("hailwhale.client", "Client"),
    "periods": ("hailwhale.query.periods", None),
}
__all__ = ["Client", "Hail", "Whale", "__version__", "periods"]


def __getattr__(name: str):
    if name == "HailWhale":
        raise AttributeError(
            "hailwhale.HailWhale (the original's model mixin) is not kept: use "
            "hailwhale.contrib.django.models.WhaleModel (order.whale.count_now(...), order.count_now_related(...))"
        )
    if name not in _LAZY:
        raise AttributeError(f"module 'hailwhale' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    return module if attribute is None else getattr(module, attribute)
