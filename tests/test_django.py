"""hailwhale.contrib.django in a small project (tests/django_project), with django.test.Client against a real daemon."""

import html
import json
import re
import time
import urllib.parse
import urllib.request
import uuid

import django
import pytest
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="tests",
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=["django.contrib.contenttypes", "hailwhale.contrib.django", "tests.django_project"],
        MIDDLEWARE=["hailwhale.contrib.django.middleware.RequestCounting"],
        ROOT_URLCONF="tests.django_project.urls",
        DATABASES={},
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}],
        USE_TZ=True,
        HAILWHALE={"BACKEND": "null"},
    )
    django.setup()

from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client as DjangoClient
from django.test import override_settings

from hailwhale import testing
from hailwhale.contrib.django import backend, conf
from hailwhale.contrib.django.middleware import request_event
from hailwhale.testing.processes import Daemon
from tests.django_project.models import Customer, Order

READ = "r" * 32


def daemon_settings(daemon, **more) -> dict:
    return {"URL": daemon.base, "UDP": f"127.0.0.1:{daemon.udp_port}", **more}


def eventually(read, done, seconds: float = 30):
    """``read()`` once ``done(answer)`` (flushing the daemon between tries), else its last answer."""
    deadline = time.monotonic() + seconds
    while True:
        backend().flush()
        found = read()
        if done(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_a_request_is_counted_and_the_page_has_a_graph(daemon):
    """A page of the project counts its request (view, status class, duration), the order's sale, and shows a graph."""
    request_pk = f"django-{uuid.uuid4().hex[:8]}"
    with override_settings(HAILWHALE=daemon_settings(daemon, REQUEST_PK=request_pk)):
        response = DjangoClient().get("/orders/41/")
        page = response.content.decode()
        counted = eventually(
            lambda: backend().totals(request_pk, "view", ["hits", "ms"], ["today"], depth=2)["today"]["rows"],
            lambda rows: len(rows) == 3,
        )
        src = html.unescape(re.search(r"<script src='([^']+)'", page).group(1))
        with urllib.request.urlopen(src, timeout=30) as script:
            drawn = script.status
        order = Order(id=41, customer=Customer(id=7))

        assert (200, 200, 10.0, 5.0, 5.0) == (
            response.status_code,
            drawn,
            order.whale.total("revenue", period="today"),
            order.whale.related("customer").total("revenue", period="today"),
            Order.whale.total("revenue", "country", period="today"),
        )
        by_path = {json.dumps(row["path"]): row["metrics"] for row in counted}
        assert [["view"], ["view", "shop:order"], ["view", "shop:order", "2xx"]] == sorted(
            row["path"] for row in counted
        )
        assert (1.0, True) == (by_path['["view", "shop:order", "2xx"]']["hits"], by_path['["view"]']["ms"] > 0)
        assert src.startswith(f"{daemon.base}/graph.js?") and "pk=%5B%22shop.Order%22%2C%2241%22%5D" in src


def test_no_token_reaches_the_page(tmp_path):
    """With a read token, the graph tag carries a grant the daemon accepts for that graph, never the token."""
    server = testing.start_valkey()
    daemon = Daemon(tmp_path, "--redis", testing.valkey_url(server), "--collectd-port", "0", "--read-token", READ)
    try:
        with override_settings(HAILWHALE=daemon_settings(daemon, READ_TOKEN=READ, BACKEND="client")):
            page = DjangoClient().get("/orders/5/").content.decode()
            src = html.unescape(re.search(r"<script src='([^']+)'", page).group(1))
            grant = re.search(r"grant=([^&]+)", src).group(1)
            pk = urllib.parse.quote('["shop.Order","5"]')
            with urllib.request.urlopen(
                f"{daemon.base}/plotpoints?pk={pk}&metrics=revenue&period=seven&grant={grant}"
            ) as r:
                read = r.status

        assert (False, 200) == (READ in page, read)
    finally:
        daemon.kill()
        server.stop()


def test_the_memory_backend_remembers_what_was_counted():
    """BACKEND memory: a project's own tests see every count (the view's, the related one, the middleware's)."""
    with override_settings(HAILWHALE={"BACKEND": "memory", "REQUEST_PK": "site"}):
        DjangoClient().get("/orders/3/")
        counted = backend().counted

        assert [
            (["shop.Order", "3"], {"country": "US"}, {"revenue": 5}, "count_now"),
            (["shop.Order", "3"], {"shop.Customer": "7"}, {"revenue": 5}, "count_now"),
        ] == [(e.pk, e.dimensions, e.metrics, e.how) for e in counted[:2]]
        assert ("site", {"shop:order": "2xx"}, 10.0, 1.0) == (
            counted[2].pk,
            counted[2].dimensions["view"],
            Order(id=3).whale.total("revenue"),
            backend().total("site", dimension=["view", "shop:order", "2xx"]),
        )


def test_the_null_backend_counts_nothing():
    """BACKEND null: pages work, nothing is counted, reads are zero."""
    with override_settings(HAILWHALE={"BACKEND": "null"}):
        status = DjangoClient().get("/orders/3/").status_code

        assert (200, 0.0) == (status, Order(id=3).whale.total("revenue"))


def test_a_failing_view_is_counted_as_5xx():
    """A view that raises is counted with status 5xx; the middleware adds no error of its own."""
    with override_settings(HAILWHALE={"BACKEND": "memory"}):
        status = DjangoClient(raise_request_exception=False).get("/boom/").status_code
        unresolved = DjangoClient().get("/nowhere/").status_code

        assert (500, 404, [{"shop:boom": "5xx"}, {"_unresolved": "4xx"}]) == (
            status,
            unresolved,
            [e.dimensions["view"] for e in backend().counted],
        )


def test_counting_never_raises_into_the_request():
    """A daemon that is away: the page still answers (UDP is fire and forget)."""
    port = testing.free_port()
    with override_settings(HAILWHALE={"URL": f"http://127.0.0.1:{port}", "UDP": f"127.0.0.1:{port}"}):
        status = DjangoClient(raise_request_exception=False).get("/boom/")

    assert 500 == status.status_code


def test_the_setting_is_checked_at_start():
    """Django's system checks report each problem of HAILWHALE; `manage.py check` fails on them."""
    bad = {"URL": "ftp://x", "UDP": "nowhere", "BACKEND": "redis", "TIMEOUT": -1, "WRITE_TOKEN": "has space", "X": 1}
    with override_settings(HAILWHALE=bad):
        errors = [m for m in checks.run_checks() if m.id == "hailwhale.E001"]
        with pytest.raises(SystemCheckError):
            call_command("check")

    assert 6 == len(errors)


def test_good_settings_pass():
    """The documented keys pass the check."""
    good = {
        "URL": "http://hw:8085",
        "PUBLIC_URL": "https://hw.example",
        "UDP": "hw:8125",
        "READ_TOKEN": READ,
        "WRITE_TOKEN": "w" * 32,
        "TIMEOUT": 2,
        "BACKEND": "client",
        "REQUEST_PK": ["site", "web"],
        "MAX_DATAGRAM": 1400,
        "GRANT_SECONDS": 3600,
    }

    assert ([], "https://hw.example") == (conf.problems(good), conf.read(good).public_url)


def test_a_request_event():
    """The middleware's event: the view under view, the status class, the method; ms and ms.dist."""
    assert ({"view": {"shop:order": "2xx"}, "status": "2xx", "method": "GET"}, {"ms": 12.5, "ms.dist": 12.5}) == (
        request_event("shop:order", 204, "GET", 0.0125)
    )


def test_the_pixel_and_the_beacon_count(daemon):
    """The page's pixel URL counts when loaded; the beacon's sendBeacon (a text/plain POST of its body) counts too."""
    with override_settings(HAILWHALE=daemon_settings(daemon, BACKEND="client")):
        page = DjangoClient().get("/orders/8/").content.decode()
        pixel = html.unescape(re.search(r'<img src="([^"]+)"', page).group(1))
        beacon = re.search(r"<script>(.*?)</script>", page).group(1)
        decoder = json.JSONDecoder()
        arguments = beacon.split("})(", 1)[1]
        url, end = decoder.raw_decode(arguments)
        body, _ = decoder.raw_decode(arguments, end + 1)
        with urllib.request.urlopen(pixel, timeout=30) as answer:
            gif = answer.headers["Content-Type"]
        sent = urllib.request.Request(url, body.encode(), {"Content-Type": "text/plain;charset=UTF-8"}, method="POST")
        urllib.request.urlopen(sent, timeout=30).close()
        views = eventually(lambda: backend().total("shop", "views", period="today"), lambda found: found >= 1)
        pages = eventually(
            lambda: backend().total(["shop.Order", "8"], "hits", {"page": "order"}, "today"), lambda found: found >= 1
        )

    assert ("image/gif", 1.0, 1.0, False) == (gif, views, pages, "<" in beacon)
