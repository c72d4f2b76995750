"""
A real browser for tests and benchmarks: headless Chromium from Debian (``chromium`` and
``chromium-driver``, one source package, so the driver always matches the browser), driven by
Selenium with the system chromedriver (Selenium Manager downloads nothing), and a second
origin to embed graphs from.  Needs the ``test`` extra (selenium).
"""

import functools
import http.server
import os
import shutil
import tempfile
import threading
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def real_clock_environment() -> dict[str, str]:
    """This environment without faketime (``./test --shifted``): the browser keeps the world's clock."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("FAKETIME") and not (name == "LD_PRELOAD" and "faketime" in value)
    }


class Browser:
    """Headless Chromium; ``console()`` gives (and clears) what the pages logged since the last call."""

    def __init__(self, width: int = 1400, height: int = 1000):
        for path in (CHROMIUM, CHROMEDRIVER):
            if not os.access(path, os.X_OK):
                raise RuntimeError(f"{path} is missing: ./test installs Debian's chromium and chromium-driver")
        self._profile = tempfile.mkdtemp(prefix="hailwhale-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*FLAGS, f"--user-data-dir={self._profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=CHROMEDRIVER, env=real_clock_environment())
        self.driver = webdriver.Chrome(service=service, options=options)

    def get(self, url: str) -> None:
        self.driver.get(url)

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def wait(self, check, timeout: float = 30.0, what: str = "the page"):
        """``check(browser)``'s first true value, within ``timeout`` seconds."""
        return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(
            lambda _: check(self), message=f"timed out waiting for {what}"
        )

    def console(self) -> list[dict]:
        return self.driver.get_log("browser")

    def errors(self) -> list[dict]:
        """The console's errors since the last call (SEVERE entries: exceptions, console.error, failed loads)."""
        return [entry for entry in self.console() if entry["level"] == "SEVERE"]

    def resize(self, width: int, height: int) -> None:
        self.driver.set_window_size(width, height)

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        return path

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:
        pass


class OtherOrigin:
    """A plain static web server on another port of 127.0.0.1 (so another origin), serving ``directory``."""

    def __init__(self, directory: Path):
        handler = functools.partial(QuietHandler, directory=str(directory))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.directory = Path(directory)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def page(self, name: str, body: str) -> str:
        """Write an HTML page (with an empty icon, so the browser asks for no favicon) and give its URL."""
        head = '<meta charset="utf-8"><link rel="icon" href="data:,">'
        html = f"<!doctype html><html><head>{head}</head><body>{body}</body></html>"
        (self.directory / name).write_text(html)
        return f"{self.base}/{name}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
