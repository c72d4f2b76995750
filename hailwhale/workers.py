"""
Several worker processes on one set of ports (``--workers N``).

The parent runs no receiver: it checks that the ports are free (:func:`port_in_use`),
starts the embedded store if there is one, and then N workers (:class:`WorkerPool`), each
a ``twistd hailwhale`` process of its own with the parent's options, the store's URL and
its role (``--worker``).  The workers bind the UDP, collectd and HTTP ports with
SO_REUSEPORT: the kernel spreads datagrams and connections over them by a hash of the
sender's address and port.  Each worker flushes on its own under its own writer id, and
the store adds, so the totals are exact.

A worker that ends while the parent runs is started again (what it had taken in and not
flushed is lost) and the parent logs it.  Stopping the parent sends SIGTERM to each
worker and waits for them to end (each flushes what it took in) before the store stops.

In a worker, :class:`StatsExchange` publishes the worker's self-stats in the store every
flush interval and reads the others' back, so that ``/stats``, ``/metrics`` and
``/health`` answer for every worker from any of them; :class:`ParentWatch` stops a worker
whose parent is gone.
"""

import json
import os
import re
import signal
import socket
from collections.abc import Callable, Mapping

from twisted.application.service import Service
from twisted.internet import defer, error, task
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from hailwhale.aggregate import selfstats
from hailwhale.config import WorkerRole

log = Logger()

RESTART_DELAY_SECONDS = 0.5  # before a worker that ended is started again
RESTART_DELAY_MOST_SECONDS = 10.0  # a worker that keeps ending at once is started again less and less often
SHORT_LIFE_SECONDS = 5.0  # a worker that ends sooner than this after its start doubles the delay
KILL_AFTER_SECONDS = 20.0  # beyond --stop-timeout, before a worker that does not stop is killed
STATS_KEPT_INTERVALS = 3  # a worker's published stats count as live this many flush intervals
STATS_KEPT_LEAST_SECONDS = 3.0
STATS_INTERVAL_MOST_SECONDS = 2.0  # the stats are exchanged every flush interval, or this often if that is longer
LOG_TIME = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.+-]+ ")  # a worker's log line starts with its time; the parent's has it


def port_in_use(interface: str, port: int, kind: int) -> OSError | None:
    """
    Whether ``port`` (TCP for SOCK_STREAM, UDP for SOCK_DGRAM) on ``interface`` is held by
    another socket, checked by binding it without SO_REUSEPORT: a socket that holds it,
    SO_REUSEPORT or not, makes that bind fail.  The bind's error, or None if it is free.
    """
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    with socket.socket(family, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # closed connections do not count
        try:
            sock.bind((interface, port))
        except OSError as failed:
            return failed
    return None


class PortCheck(Service):
    """At start, fails if one of ``ports`` ((what, interface, port, kind)) is held by another program."""

    def __init__(self, ports: list[tuple[str, str, int, int]]):
        self._ports = ports

    def startService(self) -> None:
        for what, interface, port, kind in self._ports:
            failed = port_in_use(interface, port, kind)
            if failed is not None:
                log.error(
                    "{what} port {interface}:{port} is in use by another program ({error}); the workers "
                    "would share it with that program (SO_REUSEPORT), so the daemon does not start",
                    what=what,
                    interface=interface,
                    port=port,
                    error=failed,
                )
                raise error.CannotListenError(interface, port, failed)
        super().startService()


class WorkerProtocol(ProcessProtocol):
    """One worker process: its log lines (its stdout and stderr) logged by the parent, its end reported."""

    def __init__(self, index: int, ended: Callable[[int, Failure], None]):
        self.index = index
        self._ended = ended
        self._partial = {1: b"", 2: b""}

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        *lines, self._partial[childFD] = (self._partial.get(childFD, b"") + data).split(b"\n")
        for line in lines:
            text = LOG_TIME.sub("", line.decode("utf-8", "replace").rstrip())
            if text:
                log.info("worker {index}: {line}", index=self.index, line=text)

    def processEnded(self, reason: Failure) -> None:
        self._ended(self.index, reason)


class WorkerPool(Service):
    """
    ``count`` worker processes, each run from ``command(index, starts)`` (its argv); one that
    ends while the pool runs is started again.  Stopping sends each SIGTERM and fires once
    every one has ended (SIGKILL for one still there ``kill_after`` seconds later).
    """

    def __init__(
        self,
        count: int,
        command: Callable[[int, int], list[str]],
        reactor,
        kill_after: float,
        env: Mapping[str, str] | None = None,
    ):
        self.count = count
        self._command = command
        self._reactor = reactor
        self._kill_after = kill_after
        self._env = dict(os.environ if env is None else env)
        self.processes: dict[int, object] = {}
        self.starts = [0] * count
        self.restarted = 0
        self._started_at = [0.0] * count
        self._delay = [RESTART_DELAY_SECONDS] * count
        self._pending: dict[int, IDelayedCall] = {}  # index -> the delayed call that starts it again
        self._all_ended: defer.Deferred | None = None

    def startService(self) -> None:
        super().startService()
        for index in range(self.count):
            self._spawn(index)

    def _spawn(self, index: int) -> None:
        self._pending.pop(index, None)
        self.starts[index] += 1
        argv = self._command(index, self.starts[index])
        self._started_at[index] = self._reactor.seconds()
        process = self._reactor.spawnProcess(WorkerProtocol(index, self._ended), argv[0], argv, env=self._env)
        self.processes[index] = process
        log.info("worker {index} started (pid {pid})", index=index, pid=process.pid)

    def _ended(self, index: int, reason: Failure) -> None:
        self.processes.pop(index, None)
        if self.running:
            self.restarted += 1
            lived = self._reactor.seconds() - self._started_at[index]
            if lived < SHORT_LIFE_SECONDS:
                self._delay[index] = min(self._delay[index] * 2, RESTART_DELAY_MOST_SECONDS)
            else:
                self._delay[index] = RESTART_DELAY_SECONDS
            log.warn(
                "worker {index} ended ({reason}) after {lived:.1f} s; what it had taken in and not flushed is lost; "
                "starting it again in {delay} s",
                index=index,
                reason=reason.getErrorMessage(),
                lived=lived,
                delay=self._delay[index],
            )
            self._pending[index] = self._reactor.callLater(self._delay[index], self._spawn, index)
            return
        log.info("worker {index} stopped ({reason})", index=index, reason=reason.getErrorMessage())
        if not self.processes and self._all_ended is not None:
            ended, self._all_ended = self._all_ended, None
            ended.callback(None)

    def stopService(self):
        super().stopService()
        for call in self._pending.values():
            call.cancel()
        self._pending.clear()
        if not self.processes:
            return defer.succeed(None)
        self._all_ended = ended = defer.Deferred()
        for process in list(self.processes.values()):
            _signal(process, "TERM")
        killing = self._reactor.callLater(self._kill_after, self._kill)

        def done(result):
            if killing.active():
                killing.cancel()
            return result

        return ended.addBoth(done)

    def _kill(self) -> None:
        for index, process in list(self.processes.items()):
            log.error("worker {index} did not stop in time; killing it", index=index)
            _signal(process, "KILL")


def _signal(process, name: str) -> None:
    try:
        process.signalProcess(name)
    except error.ProcessExitedAlready:
        pass


class ParentWatch(Service):
    """A worker's check, every second, that its parent is still there; if not, the worker stops."""

    def __init__(self, parent_pid: int, reactor, parent: Callable[[], int] = os.getppid):
        self._parent_pid = parent_pid
        self._reactor = reactor
        self._parent = parent
        self._loop = task.LoopingCall(self._check)
        self._loop.clock = reactor

    def startService(self) -> None:
        super().startService()
        self._loop.start(1.0, now=False)

    def stopService(self):
        super().stopService()
        if self._loop.running:
            self._loop.stop()

    def _check(self) -> None:
        if self._parent() != self._parent_pid:
            log.error("the parent process {pid} is gone; stopping", pid=self._parent_pid)
            self._loop.stop()
            os.kill(os.getpid(), signal.SIGTERM)  # twistd's own stop: the last flush, then exit


class StatsExchange(Service):
    """
    A worker's self-stats, published in the store every ``interval`` seconds (at most
    :data:`STATS_INTERVAL_MOST_SECONDS`) with the others' read back (``publish(group,
    index, text)`` gives every worker's text by index, run in a thread by ``run``);
    :meth:`view` and :meth:`health` answer for all the workers.
    """

    def __init__(
        self,
        role: WorkerRole,
        expected: int,
        own: Callable[[], dict],
        own_health: Callable[[], tuple[bool, dict]],
        publish: Callable[[str, int, str], dict[int, str]],
        run: Callable[..., defer.Deferred],
        clock,
        interval: float,
    ):
        self._role = role
        self._expected = expected
        self._own = own
        self._own_health = own_health
        self._publish = publish
        self._run = run
        self._clock = clock
        interval = min(interval, STATS_INTERVAL_MOST_SECONDS)
        self._kept = max(STATS_KEPT_INTERVALS * interval, STATS_KEPT_LEAST_SECONDS)
        self._published: dict[int, dict] = {}
        self._loop = task.LoopingCall(self.exchange)
        self._loop.clock = clock
        self._interval = interval

    def startService(self) -> None:
        super().startService()
        self._loop.start(self._interval, now=True)

    def stopService(self):
        super().stopService()
        if self._loop.running:
            self._loop.stop()

    def exchange(self) -> defer.Deferred:
        """Publish this worker's stats and read every worker's."""
        healthy, _ = self._own_health()
        text = json.dumps(
            {
                **self._own(),
                "pid": os.getpid(),
                "starts": self._role.starts,
                "healthy": healthy,
                "published_at": self._clock.seconds(),
            }
        )
        published = self._run(self._publish, self._role.group, self._role.index, text)
        return published.addCallbacks(self._read, self._failed)

    def _read(self, published: dict[int, str]) -> None:
        found = {}
        for index, text in published.items():
            try:
                found[index] = json.loads(text)
            except ValueError:
                continue
        self._published = found

    def _failed(self, failure: Failure) -> None:
        log.warn("could not publish this worker's stats: {error}", error=failure.getErrorMessage())

    def live(self, own: dict) -> dict[int, dict]:
        """Every worker's stats published lately (``own`` for this worker), by index."""
        now = self._clock.seconds()
        found = {
            index: stats
            for index, stats in self._published.items()
            if index < self._expected and now - stats.get("published_at", 0) <= self._kept
        }
        found[self._role.index] = {**own, "pid": os.getpid(), "starts": self._role.starts}
        return found

    def view(self) -> dict:
        """``/stats`` for all the workers: the totals, then each worker's own stats."""
        own = self._own()
        live = self.live(own)
        return {
            **selfstats.total(list(live.values()), own),
            "worker": self._role.index,
            "workers": len(live),
            "workers_expected": self._expected,
            "workers_restarted": sum(stats.get("starts", 1) - 1 for stats in live.values()),
            "per_worker": {str(index): live[index] for index in sorted(live)},
        }

    def health(self) -> tuple[bool, dict]:
        """``/health`` for all the workers: healthy if each is, as it last published (this one: now)."""
        healthy, answer = self._own_health()
        if not healthy:
            return healthy, {**answer, "worker": self._role.index}
        live = self.live({})
        missing = [index for index in range(self._expected) if index not in live]
        unhealthy = [index for index, stats in live.items() if index != self._role.index and not stats.get("healthy")]
        if missing or unhealthy:
            return False, {
                "status": "unavailable",
                "reason": "workers_unavailable",
                "missing": missing,
                "unhealthy": sorted(unhealthy),
            }
        return True, {"status": "ok", "workers": self._expected}
