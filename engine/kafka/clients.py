"""The one place Kafka clients are built: producers, consumers and admin clients alike.

Every component of the engine (WAL appender and consumer, metadata store, response
channel, egress, subscriptions, admin API) gets its librdkafka client from here, so all
of them share one policy for the three things librdkafka leaves to the application:

**Logging.** librdkafka's own log lines go through structlog (``engine.logs``) with the
client's name bound (``kafka_client=wal-producer`` ...), so a line says which client it
is about. They are served from the client's ``poll``/``consume``, like every callback.

**Errors.** ``error_cb`` receives the client-level errors (brokers down, authentication
failures, a fatal idempotence error). A *fatal* error means the client can do nothing
any more (librdkafka stops it): the callback raises :class:`KafkaFatalError`, so it
surfaces from the very ``poll``/``flush``/``consume`` call of the thread that owns the
client, whose loop ends the component (the WAL threads then stop the engine with exit
code 1) instead of stalling silently. Other errors are logged as warnings, at most once
per error code every :data:`_ERROR_LOG_INTERVAL_S` per client (a broker outage reports
the same error many times a second), since librdkafka retries them itself.

**A full local queue.** ``produce`` raises ``BufferError`` when librdkafka's queue
(100,000 records by default) is full: the broker is far behind or gone. :func:`produce`
serves delivery reports (``poll``) and retries until a deadline, then raises
:class:`KafkaQueueFull`; a caller that must not block passes ``wait_s=0`` and gets the
typed error at once. Retrying in place rather than awaiting keeps the caller's place in
the partition's order.

The hot-path settings (``linger.ms``, ``fetch.wait.max.ms`` ...) stay with the component
that needs them: they are passed in, not decided here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient

from engine.errors import EngineError
from engine.logs import get_logger

__all__ = [
    "KafkaClientError",
    "KafkaFatalError",
    "KafkaQueueFull",
    "admin_client",
    "consumer",
    "produce",
    "producer",
]

_ERROR_LOG_INTERVAL_S: Final = 10.0
_FULL_QUEUE_POLL_S: Final = 0.01


class KafkaClientError(EngineError):
    """A Kafka client of the engine failed in a way its caller must handle."""


class KafkaFatalError(KafkaClientError):
    """librdkafka reported a fatal error: the client is unusable and must be replaced
    (for the engine's WAL clients: the process stops and is restarted)."""

    def __init__(self, client: str, error: KafkaError) -> None:
        super().__init__(
            f"fatal Kafka error in client {client}: {error.str()}; the client cannot continue "
            "(restart the engine; if it recurs, check the broker and the client's credentials)"
        )
        self.error = error


class KafkaQueueFull(KafkaClientError):
    """The producer's local queue stayed full until the deadline: Kafka is not taking records."""


_RATE_LIMITED_FACILITIES: Final = frozenset({"FAIL"})
"""librdkafka log facilities logged at most once per :data:`_ERROR_LOG_INTERVAL_S` per
client: a broker outage makes every client report each failed connection attempt
(dozens of lines a second per engine)."""


class _LibrdkafkaLog:
    """librdkafka's logger: confluent-kafka calls ``log(level, "%s [%s] %s", fac, name, text)``."""

    def __init__(self, client: str) -> None:
        self._log = get_logger("librdkafka", kafka_client=client)
        self._last_logged: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def log(self, level: int, fmt: str, *args: Any) -> None:
        if len(args) == 3:
            facility, _name, text = args
            facility = str(facility)
            suppressed = 0
            if facility in _RATE_LIMITED_FACILITIES:
                now = time.monotonic()
                with self._lock:
                    last = self._last_logged.get(facility)
                    if last is not None and now - last < _ERROR_LOG_INTERVAL_S:
                        self._suppressed[facility] = self._suppressed.get(facility, 0) + 1
                        return
                    self._last_logged[facility] = now
                    suppressed = self._suppressed.pop(facility, 0)
            if suppressed:
                self._log.log(level, str(text), facility=facility, similar_lines_suppressed=suppressed)
            else:
                self._log.log(level, str(text), facility=facility)
        else:
            self._log.log(level, fmt % args if args else fmt)


class _ErrorPolicy:
    """The ``error_cb`` of one client (module docstring)."""

    def __init__(self, client: str, on_error: Callable[[KafkaError], None] | None) -> None:
        self._client = client
        self._on_error = on_error
        self._log = get_logger(__name__, kafka_client=client)
        self._last_logged: dict[int, float] = {}
        self._lock = threading.Lock()

    def __call__(self, error: KafkaError) -> None:
        if error.fatal():
            self._log.error("fatal Kafka client error", error=error.str(), code=error.name())
            raise KafkaFatalError(self._client, error)
        if self._on_error is not None:
            self._on_error(error)
        now = time.monotonic()
        with self._lock:
            last = self._last_logged.get(error.code())
            if last is not None and now - last < _ERROR_LOG_INTERVAL_S:
                return
            self._last_logged[error.code()] = now
        self._log.warning("Kafka client error (librdkafka retries)", error=error.str(), code=error.name())


def _config(
    base: Mapping[str, Any], client: str, on_error: Callable[[KafkaError], None] | None
) -> dict[str, Any]:
    conf = dict(base)
    conf.setdefault("client.id", f"logstrate-{client}")
    conf["logger"] = _LibrdkafkaLog(client)
    conf["error_cb"] = _ErrorPolicy(client, on_error)
    return conf


def producer(
    conf: Mapping[str, Any], *, client: str, on_error: Callable[[KafkaError], None] | None = None
) -> Producer:
    """A producer with the engine's logging and error policy; ``conf`` is the full
    librdkafka configuration (e.g. ``KafkaConfig.client_config(...)``) and ``client``
    names it in logs (and ``client.id`` unless ``conf`` sets one)."""
    return Producer(_config(conf, client, on_error))


def consumer(
    conf: Mapping[str, Any], *, client: str, on_error: Callable[[KafkaError], None] | None = None
) -> Consumer:
    """A consumer with the engine's logging and error policy (see :func:`producer`)."""
    return Consumer(_config(conf, client, on_error))


def admin_client(conf: Mapping[str, Any], *, client: str) -> AdminClient:
    """An admin client with the engine's logging and error policy (see :func:`producer`)."""
    return AdminClient(_config(conf, client, None))


def produce(
    target: Producer,
    topic: str,
    *,
    wait_s: float,
    on_wait: Callable[[], None] | None = None,
    **kwargs: Any,
) -> None:
    """``target.produce(topic, **kwargs)``, waiting up to ``wait_s`` for room in a full queue.

    While the queue is full, delivery reports are served (``poll``), which frees room,
    and ``on_wait`` runs after each poll (the WAL appender hands settled reports to the
    event loop there). Raises :class:`KafkaQueueFull` once ``wait_s`` has passed;
    ``KafkaException`` (e.g. a record over ``message.max.bytes``) as ``produce`` does.
    """
    deadline: float | None = None  # only a full queue reads the clock (hot path)
    while True:
        try:
            target.produce(topic, **kwargs)
            return
        except BufferError:
            now = time.monotonic()
            if deadline is None:
                deadline = now + wait_s
            if now >= deadline:
                raise KafkaQueueFull(
                    f"the Kafka producer's local queue stayed full for {wait_s:g}s (topic {topic}): "
                    "the brokers are not acknowledging records; check that Kafka is up and keeping pace"
                ) from None
            target.poll(_FULL_QUEUE_POLL_S)
            if on_wait is not None:
                on_wait()
