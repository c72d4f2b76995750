"""
hailwhale in a Django project (the ``django`` extra; Django 5.2)::

    INSTALLED_APPS = [..., "hailwhale.contrib.django"]
    MIDDLEWARE = ["hailwhale.contrib.django.middleware.RequestCounting", ...]
    HAILWHALE = {"URL": "http://127.0.0.1:8085", "WRITE_TOKEN": ..., "READ_TOKEN": ...}

:func:`backend` is the project's client (or its test backend); models take
:class:`hailwhale.contrib.django.models.WhaleModel`; templates ``{% load hailwhale %}``.
"""


def backend():
    """The backend ``HAILWHALE`` names (made once, made again when the setting changes)."""
    from django.apps import apps

    return apps.get_app_config("hailwhale").backend()
