# Run with: twistd -ny hailwhale.tac   (for operators who avoid plugins)
# Options come from the HAILWHALE_OPTIONS environment variable, e.g. "--http-port 8085 --redis redis://localhost:6379/0".
import os
import shlex

from twisted.application.service import Application

from hailwhale import service
from hailwhale.tap import Options

options = Options()
options.parseOptions(shlex.split(os.environ.get("HAILWHALE_OPTIONS", "")))
application = Application("hailwhale")
service.makeService(options["config"], arguments=options.arguments).setServiceParent(application)
