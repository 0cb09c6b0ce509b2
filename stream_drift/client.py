"""Service-side emitter: one call per prediction, one per label, never in the way.

A service sends its drift events (DESIGN §3.1) with :class:`DriftEmitter`, built on
kafka-python (pure Python, a background sender thread, no asyncio)::

    from stream_drift.client import DriftEmitter

    emitter = DriftEmitter(bootstrap_servers="kafka:9092", model="fraud", model_version="7")
    emitter.emit(features={"amount": 12.3, "country": "DE"}, prediction=0.93, event_id=req_id)
    emitter.emit_label(event_id=req_id, label=1)  # later, when the truth is known
    emitter.close()                                # at shutdown (or use it as a context manager)

Guarantees
----------
- **Never raises** in the caller's path (unless ``strict=True``, meant for tests): what
  cannot be sent is dropped, counted by reason (:meth:`DriftEmitter.stats`, and
  ``stream_drift_emitter_dropped_total{model, reason}`` when a Prometheus ``registry`` is
  given) and logged at most once per ``log_interval_s`` (10 s) per reason.
- **Never blocks longer than** ``max_block_ms`` (50 ms by default) plus the call's own CPU
  time: the record is appended to the producer's buffer and sent by its background
  thread. The only wait is for the topic's metadata when it is not known yet (the first
  record to a topic); if it does not arrive in ``max_block_ms`` (broker down or
  unreachable) the record is dropped as ``broker_unavailable`` and, for
  ``unavailable_backoff_s`` (1 s), further records to that topic are dropped at once
  instead of waiting again. A down broker therefore costs one ``max_block_ms`` wait per
  topic per second, not one per call.
- **Bounded memory**: records handed to the producer and not yet acknowledged are at most
  ``buffer_memory`` bytes (16 MiB); beyond that records are dropped as ``buffer_full``
  without waiting (kafka-python 3 has no buffer limit of its own, the emitter keeps it).
- **Strict JSON**: NaN and ±inf become ``null`` (counted as missing by the worker); numpy
  scalars and one-element arrays become Python numbers, bools or strings; ``ts``
  (default: now) is written as float epoch seconds, from a number (seconds, or
  milliseconds above ``1e11``), an RFC 3339 string, a ``datetime`` (naive ones are read
  as UTC) or a ``numpy.datetime64``. Input the worker would refuse (no ``features`` and
  no ``prediction``, a feature named ``prediction``, an empty name, an unserializable
  value such as a list or an object, a label that is null or NaN) is dropped as
  ``invalid_input`` here, so every record sent decodes with
  :class:`~stream_drift.pipeline.decode.EventDecoder`.
- **Kafka key**: the ``event_id`` (as a UTF-8 string) when given, else the model name.
  Events and labels of one ``event_id`` therefore land on the same partition number of
  ``drift.events`` and ``drift.labels`` (with equal partition counts), which is what a
  label join co-partitioned by ``event_id`` needs; events without an id are spread by
  model.

Delivery: a record handed to the producer is retried until ``delivery_timeout_ms``
(``acks=1``; no idempotence, which Tansu lacks: a retry may rarely duplicate a record, which
drift statistics tolerate). ``sent`` counts records the broker acknowledged.

Drop reasons (stable label values): ``invalid_input``, ``broker_unavailable``,
``buffer_full``, ``too_large`` (over ``max_request_size``), ``delivery_failed`` (accepted,
then not delivered within ``delivery_timeout_ms`` or refused by the broker, or still
pending at :meth:`DriftEmitter.close`), ``closed`` (called after close) and ``error`` (any
other exception of the producer).

This module imports neither Faust nor aiokafka (a test checks it).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from stream_drift.pipeline.encode import (
    InvalidInput,
    check_model,
    check_version,
    encode_event,
    encode_json,
    encode_label,
    event_document,
    label_document,
)

if TYPE_CHECKING:
    import ssl

    from stream_drift.config import Settings

__all__ = [
    "DROP_REASONS",
    "DriftEmitter",
    "InvalidInput",
    "encode_event",
    "encode_label",
]

log = logging.getLogger(__name__)

DROP_REASONS: Final = (
    "invalid_input",
    "broker_unavailable",
    "buffer_full",
    "too_large",
    "delivery_failed",
    "closed",
    "error",
)
"""Every ``reason`` a dropped record is counted under."""

_SECURITY_KEYS: Final = (
    "security_protocol",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
    "ssl_cafile",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_context",
)


# --------------------------------------------------------------------------- accounting


class _RateLimitedLog:
    """Log drops at most once per ``interval`` seconds per reason, with the count since.

    Thread-safe (delivery failures are reported from the producer's sender thread).
    """

    def __init__(
        self, logger: logging.Logger, interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, reason: str, detail: str) -> bool:
        """Count one drop; log it (returns ``True``) unless one was logged too recently."""
        now = self.clock()
        with self._lock:
            last = self._last.get(reason)
            if last is not None and now - last < self.interval:
                self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
                return False
            self._last[reason] = now
            suppressed = self._suppressed.pop(reason, 0)
        more = f" (and {suppressed} more since the last report)" if suppressed else ""
        self.logger.warning(
            "stream_drift emitter dropped a record (%s): %s%s", reason, detail, more
        )
        return True


class _Metrics:
    """The emitter's two counters in one registry (shared by every emitter using it)."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter

        self.sent = Counter(
            "stream_drift_emitter_sent_total",
            "Records the DriftEmitter delivered to the broker (acknowledged).",
            ["model"],
            registry=registry,
        )
        self.dropped = Counter(
            "stream_drift_emitter_dropped_total",
            "Records the DriftEmitter could not send, by reason.",
            ["model", "reason"],
            registry=registry,
        )


_METRICS: weakref.WeakKeyDictionary[Any, _Metrics] = weakref.WeakKeyDictionary()
_METRICS_LOCK = threading.Lock()


def _metrics_for(registry: Any) -> _Metrics:
    with _METRICS_LOCK:
        metrics = _METRICS.get(registry)
        if metrics is None:
            metrics = _METRICS[registry] = _Metrics(registry)
        return metrics


# --------------------------------------------------------------------------- the emitter


class DriftEmitter:
    """Send drift events and labels to Kafka from a service, without ever getting in its way.

    See the module documentation for the guarantees (never raises, never blocks longer than
    ``max_block_ms``, bounded memory, counted drops, Kafka keys).

    Parameters
    ----------
    bootstrap_servers
        ``"host:port"``, a comma-separated list of them, or a list.
    model, model_version
        Written in every event (labels carry ``model`` only, per the contract).
    events_topic, labels_topic
        Default ``drift.events`` and ``drift.labels``.
    max_block_ms
        Longest wait inside :meth:`emit` / :meth:`emit_label` (topic metadata), ms.
    buffer_memory
        Bytes of record values handed to the producer and not yet acknowledged; beyond it,
        records are dropped (``buffer_full``).
    linger_ms, batch_size, compression_type
        kafka-python batching: wait up to ``linger_ms`` to fill batches of ``batch_size``
        bytes. ``compression_type`` ``None`` (default: the sender thread shares the GIL
        with the service, so compression costs the service CPU), or ``"gzip"`` (the only
        codec kafka-python has without extra packages; ``"snappy"``, ``"lz4"``,
        ``"zstd"`` need theirs).
    acks
        ``1`` (the leader's ack, default), ``"all"`` or ``0``.
    delivery_timeout_ms, request_timeout_ms, max_request_size
        kafka-python settings; a record not acknowledged within ``delivery_timeout_ms`` is
        dropped (``delivery_failed``); one larger than ``max_request_size`` is ``too_large``.
    api_version
        Broker protocol version assumed until the connection negotiates the real one.
        Given so that the constructor never waits for a broker (kafka-python otherwise
        contacts one at construction, blocking up to 30 s and raising when none answers).
        ``None`` restores that probing.
    security_protocol, sasl_mechanism, sasl_plain_username, sasl_plain_password
        SASL, same values as the worker's ``kafka:`` keys (kafka-python names).
    ssl_cafile, ssl_certfile, ssl_keyfile, ssl_context
        TLS files (PEM), or a ready :class:`ssl.SSLContext`.
    registry
        A ``prometheus_client`` registry to count in (``stream_drift_emitter_sent_total
        {model}``, ``stream_drift_emitter_dropped_total{model, reason}``); ``None``: no
        Prometheus metrics, :meth:`stats` only.
    strict
        Raise :class:`InvalidInput` for invalid input instead of counting and dropping it
        (for tests; never in production).
    log_interval_s
        At most one log line per drop reason per this many seconds.
    unavailable_backoff_s
        After a ``broker_unavailable`` drop, drop records to that topic at once for this
        long (then try again, waiting ``max_block_ms`` at most).
    client_id
        kafka-python client id (default ``stream-drift-emitter-<model>``).
    warm_up
        Fetch both topics' metadata in a background thread from construction on (up to
        30 s), so that the first records do not wait for it (see :meth:`wait_for_metadata`).
    producer_config
        Any other kafka-python producer setting, passed as is (overrides the above).

    Raises
    ------
    ValueError
        At construction only, for an invalid ``model`` or producer setting.

    Examples
    --------
    Construction does not contact the broker (here none listens on the port); records that
    cannot be sent are counted, not raised:

    >>> from stream_drift.tools.embedded import find_free_port
    >>> emitter = DriftEmitter(f"127.0.0.1:{find_free_port()}", model="fraud", max_block_ms=10)
    >>> emitter.emit(features={"amount": [1, 2]}, prediction=0.9)  # a list is not a value
    False
    >>> emitter.emit(features={"amount": 12.3}, prediction=0.9)  # no broker: dropped
    False
    >>> emitter.close(timeout=1.0)
    >>> emitter.stats()["dropped"]
    {'invalid_input': 1, 'broker_unavailable': 1}
    """

    def __init__(
        self,
        bootstrap_servers: str | list[str],
        model: str,
        model_version: str | int | None = None,
        *,
        events_topic: str = "drift.events",
        labels_topic: str = "drift.labels",
        max_block_ms: int = 50,
        buffer_memory: int = 16 * 1024 * 1024,
        linger_ms: int = 5,
        batch_size: int = 16384,
        compression_type: str | None = None,
        acks: int | str = 1,
        delivery_timeout_ms: int = 120_000,
        request_timeout_ms: int = 30_000,
        max_request_size: int = 1_048_576,
        api_version: tuple[int, ...] | None = (2, 6),
        security_protocol: str = "PLAINTEXT",
        sasl_mechanism: str | None = None,
        sasl_plain_username: str | None = None,
        sasl_plain_password: str | None = None,
        ssl_cafile: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        registry: Any = None,
        strict: bool = False,
        log_interval_s: float = 10.0,
        unavailable_backoff_s: float = 1.0,
        client_id: str | None = None,
        warm_up: bool = True,
        producer_config: Mapping[str, Any] | None = None,
    ) -> None:
        from kafka import KafkaProducer

        self.model = check_model(model)
        self.model_version = check_version(model_version)
        self.events_topic = events_topic
        self.labels_topic = labels_topic
        if max_block_ms < 0 or buffer_memory <= 0:
            raise ValueError("max_block_ms must be >= 0 and buffer_memory > 0")
        self.max_block_ms = max_block_ms
        self.buffer_memory = buffer_memory
        self.strict = strict
        self.unavailable_backoff_s = unavailable_backoff_s
        self._key_default = self.model.encode()
        config: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers,
            "client_id": client_id or f"stream-drift-emitter-{self.model}",
            "max_block_ms": max_block_ms,
            "linger_ms": linger_ms,
            "batch_size": batch_size,
            "compression_type": compression_type,
            "acks": acks,
            "enable_idempotence": False,
            "delivery_timeout_ms": delivery_timeout_ms,
            "request_timeout_ms": request_timeout_ms,
            "max_request_size": max_request_size,
            "api_version": api_version,
            "security_protocol": security_protocol,
            "sasl_mechanism": sasl_mechanism,
            "sasl_plain_username": sasl_plain_username,
            "sasl_plain_password": sasl_plain_password,
            "ssl_cafile": ssl_cafile,
            "ssl_certfile": ssl_certfile,
            "ssl_keyfile": ssl_keyfile,
            "ssl_context": ssl_context,
        }
        config.update(producer_config or {})
        self._lock = threading.Lock()
        self._sent = 0
        self._pending = 0
        self._pending_bytes = 0
        self._dropped: dict[str, int] = {}
        self._suspended: dict[str, float] = {}
        self._closed = False
        self._log = _RateLimitedLog(log, log_interval_s)
        self._metrics = None if registry is None else _metrics_for(registry)
        self._warm_up: threading.Thread | None = None
        if self._metrics is not None:
            self._metrics.sent.labels(self.model)  # the series exists (at 0) from the start
        # The security settings go in as one mapping (tests/test_security.py checks every
        # Kafka client of the package is built with them).
        security = {key: config.pop(key) for key in _SECURITY_KEYS if key in config}
        self._producer: Any = KafkaProducer(**config, **dict(security or {}))
        if warm_up:
            self._warm_up = threading.Thread(
                target=self.wait_for_metadata,
                args=(30.0,),
                name=f"stream-drift-emitter-warm-up-{self.model}",
                daemon=True,
            )
            self._warm_up.start()

    @classmethod
    def from_settings(
        cls, settings: Settings, model: str, model_version: str | int | None = None, **kwargs: Any
    ) -> DriftEmitter:
        """An emitter using a worker's settings: brokers, topic names and security.

        ``kafka.bootstrap_servers``, ``topics.events``, ``topics.labels``, the SASL/TLS keys
        (through :meth:`~stream_drift.config.KafkaSettings.client_kwargs`: its
        ``ssl_context`` and ``sasl_*`` are kafka-python's names too),
        ``kafka.producer_max_batch_size`` and ``kafka.producer_max_request_bytes``.
        ``kwargs`` override any of them.

        Raises
        ------
        ValueError
            If ``kafka.bootstrap_servers`` is ``embedded`` (an emitter needs an address).

        Examples
        --------
        >>> from stream_drift.config import Settings
        >>> s = Settings().override({"kafka.bootstrap_servers": "127.0.0.1:1",
        ...                          "topics.events": "my.events"})
        >>> e = DriftEmitter.from_settings(s, model="fraud")
        >>> e.events_topic, e.labels_topic
        ('my.events', 'drift.labels')
        >>> e.close(timeout=0)
        """
        kafka = settings.kafka
        if kafka.embedded:
            raise ValueError(
                "kafka.bootstrap_servers is 'embedded': give the emitter the broker's host:port"
            )
        config: dict[str, Any] = {
            "events_topic": settings.topics.events,
            "labels_topic": settings.topics.labels,
            "batch_size": kafka.producer_max_batch_size,
            "max_request_size": kafka.producer_max_request_bytes,
            **kafka.client_kwargs(),
        }
        config.update(kwargs)
        return cls(list(kafka.servers), model, model_version, **config)

    # ----------------------------------------------------------------------- sending

    def emit(
        self,
        features: Mapping[str, object] | None = None,
        prediction: object = None,
        *,
        event_id: str | int | None = None,
        ts: object = None,
    ) -> bool:
        """Send one event; ``True`` if handed to the producer, ``False`` if dropped (counted).

        Parameters as for :func:`encode_event`. Never raises (but :class:`InvalidInput`
        with ``strict=True``); waits at most ``max_block_ms``.
        """
        if self._closed:
            return self._drop("closed", "emit() after close()")
        try:
            doc, eid = event_document(
                self.model, self.model_version, features, prediction, event_id, ts
            )
            value = encode_json(doc)
        except Exception as exc:
            return self._invalid(exc)
        key = self._key_default if eid is None else eid.encode()
        return self._send(self.events_topic, key, value)

    def emit_label(self, *, event_id: str | int, label: object, ts: object = None) -> bool:
        """Send one label (keyed by ``event_id``); ``True`` if handed to the producer.

        ``label``: a number, class label or bool; ``ts`` default now. Never raises (but
        :class:`InvalidInput` with ``strict=True``); waits at most ``max_block_ms``.
        """
        if self._closed:
            return self._drop("closed", "emit_label() after close()")
        try:
            doc, eid = label_document(self.model, event_id, label, ts)
            value = encode_json(doc)
        except Exception as exc:
            return self._invalid(exc)
        return self._send(self.labels_topic, eid.encode(), value)

    def _invalid(self, exc: Exception) -> bool:
        if self.strict:
            if isinstance(exc, InvalidInput):
                raise exc
            raise InvalidInput(f"{type(exc).__name__}: {exc}") from exc
        detail = str(exc) if isinstance(exc, InvalidInput) else f"{type(exc).__name__}: {exc}"
        return self._drop("invalid_input", detail)

    def _send(self, topic: str, key: bytes, value: bytes) -> bool:
        if self._suspended:
            until = self._suspended.get(topic)
            if until is not None:
                if time.monotonic() < until:
                    return self._drop("broker_unavailable", f"topic {topic!r}: broker unreachable")
                self._suspended.pop(topic, None)
        size = len(value) + len(key)
        with self._lock:
            if self._pending_bytes + size > self.buffer_memory:
                full = True
            else:
                full = False
                self._pending_bytes += size
                self._pending += 1
        if full:
            return self._drop(
                "buffer_full",
                f"{self.buffer_memory} bytes are waiting to be acknowledged (broker slow or down)",
            )
        try:
            future = self._producer.send(topic, value=value, key=key)
        except Exception as exc:
            self._release(size)
            return self._send_failed(topic, exc)
        future.add_callback(self._delivered, size)
        future.add_errback(self._failed, size)
        return True

    def _send_failed(self, topic: str, exc: Exception) -> bool:
        from kafka.errors import (
            IllegalStateError,
            KafkaTimeoutError,
            MessageSizeTooLargeError,
        )

        if isinstance(exc, KafkaTimeoutError):
            self._suspended[topic] = time.monotonic() + self.unavailable_backoff_s
            return self._drop(
                "broker_unavailable",
                f"topic {topic!r}: no metadata within max_block_ms={self.max_block_ms} ({exc})",
            )
        if isinstance(exc, MessageSizeTooLargeError):
            return self._drop("too_large", str(exc))
        if isinstance(exc, IllegalStateError):
            return self._drop("closed", str(exc))
        return self._drop("error", f"{type(exc).__name__}: {exc}")

    def _release(self, size: int) -> None:
        with self._lock:
            self._pending_bytes -= size
            self._pending -= 1

    def _delivered(self, size: int, _metadata: object) -> None:
        with self._lock:
            self._pending_bytes -= size
            self._pending -= 1
            self._sent += 1
        if self._metrics is not None:
            self._metrics.sent.labels(self.model).inc()

    def _failed(self, size: int, exc: BaseException) -> None:
        self._release(size)
        self._drop("delivery_failed", f"{type(exc).__name__}: {exc}")

    def _drop(self, reason: str, detail: str) -> bool:
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + 1
        if self._metrics is not None:
            self._metrics.dropped.labels(self.model, reason).inc()
        self._log(reason, detail)
        return False

    # ----------------------------------------------------------------------- lifecycle

    def wait_for_metadata(self, timeout: float = 10.0) -> bool:
        """Wait until the partitions of both topics are known; ``True`` if they are.

        Optional: a service that must not lose its first records (the first record to a
        topic waits for its metadata at most ``max_block_ms``, and a new topic that a
        broker auto-creates can take longer) calls it once at start-up. Bounded by
        ``timeout`` (plus one ``max_block_ms``); never raises.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        for topic in (self.events_topic, self.labels_topic):
            while True:
                if self._closed:
                    return False
                try:
                    if self._producer.partitions_for(topic):
                        self._suspended.pop(topic, None)
                        break
                except Exception as exc:  # KafkaTimeoutError: no metadata within max_block_ms
                    log.debug("metadata of %r: %s", topic, exc)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                time.sleep(min(0.1, remaining))
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Send what is buffered and wait up to ``timeout`` s; ``True`` if nothing is pending.

        Records that failed count as dropped (``delivery_failed``), not as pending.
        """
        if not self._closed:
            try:
                self._producer.flush(timeout=max(0.0, timeout))
            except Exception as exc:  # KafkaTimeoutError: still pending
                log.debug("flush: %s", exc)
        return self.pending == 0

    def close(self, timeout: float = 5.0) -> None:
        """Flush and close, returning within about ``timeout`` seconds (never raises).

        Records still pending when the time is up are dropped (``delivery_failed``). Later
        calls to :meth:`emit` are dropped as ``closed``. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        producer = self._producer
        deadline = time.monotonic() + max(0.0, timeout)
        try:
            producer.flush(timeout=max(0.0, timeout))
        except Exception as exc:
            log.debug("close: flush: %s", exc)
        try:
            # KafkaProducer.close() flushes again and raises when records are still pending,
            # leaving its sender running: abort them first (they fail: delivery_failed).
            sender = getattr(producer, "_sender", None)
            if self.pending and sender is not None:
                sender.force_close()
                sender.join(max(0.0, deadline - time.monotonic()))
            producer.close(timeout=max(0.0, deadline - time.monotonic()))
        except Exception as exc:
            log.warning("stream_drift emitter: closing the producer failed: %s", exc)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ----------------------------------------------------------------------- counters

    @property
    def sent(self) -> int:
        """Records acknowledged by the broker."""
        return self._sent

    @property
    def pending(self) -> int:
        """Records handed to the producer, not yet acknowledged or failed."""
        return self._pending

    @property
    def dropped_total(self) -> int:
        """Records dropped, all reasons."""
        with self._lock:
            return sum(self._dropped.values())

    def stats(self) -> dict[str, Any]:
        """``{"sent", "pending", "pending_bytes", "dropped": {reason: n}}`` (a copy).

        Examples
        --------
        >>> e = DriftEmitter("127.0.0.1:1", model="m")
        >>> e.stats()
        {'sent': 0, 'pending': 0, 'pending_bytes': 0, 'dropped': {}}
        >>> e.close(timeout=0)
        """
        with self._lock:
            return {
                "sent": self._sent,
                "pending": self._pending,
                "pending_bytes": self._pending_bytes,
                "dropped": dict(self._dropped),
            }

    def __repr__(self) -> str:
        return (
            f"DriftEmitter(model={self.model!r}, model_version={self.model_version!r}, "
            f"events_topic={self.events_topic!r}, labels_topic={self.labels_topic!r})"
        )
