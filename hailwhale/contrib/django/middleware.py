"""
Counting every request: under ``HAILWHALE['REQUEST_PK']`` (default ``django``), with the
view's name, the status class and the method as dimensions, and the duration in
milliseconds (``ms``, so ``ms/hits`` is the mean, and ``ms.dist`` for ``ms:p99``)::

    {"view": {"shop:order": "2xx"}, "status": "2xx", "method": "GET"}   {"ms": 12.5, "ms.dist": 12.5}

Counted over UDP after the response is made: it never waits for the daemon, and a failure
to count is logged, never raised into the request.  Put it first in ``MIDDLEWARE`` to time
the other middleware too.
"""

import logging
import time

from hailwhale.contrib.django import backend

log = logging.getLogger("hailwhale.contrib.django")
UNRESOLVED = "_unresolved"  # requests no URL pattern matched (404s)


def request_event(view: str, status: int, method: str, seconds: float) -> tuple[dict, dict]:
    """The dimensions and metrics of one request."""
    status_class = f"{status // 100}xx"
    milliseconds = round(seconds * 1000, 3)
    return (
        {"view": {view: status_class}, "status": status_class, "method": method},
        {"ms": milliseconds, "ms.dist": milliseconds},
    )


class RequestCounting:
    sync_capable = True
    async_capable = False

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        try:
            match = getattr(request, "resolver_match", None)
            view = (match.view_name or match._func_path) if match is not None else UNRESOLVED
            dimensions, metrics = request_event(
                view, response.status_code, request.method, time.perf_counter() - started
            )
            counting = backend()
            counting.count(counting.settings.request_pk, dimensions, metrics)
        except Exception:
            log.exception("could not count the request")
        return response
