"""
A private RabbitMQ node for tests, from Debian's ``rabbitmq-server``, and a publisher.

:class:`RabbitNode` runs ``/usr/lib/rabbitmq/bin/rabbitmq-server`` directly (the
``/usr/sbin`` wrapper switches user and directory) with everything of its own in a
temporary directory: ``HOME`` (its Erlang cookie), node name, AMQP and distribution
ports, data, logs, config (listening on 127.0.0.1 only), an empty plugin list (no
management plugin: a faster boot), and an ``epmd`` of its own on a free port, so nothing
is shared with a broker the machine may already run.  The Erlang VM gets one scheduler
(``schedulers`` sets more) that does not busy-wait (the machine is small and shared).  :meth:`RabbitNode.restart`
stops it and starts it again on the same data, for broker-restart tests.

:func:`publish` sends bodies with publisher confirms (blocking pika): when it returns, the
broker has every message.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import pika
import pika.exceptions

from hailwhale.testing import free_port

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
EPMD = "epmd"
BOOT_TIMEOUT = 120.0
ROUTE_TIMEOUT = 60.0  # how long a message the broker cannot route yet is sent again


class RabbitNode:
    """A RabbitMQ node of its own; ``url`` once :meth:`start` returned."""

    def __init__(self, directory: Path | None = None, consumer_timeout_ms: int | None = None, schedulers: int = 1):
        if not SERVER.exists():
            raise RuntimeError(f"{SERVER} is missing: install Debian's rabbitmq-server (./test does)")
        self._own_directory = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="hw-rabbit-"))
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node_name = f"hwtest-{os.getpid()}-{self.port}@localhost"
        self.consumer_timeout_ms = consumer_timeout_ms
        self.schedulers = schedulers
        self.boot_seconds: float | None = None
        self._process: subprocess.Popen | None = None
        self._epmd: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def _environment(self) -> dict[str, str]:
        home = self.directory / "home"
        for name in ("home", "mnesia", "log"):
            (self.directory / name).mkdir(exist_ok=True)
        config = [
            f"listeners.tcp.1 = 127.0.0.1:{self.port}",
            "disk_free_limit.absolute = 1MB",
            "log.console = false",
            "log.file.level = warning",
        ]
        if self.consumer_timeout_ms is not None:
            config.append(f"consumer_timeout = {self.consumer_timeout_ms}")
        (self.directory / "rabbitmq.conf").write_text("\n".join(config) + "\n")
        (self.directory / "env.conf").write_text("")
        (self.directory / "enabled_plugins").write_text("[].\n")
        keep = {name: value for name, value in os.environ.items() if name in ("PATH", "LANG", "LC_ALL", "TZ")}
        return {
            **keep,
            "HOME": str(home),
            "RABBITMQ_CONF_ENV_FILE": str(self.directory / "env.conf"),
            "RABBITMQ_NODENAME": self.node_name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.directory / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.directory / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.directory / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.directory / "rabbit.pid"),
            "RABBITMQ_SCHEDULER_BUSY_WAIT_THRESHOLD": "none",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": f"+S {self.schedulers}:{self.schedulers} "
            "+sbwt none +sbwtdcpu none +sbwtdio none",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
        }

    def start(self, timeout: float = BOOT_TIMEOUT) -> "RabbitNode":
        """Start the node (and its epmd) and wait until it takes AMQP connections."""
        environment = self._environment()
        if self._epmd is None:
            self._epmd = subprocess.Popen(
                [EPMD, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        started = time.monotonic()
        with open(self.directory / "server.out", "ab") as output:
            self._process = subprocess.Popen(
                [str(SERVER)],
                env=environment,
                cwd=self.directory,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = started + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited ({self._process.returncode}):\n{self.output()}")
            if self._answers():
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"rabbitmq-server did not start in {timeout} s:\n{self.output()}")
            time.sleep(0.2)
        self.boot_seconds = time.monotonic() - started
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                pass
            connection = pika.BlockingConnection(pika.URLParameters(self.url + "?connection_attempts=1"))
            connection.close()
            return True
        except (OSError, pika.exceptions.AMQPError):
            return False

    def output(self) -> str:
        path = self.directory / "server.out"
        text = path.read_text(errors="replace")[-4000:] if path.exists() else ""
        logs = sorted((self.directory / "log").glob("*.log"))
        for log in logs:
            text += f"\n--- {log.name}\n" + log.read_text(errors="replace")[-4000:]
        return text

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the node (SIGTERM to its process group, SIGKILL if it lingers); its data stays."""
        if self._process is None:
            return
        process, self._process = self._process, None
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(10)
        _signal_group(process, signal.SIGKILL)  # helpers (erl_child_setup, inet_gethost) left behind

    def restart(self) -> None:
        """Stop the node and start it again on its data (same ports)."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the node and its epmd, and remove the temporary directory."""
        self.stop()
        if self._epmd is not None:
            epmd, self._epmd = self._epmd, None
            epmd.terminate()
            epmd.wait(10)
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "RabbitNode":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def declare_stream(url: str, queue: str, **arguments) -> None:
    """Declare ``queue`` as a stream (as the daemon does), with extra ``x-`` arguments if given."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        connection.channel().queue_declare(queue, durable=True, arguments={"x-queue-type": "stream", **arguments})
    finally:
        connection.close()


def publish(
    url: str, bodies: Iterable[bytes], *, queue: str = "", exchange: str = "", routing_key: str | None = None
) -> int:
    """
    Publish each body (to ``exchange`` with ``routing_key``, or to ``queue`` through the
    default exchange) with publisher confirms and mandatory routing: raises unless the
    broker took and routed every one.  A message the broker returns unrouted (not stored:
    a stream still starting after a restart) is sent again for up to a minute.  The
    number published.
    """
    connection = pika.BlockingConnection(pika.URLParameters(url))
    published = 0
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        key = queue if routing_key is None else routing_key
        for body in bodies:
            deadline = time.monotonic() + ROUTE_TIMEOUT
            while True:
                try:
                    channel.basic_publish(exchange, key, body, pika.BasicProperties(delivery_mode=2), mandatory=True)
                    break
                except pika.exceptions.UnroutableError:
                    # returned, not stored (a stream still starting after a broker restart): send it again
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            published += 1
    finally:
        connection.close()
    return published
