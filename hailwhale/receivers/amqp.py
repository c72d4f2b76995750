"""
Reading a RabbitMQ stream on the reactor, with pika's Twisted adapter (plain AMQP:
``amqp://`` URLs; TLS is left to a proxy in front of the broker).

:class:`StreamConsumer` connects (trying each broker URL in turn, backing off between
rounds), finds the stream or declares it (``x-queue-type: stream``, with ``x-max-age``
when set), binds it to the exchange producers publish to (if named), and consumes it from
the offset its sink asks for, with a prefetch window (``basic.qos``, which a stream
requires).  Each message goes to the sink as a :class:`Delivery` (its offset, from the
``x-stream-offset`` header, its delivery tag and body).  While the sink does not take
more (:meth:`Sink.accepting`), the consumer stops reading and acknowledging, so the
broker stops sending once the prefetch window is full: nothing is dropped.

A stream's ack is credit: it deletes nothing, the offset is the position.  The sink
acknowledges (:meth:`StreamConsumer.ack`) once what a delivery carried is durable in the
store.  Delivery tags die with their channel: an ack for a channel that is gone is left
out (the broker forgets them anyway).  When the connection or channel is lost the sink
is told (:meth:`Sink.lost`), and after a reconnect reading starts again where the sink
says.  The channel is only used from the reactor thread.  Never nack or reject: a stream
closes the channel for them.
"""

from collections.abc import Callable
from typing import Any, Protocol

import attrs
import pika
import pika.credentials
import pika.exceptions
from pika.adapters.twisted_connection import TwistedProtocolConnection
from twisted.internet import defer, protocol, task
from twisted.logger import Logger

SETUP_TIMEOUT = 10.0  # seconds for each step of connecting and setting up (pika#1201)
BACKOFF_FIRST, BACKOFF_MOST = 0.5, 30.0


@attrs.frozen
class Delivery:
    offset: int
    tag: int
    body: bytes
    generation: int  # which channel it came on: its tag means nothing on another


class Sink(Protocol):
    def resume_offset(self) -> int | str: ...

    def accepting(self) -> bool: ...

    def wait_accepting(self) -> defer.Deferred: ...

    def deliver(self, delivery: Delivery) -> None: ...

    def lost(self) -> None: ...


class ConnectionState(Protocol):
    connected: bool
    reconnects: int
    last_error: str | None


def parameters(url: str, password: str | None = None) -> pika.URLParameters:
    """The connection parameters of ``url`` (amqp:// or amqps://), with ``password`` instead of the URL's if given."""
    params = pika.URLParameters(url)
    if password is not None:
        params.credentials = pika.credentials.PlainCredentials(params.credentials.username, password)
    return params


class StreamConsumer:
    log = Logger()

    def __init__(
        self,
        reactor,
        urls: list[str],
        queue: str,
        sink: Sink,
        state: ConnectionState,
        *,
        prefetch: int,
        exchange: str | None = None,
        binding_key: str = "#",
        max_age_seconds: int | None = None,
        password: str | None = None,
        describe: Callable[[str], str] = lambda url: url,
    ):
        self._reactor = reactor
        self._urls = list(urls)
        self._queue = queue
        self._sink = sink
        self._state = state
        self._prefetch = prefetch
        self._exchange = exchange
        self._binding_key = binding_key
        self._max_age = max_age_seconds
        self._password = password
        self._describe = describe
        self._running = False
        self._connection: TwistedProtocolConnection | None = None
        self._channel: Any = None
        self._generation = 0
        self._loop: defer.Deferred | None = None
        self._sleep: defer.Deferred | None = None

    @property
    def generation(self) -> int:
        return self._generation

    def start(self) -> None:
        """Connect and read (again, after :meth:`stop`); a loop still winding down goes on instead."""
        self._running = True
        if self._loop is None or self._loop.called:
            self._loop = self._run()
            self._loop.addErrback(lambda failure: self.log.failure("the RabbitMQ consumer stopped", failure))

    def stop(self) -> defer.Deferred:
        """Stop reading and close the connection (deliveries not committed come again to the next reader)."""
        self._running = False
        if self._sleep is not None and not self._sleep.called:
            self._sleep.cancel()
        self.restart()
        loop = self._loop
        if loop is None or loop.called:
            return defer.succeed(None)
        done: defer.Deferred = defer.Deferred()

        def finished(result):
            done.callback(None)
            return result

        loop.addBoth(finished)
        return done

    def restart(self) -> None:
        """Close the connection: the consumer connects again and reads from where the sink says."""
        connection = self._connection
        if connection is None:
            return
        try:
            if connection.is_open:
                connection.close()
            elif connection.transport is not None:
                connection.transport.loseConnection()  # still connecting, or already closing
        except pika.exceptions.AMQPError:
            pass

    def ack(self, generation: int, tag: int) -> bool:
        """Acknowledge every delivery up to ``tag`` of the channel ``generation``, if it is still open."""
        if generation != self._generation or self._channel is None or not self._channel.is_open:
            return False
        self._channel.basic_ack(delivery_tag=tag, multiple=True)
        return True

    def ack_one(self, generation: int, tag: int) -> bool:
        """Acknowledge the delivery ``tag`` alone (one read before the offset asked for: credit back)."""
        if generation != self._generation or self._channel is None or not self._channel.is_open:
            return False
        self._channel.basic_ack(delivery_tag=tag, multiple=False)
        return True

    @defer.inlineCallbacks
    def _run(self):
        backoff, attempt = BACKOFF_FIRST, 0
        while self._running:
            url = self._urls[attempt % len(self._urls)]
            attempt += 1
            try:
                channel, queue = yield self._open(url)
                self._state.connected = True
                backoff = BACKOFF_FIRST
                self.log.info(
                    "reading the RabbitMQ stream {queue} at {url}", queue=self._queue, url=self._describe(url)
                )
                yield self._consume(channel, queue)
            except Exception as error:
                if self._running:
                    self._state.last_error = f"{type(error).__name__}: {error}"
                    self.log.warn(
                        "RabbitMQ at {url}: {error}; connecting again in {backoff} s",
                        url=self._describe(url),
                        error=self._state.last_error,
                        backoff=backoff,
                    )
            finally:
                self._state.connected = False
                self._channel = None
                self.restart()
                self._connection = None
                self._sink.lost()
            if not self._running:
                break
            self._state.reconnects += 1
            self._sleep = task.deferLater(self._reactor, backoff, lambda: None)
            try:
                yield self._sleep
            except defer.CancelledError:
                pass
            backoff = min(BACKOFF_MOST, backoff * 2)

    @defer.inlineCallbacks
    def _open(self, url: str):
        params = parameters(url, self._password)
        creator = protocol.ClientCreator(self._reactor, TwistedProtocolConnection, params)
        connection = yield creator.connectTCP(params.host, params.port, timeout=SETUP_TIMEOUT)
        self._connection = connection
        yield self._timed(connection.ready)
        channel = yield self._timed(connection.channel())
        try:
            yield self._timed(channel.queue_declare(self._queue, passive=True))
        except Exception:
            # not there (the broker closed that channel): declare it, as a stream
            channel = yield self._timed(connection.channel())
            arguments: dict[str, Any] = {"x-queue-type": "stream"}
            if self._max_age is not None:
                arguments["x-max-age"] = f"{self._max_age}s"
            yield self._timed(channel.queue_declare(self._queue, durable=True, arguments=arguments))
        if self._exchange:
            yield self._timed(channel.queue_bind(self._queue, self._exchange, routing_key=self._binding_key))
        yield self._timed(channel.basic_qos(prefetch_count=self._prefetch))
        self._generation += 1
        generation = self._generation
        channel.on_closed.addBoth(self._closed, generation)
        offset = self._sink.resume_offset()
        queue, _ = yield self._timed(
            channel.basic_consume(self._queue, auto_ack=False, arguments={"x-stream-offset": offset})
        )
        self._channel = channel
        return channel, queue

    def _closed(self, result, generation: int):
        """The channel closed: what it delivered and was not committed will come again."""
        if generation == self._generation:
            self._sink.lost()
        return result

    @defer.inlineCallbacks
    def _consume(self, channel, queue):
        generation = self._generation
        while self._running:
            if not self._sink.accepting():
                yield self._sink.wait_accepting()
                if not channel.is_open:
                    raise ConnectionError("the channel closed")
                continue
            message = yield queue.get()
            headers = message.properties.headers or {}
            offset = headers.get("x-stream-offset")
            if not isinstance(offset, int):
                raise ValueError(f"a delivery without an x-stream-offset: is {self._queue} a stream?")
            self._sink.deliver(Delivery(offset, message.method.delivery_tag, message.body, generation))

    def _timed(self, deferred: defer.Deferred) -> defer.Deferred:
        return deferred.addTimeout(SETUP_TIMEOUT, self._reactor)
