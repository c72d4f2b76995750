"""The app: its label is ``hailwhale``; it checks the ``HAILWHALE`` setting and holds the backend."""

import threading

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.signals import setting_changed

from hailwhale.contrib.django import backends, conf


class HailwhaleConfig(AppConfig):
    name = "hailwhale.contrib.django"
    label = "hailwhale"
    verbose_name = "hailwhale"
    default = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._backend = None
        self._lock = threading.Lock()

    def ready(self) -> None:
        checks.register(check_settings, checks.Tags.compatibility)
        setting_changed.connect(self._setting_changed, weak=False)

    def backend(self):
        with self._lock:
            if self._backend is None:
                self._backend = backends.make(conf.read(getattr(settings, "HAILWHALE", None)))
            return self._backend

    def _setting_changed(self, setting: str, **kwargs) -> None:
        if setting == "HAILWHALE":
            with self._lock:
                self._backend = None


def check_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Django's system check of ``HAILWHALE``: one error per problem (hailwhale.E001)."""
    return [
        checks.Error(problem, hint="See the README's 'From Django' section.", id="hailwhale.E001")
        for problem in conf.problems(getattr(settings, "HAILWHALE", None))
    ]
