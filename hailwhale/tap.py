"""twistd glue: the ``hailwhale`` plugin's Options and makeService."""

from hailwhale import service
from hailwhale.config import Options

__all__ = ["Options", "makeService"]


def makeService(options: Options):
    return service.makeService(options["config"])
