"""
twistd glue: the ``hailwhale`` plugin's ``Options`` and ``makeService``.

The options are made from :mod:`hailwhale.config`'s table: one per setting, with its
default, help and reader; ``postOptions`` only builds the :class:`~hailwhale.config.Config`
(which checks itself) and does no IO.
"""

import gc
import sys

from twisted.python import usage

from hailwhale import config, service

__all__ = ["Options", "makeService"]


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Real-time counting of rolled-up, multi-dimensional metrics. Events come in over UDP "
        "and HTTP, add up in memory and are flushed to Redis; with no --redis the daemon runs "
        "its own embedded Valkey server with its data in --data-dir."
    )
    optFlags = [[item.option, None, item.help] for item in config.settings() if item.flag]
    optParameters = [
        [item.option, None, item.default, item.help, item.coerce]
        for item in config.settings()
        if not item.flag and not item.repeatable
    ]

    def __init__(self):
        super().__init__()
        for item in config.settings():
            if item.repeatable:
                self[item.option] = []

    def parseOptions(self, options=None) -> None:
        # kept as given, for a --workers parent to start its workers with the same options
        self.arguments = tuple(sys.argv[1:] if options is None else options)
        super().parseOptions(options)

    def postOptions(self) -> None:
        values = {
            item.option: bool(self[item.option]) if item.flag else self[item.option] for item in config.settings()
        }
        try:
            self["config"] = config.from_options(values)
        except (config.ConfigError, ValueError) as error:
            raise usage.UsageError(str(error)) from None


def _repeatable(item: config.Setting):
    def handler(self: Options, value: str) -> None:
        self[item.option].append(value)

    handler.__doc__ = item.help
    return handler


for _item in config.settings():
    if _item.repeatable:
        setattr(Options, "opt_" + _item.option.replace("-", "_"), _repeatable(_item))


# how long a thread runs before another may take the interpreter: the flush's planning in
# its thread would otherwise hold a query's thread back up to 5 ms (the default) at each
# of its socket reads
SWITCH_INTERVAL = 0.0005
# the cyclic garbage collector's thresholds: a daemon holds 10^5 keys and their caches, and
# at the default (700 new objects) a flush of 50,000 distinct keys, which makes millions of
# objects, rescans them again and again; its data makes few reference cycles
COLLECTOR_THRESHOLDS = (50_000, 20, 100)


def makeService(options: Options):
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc.set_threshold(*COLLECTOR_THRESHOLDS)
    return service.makeService(options["config"], arguments=getattr(options, "arguments", ()))
