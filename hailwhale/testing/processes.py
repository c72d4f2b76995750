"""For fault tests: a daemon in a process of its own, and a proxy to a store that can cut replies."""

import json
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from hailwhale.testing import free_port

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent
STOPPED_LINE = re.compile(r"stopped: (\d+) events accepted since the start, (\d+) written, (\d+) not written")


class Daemon:
    """
    A ``twistd -n hailwhale`` process on free loopback ports (collectd off unless ``args``
    name its port), for tests that need a real process: signals, its own memory, a store it
    cannot reach.
    """

    def __init__(
        self,
        directory: Path,
        *args: str,
        ready_timeout: float = 30.0,
        open_files: tuple[int, int] | None = None,
    ):
        """``open_files``: the (soft, hard) open-files limit to start the process with (``ulimit -n``)."""
        self.http_port, self.udp_port = free_port(), free_port(socket.SOCK_DGRAM)
        self.log_path = Path(directory) / "twistd.log"

        def limited() -> None:  # in the child, before it runs the daemon
            if open_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, open_files)

        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from twisted.scripts.twistd import run; run()",
                "-n",
                "--pidfile=",
                f"--logfile={self.log_path}",
                "hailwhale",
                "--http-port",
                str(self.http_port),
                "--udp-port",
                str(self.udp_port),
                *([] if "--collectd-port" in args else ["--collectd-port", "0"]),  # 25826 may be taken
                *args,
            ],
            cwd=directory,
            env={**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)},
            preexec_fn=limited if open_files is not None else None,
        )
        self.base = f"http://127.0.0.1:{self.http_port}"
        deadline = time.monotonic() + ready_timeout
        while True:
            try:
                self.get("/health")
                return
            except urllib.error.HTTPError:
                return  # it answers (503 until the store has answered, or /health needs nothing it lacks)
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.process.kill()
                    raise RuntimeError(f"the daemon did not start; its log:\n{self.log()}") from None
                time.sleep(0.1)

    def get(self, path: str, timeout: float = 30.0, headers: dict | None = None):
        """The JSON answer to GET ``path`` (raises for a non-2xx answer)."""
        request = urllib.request.Request(self.base + path, headers=headers or {})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def health(self, timeout: float = 30.0) -> tuple[int, dict]:
        """(status, answer) of ``/health``, 503 included."""
        try:
            with urllib.request.urlopen(self.base + "/health", timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def send_udp(self, payload: bytes) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(payload, ("127.0.0.1", self.udp_port))

    def memory_kib(self) -> tuple[int, int]:
        """(resident now, peak resident) of the process, in KiB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        resident, peak = (re.findall(rf"^{name}:\s+(\d+)", status, re.M)[0] for name in ("VmRSS", "VmHWM"))
        return int(resident), int(peak)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait for the exit; the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """Clean up: SIGTERM (so the daemon stops its embedded store too), SIGKILL if it is still there after 10 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stopped_each(self) -> list[tuple[int, int, int]]:
        """(accepted, written, not written) of each process that logged its stop (each worker's, with --workers)."""
        return [(int(a), int(w), int(u)) for a, w, u in STOPPED_LINE.findall(self.log())]

    def stopped_figures(self) -> tuple[int, int, int]:
        """(accepted, written, not written) from the line a stopped daemon logs."""
        ((accepted, written, unwritten),) = STOPPED_LINE.findall(self.log())
        return int(accepted), int(written), int(unwritten)


class Crowd:
    """
    Many TCP connections from one source address, held by a process of its own
    (:mod:`hailwhale.testing.crowd`): each sends ``first``, then ``trickle`` every
    ``interval`` seconds.  :meth:`status` tells how many are open, closed, and which
    answers came; :meth:`close` closes them all.
    """

    def __init__(
        self,
        port: int,
        count: int,
        first: bytes,
        source: str = "127.0.0.1",
        trickle: bytes = b"",
        interval: float = 1.0,
    ):
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hailwhale.testing.crowd",
                "127.0.0.1",
                str(port),
                source,
                str(count),
                first.hex(),
                *([trickle.hex(), str(interval)] if trickle else []),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)},
        )

    def status(self) -> dict:
        """{"connected", "connect_failed", "open", "closed", "answers": {status code: count}} (after connecting)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("status\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the crowd process ended (exit status {self.process.wait()})")
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            try:
                self.process.stdin.write("close\n")
                self.process.stdin.flush()
            except BrokenPipeError:
                pass
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def __enter__(self) -> "Crowd":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CuttingProxy:
    """
    A TCP proxy to a store that can, on request, let a write through and then cut the
    connection instead of passing the reply back: the write is applied, the writer never
    learns it was (an ambiguous failure).  Runs in threads; ``close()`` stops it.
    """

    def __init__(self, upstream_port: int, marker: bytes = b"EVALSHA"):
        self._upstream = upstream_port
        self._marker = marker
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._armed = 0
        self.cuts = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_next_write(self, times: int = 1) -> None:
        """Cut the connection of each of the next ``times`` writes after the store has answered it."""
        with self._lock:
            self._armed += times

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        cut_at_reply = False
        try:
            while not self._closed:
                readable, _, _ = select.select([client, upstream], [], [], 0.5)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        with self._lock:
                            if self._armed and self._marker in data and not cut_at_reply:
                                self._armed -= 1
                                cut_at_reply = True
                        upstream.sendall(data)
                    elif cut_at_reply:
                        with self._lock:
                            self.cuts += 1
                        return
                    else:
                        client.sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()
