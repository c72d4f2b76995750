"""
The composition root: every object of the daemon is built here, in :func:`makeService`.

Start order: embedded store (if any), the flush and query thread pools, flusher, the
ingest gate, UDP, collectd, HTTP.  Stop is the reverse, one after the other: listeners
close, the gate turns away what still arrives on open HTTP connections, the flusher writes
what was taken in, then the thread pools and the embedded store stop.

With ``--workers`` above 1, :func:`makeService` builds the parent instead
(:func:`make_parent`): the ports checked, the embedded store, and the worker processes
(:mod:`hailwhale.workers`), each of which runs :func:`make_daemon` with its role.
"""

import gc
import os
import resource
import socket
import sys
from collections.abc import Callable, Sequence

from twisted.application.internet import TimerService
from twisted.application.service import MultiService, Service
from twisted.internet import abstract, defer, endpoints, task, tcp, threads
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python import failure
from twisted.python.threadpool import ThreadPool

from hailwhale import __version__, amqp_input, workers
from hailwhale.aggregate import selfstats
from hailwhale.aggregate.accumulator import Accumulator
from hailwhale.aggregate.cardinality import Cardinality
from hailwhale.aggregate.ingest import Ingest
from hailwhale.aggregate.selfstats import DaemonStatus, SelfStats
from hailwhale.config import DEFAULT_TYPESDB, Config, WorkerRole
from hailwhale.flush import FlushService
from hailwhale.formats import typesdb
from hailwhale.formats.collectd_events import ValueListEvents
from hailwhale.formats.cumulative import Cumulative
from hailwhale.receivers import collectd, udp
from hailwhale.store import Store
from hailwhale.store.embedded import EmbeddedValkey, socket_url
from hailwhale.store.threaded import Reader, in_pool
from hailwhale.web import access, connections, openapi, prometheus
from hailwhale.web.app import HailwhaleWeb
from hailwhale.web.assets import Assets
from hailwhale.web.server import HailwhaleSite

log = Logger()

LISTEN_BACKLOG = 1024  # connections the kernel holds for HTTP before it is accepted (Twisted's default: 50)


class SequentialMultiService(MultiService):
    """
    A MultiService that stops its children in reverse order, each after the last has
    finished.  If a child fails to start (a port taken), the children already started
    are stopped before the error goes on, so that their threads and the embedded store do
    not keep a failed process alive.
    """

    def startService(self) -> None:
        Service.startService(self)
        started = []
        try:
            for child in self:
                child.startService()
                started.append(child)
        except BaseException:
            Service.stopService(self)
            for child in reversed(started):
                child.stopService()
            raise

    def stopService(self):
        Service.stopService(self)
        stopping = defer.succeed(None)
        for child in reversed(list(self)):
            stopping.addBoth(lambda _, child=child: child.stopService())
            stopping.addErrback(lambda failure: log.failure("while stopping", failure))
        return stopping


class Listener(Service):
    """
    Listens while running: ``listen()`` gives the port, or a Deferred of it (an endpoint's
    ``listen``); ``port`` is the listening port once started.  TCP and UNIX endpoints fire
    at once, so a port that cannot be had fails the start, as a plain ``listenTCP`` would.
    """

    def __init__(self, listen: Callable[[], IListeningPort | defer.Deferred]):
        self._listen = listen
        self.port: IListeningPort | None = None

    def startService(self) -> None:
        super().startService()
        listening = self._listen()
        if isinstance(listening, defer.Deferred):
            got: list = []
            listening.addBoth(got.append)
            if not got:
                raise RuntimeError("the endpoint did not start listening at once")
            if isinstance(got[0], failure.Failure):
                got[0].raiseException()
            listening = got[0]
        self.port = listening

    def stopService(self):
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()


class HttpListener(Listener):
    """Listens for HTTP, and while it does, times out its connections (:meth:`Connections.sweep`)."""

    def __init__(self, listen, book: connections.Connections, reactor):
        super().__init__(listen)
        self._sweeping = task.LoopingCall(book.sweep)
        self._sweeping.clock = reactor
        self._interval = book.sweep_interval

    def startService(self) -> None:
        super().startService()
        self._sweeping.start(self._interval, now=False)

    def stopService(self):
        if self._sweeping.running:
            self._sweeping.stop()
        return super().stopService()


class EmbeddedStoreService(Service):
    def __init__(self, embedded: EmbeddedValkey, reactor):
        self.embedded = embedded
        self._reactor = reactor

    def startService(self) -> None:
        self.embedded.start()
        log.info("embedded Valkey store running; other clients can use {url}", url=self.embedded.url)
        super().startService()

    def stopService(self):
        super().stopService()
        if not self._reactor.running:  # a start that failed before the reactor ran: no threads to defer to
            self.embedded.stop()
            return defer.succeed(None)
        return threads.deferToThread(self.embedded.stop).addCallback(
            lambda _: log.info("embedded Valkey store stopped")
        )


class IngestGate(Service):
    """Closes the ingest when stopping: an event that arrives after that is refused, not taken in and lost."""

    def __init__(self, ingest: Ingest):
        self._ingest = ingest

    def stopService(self):
        super().stopService()
        self._ingest.closed = True


class ThreadPoolService(Service):
    def __init__(self, pool: ThreadPool):
        self.pool = pool

    def startService(self) -> None:
        super().startService()
        self.pool.start()

    def stopService(self):
        super().stopService()
        self.pool.stop()


class HailwhaleService(SequentialMultiService):
    def __init__(self, store: Store, schema_text: str, run, stats: SelfStats, clock: Callable[[], float]):
        super().__init__()
        self.store = store
        self.stats = stats
        self._schema_text = schema_text
        self._run = run
        self._clock = clock

    def startService(self) -> None:
        super().startService()
        # Everything built so far lives as long as the daemon: keep the collector from rescanning it.
        gc.freeze()
        self._run(self.store.publish_schema, self._schema_text).addCallbacks(self._schema_checked, self._store_down)

    def _schema_checked(self, previous: str | None) -> None:
        self.stats.store_answered()
        if previous is not None and previous != self._schema_text:
            log.warn(
                "the store's data was written with schema {previous}; now writing {now}",
                previous=previous,
                now=self._schema_text,
            )

    def _store_down(self, failure) -> None:
        self.stats.store_failed(self._clock(), failure.value)
        log.failure(
            "the store is not reachable at {url}; flushes will retry", failure, url=access.redacted_url(self.store.url)
        )


def makeService(config: Config, reactor=None, arguments: Sequence[str] = ()) -> MultiService:
    """
    The daemon: with ``--workers`` above 1 the parent of the workers (started with the
    command line ``arguments`` and each its role), else one process that does everything.
    """
    if reactor is None:
        from twisted.internet import reactor
    if config.workers > 1 and config.worker is None:
        return make_parent(config, reactor, arguments)
    return make_daemon(config, reactor)


def make_parent(config: Config, reactor, arguments: Sequence[str]) -> MultiService:
    """
    The parent of ``--workers`` processes: the ports checked free, the embedded store (if
    any) started, then the workers; stopping stops the workers (each flushes) before the store.
    """
    root = SequentialMultiService()
    ports = [("UDP", config.udp_port, socket.SOCK_DGRAM), ("collectd", config.collectd_port, socket.SOCK_DGRAM)]
    ports.append(("HTTP", config.http_port, socket.SOCK_STREAM))
    workers.PortCheck([(what, config.interface, port, kind) for what, port, kind in ports if port]).setServiceParent(
        root
    )
    embedded = None if config.redis_url else EmbeddedValkey(config.data_dir)
    if embedded is not None:
        EmbeddedStoreService(embedded, reactor).setServiceParent(root)
    group, parent_pid = f"{socket.gethostname()}-{os.getpid()}", os.getpid()

    def command(index: int, starts: int) -> list[str]:
        role = WorkerRole(group, index, starts, parent_pid)
        store = ["--redis", embedded.url] if embedded is not None else []
        return [
            sys.executable,
            "-c",
            "from twisted.scripts.twistd import run; run()",
            "--nodaemon",
            "--pidfile=",
            "--logfile=-",
            "hailwhale",
            *arguments,
            *store,
            "--worker",
            str(role),
        ]

    pool = workers.WorkerPool(config.workers, command, reactor, config.stop_timeout + workers.KILL_AFTER_SECONDS)
    pool.setName("workers")
    pool.setServiceParent(root)
    log.info(
        "{count} workers share the ports (SO_REUSEPORT); the store: {url}",
        count=config.workers,
        url=embedded.url if embedded is not None else access.redacted_url(config.redis_url or ""),
    )
    return root


def make_daemon(config: Config, reactor) -> HailwhaleService:
    """One process that receives, counts and flushes (alone, or as one of ``--workers``)."""
    role = config.worker
    shared = role is not None
    stats = SelfStats()
    started_at = reactor.seconds()
    open_files = raise_open_files_limit()
    http_caps, warnings = connections.caps(
        open_files, config.http_max_connections, config.http_max_connections_per_address
    )
    for warning in warnings:
        log.warn("{warning}", warning=warning)
    book = connections.Connections(http_caps, config.http_request_timeout, config.http_idle_timeout, stats, reactor)
    embedded = None if config.redis_url else EmbeddedValkey(config.data_dir)
    url = config.redis_url or socket_url(config.data_dir)
    store = Store.connect(url, cluster=config.redis_cluster, timeout=config.store_timeout)
    # flushes, folds and queries get their own threads, so slow queries never hold a flush back
    flush_pool = ThreadPool(minthreads=1, maxthreads=1, name="hailwhale-flush")
    fold_pool = ThreadPool(minthreads=1, maxthreads=1, name="hailwhale-fold")
    query_pool = ThreadPool(minthreads=1, maxthreads=4, name="hailwhale-query")

    accumulator = Accumulator(config.schema.finest.interval, config.max_pending_keys)
    cardinality = Cardinality(config.max_children, config.max_tracked_children)
    ingest = Ingest(
        accumulator,
        stats,
        cardinality,
        config.event_limits,
        reactor.seconds,
        lambda line, message: log.warn("bad line ({message}): {line!r}", line=line, message=message),
        levels_in_store=True,
    )
    flusher = FlushService(
        accumulator,
        store,
        config.schema,
        stats,
        reactor,
        in_pool(reactor, flush_pool),
        config.flush_interval,
        config.stop_timeout,
        levels_in_store=True,
        run_fold=in_pool(reactor, fold_pool),
    )
    udp_listener = Listener(
        lambda: udp.listen(
            reactor,
            config.udp_port,
            config.interface,
            udp.EventReceiver(ingest),
            config.udp_receive_buffer,
            batching=True,
            reuse_port=shared,
        )
    )
    cumulative = Cumulative(config.collectd_max_series, stats.collectd.cumulative)

    def own_snapshot() -> dict:
        status = DaemonStatus(
            events_accepted=accumulator.events_added,
            dimension_names_folded=dict(cardinality.folded),
            dimension_names_tracked=cardinality.tracked,
            pending_keys=accumulator.pending_keys,
            pending_events=accumulator.pending_events,
            backlog_events=flusher.backlog_events,
            store_url=access.redacted_url(url),
            schema=str(config.schema),
            udp_receive_buffer=udp.receive_buffer(udp_listener.port) if udp_listener.port else None,
            collectd_series=len(cumulative),
            udp_kernel_drops=udp.kernel_drops(udp_listener.port) if udp_listener.port else None,
            http_connections=len(book) if http_on else None,
            http_connections_limit=book.caps.total if http_on else None,
            open_files_limit=open_files,
            uptime_seconds=reactor.seconds() - started_at,
            version=__version__,
        )
        return {**stats.snapshot(), **selfstats.snapshot(status)}

    def own_health() -> tuple[bool, dict]:
        return stats.health(stopping=ingest.closed)

    exchange = None
    if role is not None:
        exchange = workers.StatsExchange(
            role,
            config.workers,
            own_snapshot,
            own_health,
            store.publish_worker,
            in_pool(reactor, query_pool),
            reactor,
            config.flush_interval,
        )
    snapshot = exchange.view if exchange is not None else own_snapshot
    health = exchange.health if exchange is not None else own_health

    http_on = bool(config.http_port or config.http_listen)
    policy = access_policy(config)
    scraped = prometheus.registry(snapshot)
    web = HailwhaleWeb(
        ingest,
        flusher,
        Reader(store, in_pool(reactor, query_pool)),
        snapshot,
        reactor,
        config.schema,
        config.max_body_bytes,
        config.count_now_timeout,
        policy,
        health=health,
        metrics=lambda accept: prometheus.exposition(scraped, accept),
        openapi=openapi.describe(read_token=policy.read_token is not None, write_token=policy.write_token is not None),
        files=Assets.packaged(),
    )

    root = HailwhaleService(store, str(config.schema), in_pool(reactor, query_pool), stats, reactor.seconds)
    if embedded is not None:
        EmbeddedStoreService(embedded, reactor).setServiceParent(root)
    ThreadPoolService(flush_pool).setServiceParent(root)
    ThreadPoolService(fold_pool).setServiceParent(root)
    ThreadPoolService(query_pool).setServiceParent(root)
    flusher.setName("flush")
    flusher.setServiceParent(root)
    if config.amqp_urls:
        amqp_pool = ThreadPool(minthreads=1, maxthreads=1, name="hailwhale-amqp")
        ThreadPoolService(amqp_pool).setServiceParent(root)
        stream = amqp_input.make_input(
            config,
            reactor,
            stats,
            cardinality,
            url,
            in_pool(reactor, amqp_pool),
            flusher.note_written,
            lambda line, message: log.warn("bad line in a message ({message}): {line!r}", line=line, message=message),
        )
        stream.setName("amqp")
        stream.setServiceParent(root)
    if role is not None and exchange is not None:
        exchange.setName("worker-stats")
        exchange.setServiceParent(root)
        workers.ParentWatch(role.parent_pid, reactor).setServiceParent(root)
    IngestGate(ingest).setServiceParent(root)
    if config.udp_port:
        udp_listener.setName("udp")
        udp_listener.setServiceParent(root)
    if config.collectd_port:
        auth_file = collectd.AuthFile(config.collectd_auth_file) if config.collectd_auth_file else None
        receiver = collectd.CollectdReceiver(
            ingest,
            ValueListEvents(
                collectd_types(config.collectd_typesdb), config.event_limits, cumulative, stats.collectd.values_skipped
            ),
            config.collectd_security_level,
            auth_file,
            stats.collectd,
            reactor.seconds,
        )
        if auth_file is not None:
            watcher = TimerService(collectd.AUTH_FILE_CHECK_SECONDS, auth_file.current)
            watcher.clock = reactor
            watcher.setName("collectd-auth-file")
            watcher.setServiceParent(root)
        collectd_listener = Listener(
            lambda: udp.listen(
                reactor,
                config.collectd_port,
                config.interface,
                receiver,
                config.udp_receive_buffer,
                f"collectd packets (level {config.collectd_security_level})",
                reuse_port=shared,
            )
        )
        collectd_listener.setName("collectd")
        collectd_listener.setServiceParent(root)
    if http_on:
        front = web.resource()
        site = HailwhaleSite(front, book, front.quick, reactor)
        log.info(
            "HTTP connections: at most {total} open, {per_address} from one client address; a request must arrive "
            "whole within {request} s of its first byte; a connection waiting for a request closes after {idle} s",
            total=http_caps.total,
            per_address=http_caps.per_address,
            request=config.http_request_timeout,
            idle=config.http_idle_timeout,
        )
        http = HttpListener(
            lambda: _listen_http(http_endpoint(reactor, config, shared), site, reactor, stats), book, reactor
        )
        http.setName("http")
        http.setServiceParent(root)
    return root


def raise_open_files_limit() -> int:
    """
    Raise the soft limit of open files to the hard limit (the default soft limit, often
    1,024, is soon reached by HTTP connections); the soft limit now.  Logs both.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or (hard != resource.RLIM_INFINITY and soft >= hard):
        log.info("open files: at most {soft} (the hard limit is {hard})", soft=soft, hard=hard)
        return soft
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError) as error:
        log.warn(
            "open files: at most {soft}; raising it to the hard limit {hard} failed: {error}",
            soft=soft,
            hard=hard,
            error=error,
        )
        return soft
    log.info("open files: soft limit raised from {soft} to the hard limit, {hard}", soft=soft, hard=wanted)
    return wanted


def access_policy(config: Config) -> access.Policy:
    """The tokens (read from their files, if given so) and the allowed origins."""

    def token(kind: str, value: str | None, path: str | None) -> str | None:
        if value is not None:
            log.warn(
                "the {kind} token was given on the command line, where any user can see it (ps); "
                "--{kind}-token-file keeps it out of sight",
                kind=kind,
            )
            return value
        if path is None:
            return None
        with open(path, encoding="utf-8") as file:
            try:
                return access.token_from_file_text(file.read())
            except access.TokenError as error:
                raise access.TokenError(f"{path}: {error}") from None

    read = token("read", config.read_token, config.read_token_file)
    write = token("write", config.write_token, config.write_token_file)
    log.info(
        "HTTP access: queries, /stats and /metrics {read}; counting over HTTP {write}; the pixel, /health and "
        "UDP open; CORS for queries: {origins}",
        read="need the read token" if read else "open",
        write="needs the write token" if write else "open",
        origins=", ".join(config.cors_origins) or "any origin",
    )
    return access.Policy(read, write, config.cors_origins)


def collectd_types(path: str | None) -> typesdb.Types:
    """The built-in types, and those of ``path`` (or of collectd's own types.db, if installed)."""
    types = dict(typesdb.BUILTIN)
    if path is None and os.path.exists(DEFAULT_TYPESDB):
        path = DEFAULT_TYPESDB
    if path is not None:
        with open(path, encoding="utf-8", errors="replace") as file:
            found, bad = typesdb.parse(file.read())
        if bad:
            log.warn("{path}: lines {lines} are not types.db entries; skipped", path=path, lines=bad[:20])
        log.info("collectd: {count} types from {path}", count=len(found), path=path)
        types.update(found)
    return types


def http_endpoint(reactor, config: Config, shared: bool = False) -> IStreamServerEndpoint:
    """
    Where HTTP listens: ``--http-listen``'s endpoint, or TCP on ``--http-port`` and
    ``--interface`` (bound with SO_REUSEPORT if ``shared`` by workers).
    """
    if config.http_listen:
        return endpoints.serverFromString(reactor, config.http_listen)
    port = tcp.makeBinding(config.interface, config.http_port, reuseAddress=True, reusePort=True) if shared else None
    if abstract.isIPv6Address(config.interface):
        return endpoints.TCP6ServerEndpoint(
            reactor, port or config.http_port, backlog=LISTEN_BACKLOG, interface=config.interface
        )
    return endpoints.TCP4ServerEndpoint(
        reactor, port or config.http_port, backlog=LISTEN_BACKLOG, interface=config.interface
    )


def _listen_http(endpoint: IStreamServerEndpoint, site: HailwhaleSite, reactor, stats: SelfStats) -> defer.Deferred:
    def listening(port: IListeningPort) -> IListeningPort:
        guard = connections.AcceptGuard.install(port, reactor, stats, lambda: len(site.connections))
        if guard is not None:
            site.connections.on_close(guard.connection_closed)
            site.connections.throttled(guard.throttle)
        log.info("HTTP on {address}", address=port.getHost())
        return port

    return endpoint.listen(site).addCallback(listening)
