"""
``{% load hailwhale %}``: what pages embed.  No token ever reaches the page: pixels and
beacons use ``/count.gif`` (always open), graphs carry a read grant for that graph alone,
minted here with ``HAILWHALE['READ_TOKEN']``.

- ``{% hailwhale_pixel pk dimensions metrics %}``: a 1x1 ``<img>`` that counts when loaded;
- ``{% hailwhale_beacon pk dimensions metrics %}``: a ``<script>`` that counts with
  ``navigator.sendBeacon`` (an image where there is none);
- ``{% hailwhale_graph pk dimension metric period="seven" depth=1 %}``: a live graph, the
  original's ``graph_tag``.

``pk`` is a pk (``"shop"``, ``["shop", "web"]``) or a model instance (its
``[model label, pk]``); dimensions and metrics are values or JSON text.
"""

import json
from urllib.parse import urlencode

from django import template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from hailwhale.client import param_text
from hailwhale.contrib.django import backend

register = template.Library()


def _pk(value):
    if hasattr(value, "_meta"):
        from hailwhale.contrib.django.models import model_pk

        return model_pk(value)
    return value


def _event(pk, dimensions, metrics) -> dict:
    event = {"pk": _pk(pk)}
    if dimensions not in (None, ""):
        event["dimensions"] = dimensions
    if metrics not in (None, ""):
        event["metrics"] = metrics
    return event


def _count_url(event: dict) -> str:
    base = backend().settings.public_url.rstrip("/")
    return f"{base}/count.gif?{urlencode({name: param_text(value) for name, value in event.items()})}"


@register.simple_tag
def hailwhale_pixel(pk, dimensions=None, metrics=None):
    return format_html(
        '<img src="{}" width="1" height="1" alt="" style="position:absolute;width:1px;height:1px;border:0">',
        _count_url(_event(pk, dimensions, metrics)),
    )


@register.simple_tag
def hailwhale_beacon(pk, dimensions=None, metrics=None):
    event = _event(pk, dimensions, metrics)
    url = f"{backend().settings.public_url.rstrip('/')}/count.gif"
    body = json.dumps(event)
    script = (
        "(function(u,b,q){if(navigator.sendBeacon&&navigator.sendBeacon(u,b))return;(new Image()).src=q;})"
        f"({json.dumps(url)},{json.dumps(body)},{json.dumps(_count_url(event))});"
    )
    # JSON in a <script>: "</" and "<!--" must not close or comment it
    return mark_safe("<script>" + script.replace("<", "\\u003c") + "</script>")


@register.simple_tag
def hailwhale_graph(pk, dimension=None, metric=None, **extra):
    return mark_safe(backend().graph_tag(_pk(pk), dimension, metric, extra or None))
