"""
The store: Redis or Valkey through redis-py (:mod:`~hailwhale.store.client`, blocking,
for the daemon's thread pools and for ``Whale``), its scripts (``lua/``), the thread-pool
adapter for the reactor (:mod:`~hailwhale.store.threaded`) and the embedded Valkey server
(:mod:`~hailwhale.store.embedded`).
"""

from hailwhale.store.client import Applied, Store

__all__ = ["Applied", "Store"]
