"""
The store on the reactor's side: blocking store calls run in a named thread pool and
answer with Deferreds (the ``twisted.enterprise.adbapi`` pattern).
"""

from collections.abc import Callable

from twisted.internet import defer, threads
from twisted.python.threadpool import ThreadPool

from hailwhale.query import requests

Runner = Callable[..., defer.Deferred]


def in_pool(reactor, pool: ThreadPool) -> Runner:
    """A runner: ``run(function, *args)`` calls ``function`` in ``pool`` and fires with its result."""
    return lambda function, *args: threads.deferToThreadPool(reactor, pool, function, *args)


class Reader:
    """Runs query plans against the store with ``run`` (a thread pool's runner)."""

    def __init__(self, store, run: Runner):
        self._store = store
        self._run = run

    def answer(self, plan: requests.Plan) -> defer.Deferred:
        return self._run(requests.run, plan, self._store)
