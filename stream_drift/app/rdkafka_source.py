"""Stage 1's librdkafka consumer: confluent-kafka's ``Consumer`` behind the few calls
:class:`~stream_drift.app.ingest.IngestService` makes of aiokafka's.

Why a second client: librdkafka fetches in its own C threads, without the GIL, and hands out
a batch of C-built messages in one call, where aiokafka builds a Python ``ConsumerRecord`` per
record on the event loop (the largest item of the worker's profile). ``bench.e2e`` measures
both, fetch alone and with the worker (README "Benchmarks"): a backlog drains ~1.4 times
faster on librdkafka.

Why it is not the default: while other partitions of the events topic hold a backlog, a
partition with live records got none of them for up to 14 s (one batch after another of
the backlog's partitions; ``bench.resources``: step close → alert p50 3.2-5.2 s, p99
7.7-11.7 s, against 0.5 s and 1.5 s on aiokafka, whose batches take a share of every
partition). The
embedded broker and librdkafka's fetch order together starve it; no setting tried here
(prefetch sizes, ``fetch.max.bytes``) changed that.

Every blocking call runs in stage 1's thread (the executor the service computes batches in),
so a fetch, the decode of its batch and the rebalance callbacks happen one after the other
in that thread. librdkafka calls ``on_revoke``/``on_assign`` from inside ``consume()``; they
hand the service's async listener to the event loop and wait for it, so partitions are
flushed and committed before they move, as with aiokafka. The commit itself runs in another
thread (:func:`asyncio.to_thread`): stage 1's thread may be the one waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import Executor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka.structs import TopicPartition
from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as RdTopicPartition

from stream_drift.config import Settings
from stream_drift.pipeline.columnar import RecordBatch

log = logging.getLogger(__name__)

FETCH_WAIT_MS: Final = 100
"""Longest time the broker may hold a fetch (``fetch.wait.max.ms``). librdkafka fetches ahead
in its own threads whatever the application does, so a short wait costs no Python wake-ups;
the embedded broker holds a fetch about this long even when records arrive meanwhile, and a
live partition's records would wait as long (see ``BUSY_FETCH_WAIT_MS`` in ``ingest``)."""

PREFETCH_KBYTES: Final = 2048
PREFETCH_MESSAGES: Final = 10_000
PARTITION_FETCH_BYTES: Final = 1024 * 1024
"""librdkafka fetches a partition ahead while fewer than ``queued.min.messages`` records and
``queued.max.messages.kbytes`` of it wait, up to ``max.partition.fetch.bytes`` per fetch. With
16 MiB the resident memory grew by 78 MB while a backlog drained (``bench.resources``, one
run); with 2 MiB and 10,000 records, by 29-32 MB (three runs), the drain as fast."""

MAX_CONSUME: Final = 1_000_000
"""Most messages one ``consume()`` call takes (confluent-kafka refuses more); a larger
``kafka.consumer_max_records`` is capped to it."""

_ERROR_LOG_SECONDS: Final = 30.0  # one log line per kind of fetch error this often


def librdkafka_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """librdkafka properties of stage 1's consumer: group, timeouts and security as for
    aiokafka (:meth:`~stream_drift.config.kafka.KafkaSettings.client_kwargs`), plus
    ``extra`` (e.g. ``error_cb``).

    The dict holds the SASL password: never log it.

    Examples
    --------
    >>> from stream_drift.config import Settings
    >>> conf = librdkafka_config(Settings(app_id="drift"))
    >>> conf["group.id"], conf["enable.auto.commit"], conf["security.protocol"]
    ('drift-ingest', False, 'PLAINTEXT')
    """
    s = settings
    k = s.kafka
    conf: dict[str, Any] = {
        "bootstrap.servers": ",".join(k.servers),
        "group.id": f"{s.app_id}-ingest",
        "client.id": f"{s.app_id}-ingest",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": int(k.session_timeout_seconds * 1000),
        "heartbeat.interval.ms": int(k.heartbeat_interval_seconds * 1000),
        # As aiokafka's max_poll_interval_ms: stage 1 may go this long between fetches (with
        # the 6-s timeouts of bench.e2e and nothing more, its 1,000-model row, where stage 2
        # holds the loop, did not commit in one of two runs; with this, 4 of 4 did).
        # librdkafka also sends it as the group's rebalance timeout; a member killed with
        # SIGKILL is still replaced after the session timeout (tests/test_kill_exactness.py
        # takes as long as on aiokafka).
        "max.poll.interval.ms": max(
            60_000, int(max(k.rebalance_timeout_seconds, k.session_timeout_seconds) * 1000)
        ),
        "fetch.wait.max.ms": FETCH_WAIT_MS,
        # Its 1 s default stalls a consumer that drains faster than the broker refills the
        # queue (KAFKA-LOCAL.md).
        "fetch.queue.backoff.ms": 10,
        "max.partition.fetch.bytes": PARTITION_FETCH_BYTES,
        "queued.max.messages.kbytes": PREFETCH_KBYTES,
        "queued.min.messages": PREFETCH_MESSAGES,
        "security.protocol": k.security_protocol,
    }
    if k.uses_ssl:
        conf["ssl.ca.location"] = k.ssl_cafile or "probe"
        if k.ssl_certfile is not None:
            conf["ssl.certificate.location"] = k.ssl_certfile
        if k.ssl_keyfile is not None:
            conf["ssl.key.location"] = k.ssl_keyfile
    if k.uses_sasl:
        conf["sasl.mechanism"] = k.sasl_mechanism
        conf["sasl.username"] = k.sasl_username
        if k.sasl_password is not None:
            conf["sasl.password"] = k.sasl_password.get_secret_value()
    return {**conf, **extra}


@dataclass
class Fetched:
    """One fetch, ready for stage 1: its rows, the first and the next offset of each
    partition in it, and how many records it held (errors excluded)."""

    records: RecordBatch
    next_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    first_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    revoked_before: dict[TopicPartition, int] = field(default_factory=dict)
    """How many times each partition had been revoked when its records were handed out
    (set by stage 1's loop): a partition revoked since then, even if it came back, holds
    records of the assignment before (see ``IngestService._ingest``)."""

    @property
    def count(self) -> int:
        return len(self.records)


def batch_of_messages(messages: Iterable[Any]) -> tuple[Fetched, list[Any]]:
    """The records of librdkafka ``messages`` as one batch, and the errors among them.

    Runs of one partition become one source each; a partition may come back in several
    runs, each in offset order.

    Examples
    --------
    >>> class M:  # the methods of confluent_kafka.Message that are read
    ...     def __init__(self, p, o): self.p, self.o = p, o
    ...     def error(self): return None
    ...     def topic(self): return "ev"
    ...     def partition(self): return self.p
    ...     def value(self): return b"{}"
    ...     def offset(self): return self.o
    ...     def timestamp(self): return (1, 1000 + self.o)
    ...     def key(self): return None
    >>> fetched, errors = batch_of_messages([M(0, 5), M(0, 6), M(1, 2)])
    >>> fetched.records.sources, fetched.next_offsets, errors
    ([('ev', 0, 2), ('ev', 1, 3)], {TopicPartition(topic='ev', partition=0): 7, \
TopicPartition(topic='ev', partition=1): 3}, [])
    """
    values: list[bytes | None] = []
    offsets: list[int] = []
    timestamps: list[int] = []
    keys: list[bytes | None] = []
    sources: list[tuple[str, int, int]] = []
    errors: list[Any] = []
    next_offsets: dict[TopicPartition, int] = {}
    first_offsets: dict[TopicPartition, int] = {}
    topic: str | None = None
    partition = -1
    for m in messages:
        if m.error() is not None:
            errors.append(m.error())
            continue
        t, p = m.topic(), m.partition()
        if p != partition or t != topic:
            if topic is not None:
                sources.append((topic, partition, len(values)))
                next_offsets[TopicPartition(topic, partition)] = offsets[-1] + 1
            topic, partition = t, p
            first_offsets.setdefault(TopicPartition(t, p), m.offset())
        values.append(m.value())
        offsets.append(m.offset())
        timestamps.append(m.timestamp()[1])
        keys.append(m.key())
    if topic is not None:
        sources.append((topic, partition, len(values)))
        next_offsets[TopicPartition(topic, partition)] = offsets[-1] + 1
    batch = RecordBatch(values, offsets, timestamps, keys, sources)
    return Fetched(batch, next_offsets, first_offsets), errors


Listener = Any  # an aiokafka ConsumerRebalanceListener: async on_partitions_{revoked,assigned}


class RdkafkaSource:
    """Stage 1's consumer on librdkafka, with the calls the ingest service makes.

    Parameters
    ----------
    settings
        The worker's settings (:func:`librdkafka_config`).
    executor
        Stage 1's single thread: every fetch and the close run there.
    factory
        Builds the ``confluent_kafka.Consumer`` from its config (tests pass their own).
    """

    def __init__(
        self,
        settings: Settings,
        executor: Executor,
        factory: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self._settings = settings
        self._config = librdkafka_config(settings)
        self._executor = executor
        self._factory = factory
        self._consumer: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: Listener | None = None
        self._callback_timeout = max(60.0, settings.kafka.rebalance_timeout_seconds)
        self._assigned: frozenset[TopicPartition] = frozenset()
        self._partition_counts: dict[str, int] = {}
        self._error_logged: dict[str, float] = {}
        self._closing = False

    async def start(self) -> None:
        """Create the consumer (it connects in its own threads)."""
        self._loop = asyncio.get_running_loop()
        if self._factory is not None:
            self._consumer = self._factory({**self._config, "error_cb": self._on_error})
        else:
            self._consumer = Consumer(
                librdkafka_config(self._settings, error_cb=self._on_error),
                logger=logging.getLogger("stream_drift.librdkafka"),
            )

    def subscribe(self, topics: list[str], listener: Listener) -> None:
        """Join the group for ``topics``; ``listener`` hears of every rebalance."""
        self._listener = listener
        self._consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    async def fetch(self, max_records: int, timeout_ms: int) -> Fetched:
        """Up to ``max_records`` records, waiting at most ``timeout_ms`` for them (in stage 1's
        thread)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.fetch_now, max_records, timeout_ms)

    def fetch_now(self, max_records: int, timeout_ms: int) -> Fetched:
        """:meth:`fetch`, in the calling thread."""
        n = min(max_records, MAX_CONSUME)
        messages = self._consumer.consume(n, timeout=timeout_ms / 1000)
        fetched, errors = batch_of_messages(messages)
        for error in errors:
            self._log_error(error)
        for tp in fetched.next_offsets:
            if tp.topic not in self._partition_counts:
                meta = self._consumer.list_topics(tp.topic, timeout=10).topics.get(tp.topic)
                self._partition_counts[tp.topic] = len(meta.partitions) if meta else 0
        return fetched

    def assignment(self) -> frozenset[TopicPartition]:
        """The partitions this worker owns now (as of the last rebalance callback)."""
        return self._assigned

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        """The partitions of ``topic`` (known once a fetch returned records of it)."""
        n = self._partition_counts.get(topic)
        return None if n is None else set(range(n))

    def highwater(self, tp: TopicPartition) -> int | None:
        """The partition's high-water mark from the last fetch answer, ``None`` if unknown."""
        try:
            marks = self._consumer.get_watermark_offsets(
                RdTopicPartition(tp.topic, tp.partition), cached=True
            )
        except Exception:  # not fetched yet (librdkafka: no cached offsets)
            return None
        if marks is None or marks[1] < 0:
            return None
        return int(marks[1])

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit ``offsets`` (next offset to read per partition); raise when any fails."""
        parts = [RdTopicPartition(tp.topic, tp.partition, off) for tp, off in offsets.items()]
        done = await asyncio.to_thread(self._consumer.commit, offsets=parts, asynchronous=False)
        failed = [tp for tp in done or () if tp.error is not None]
        if failed:
            raise KafkaException(failed[0].error)

    async def committed(
        self, tps: list[TopicPartition], timeout: float = 4.0
    ) -> dict[TopicPartition, int | None]:
        """The group's committed offset of each of ``tps`` (``None``: none), from the broker;
        raises after ``timeout`` seconds (the thread that waits for it ends then too)."""
        parts = [RdTopicPartition(tp.topic, tp.partition) for tp in tps]
        found = await asyncio.to_thread(self._consumer.committed, parts, timeout=timeout)
        failed = [p for p in found if p.error is not None]
        if failed:  # unknown is not "none committed": the caller tries again
            raise KafkaException(failed[0].error)
        # librdkafka answers a negative offset (OFFSET_INVALID) for a partition with none.
        return {
            TopicPartition(p.topic, p.partition): (p.offset if p.offset >= 0 else None)
            for p in found
        }

    async def stop(self) -> None:
        """Leave the group and close the consumer (in stage 1's thread, after the last fetch)."""
        if self._consumer is None:
            return
        self._closing = True  # close() revokes everything: the service flushed already
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._consumer.close)

    # --- librdkafka's callbacks, in stage 1's thread ---------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self._assigned = frozenset(TopicPartition(p.topic, p.partition) for p in partitions)
        self._call_listener("on_partitions_assigned", self._assigned)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        revoked = frozenset(TopicPartition(p.topic, p.partition) for p in partitions)
        self._call_listener("on_partitions_revoked", revoked)
        self._assigned = self._assigned - revoked

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        # Another member may own them already: its commits win, ours would fail. The
        # listener still forgets their state (a commit failure is reported, not raised).
        self._on_revoke(consumer, partitions)

    def _call_listener(self, name: str, partitions: frozenset[TopicPartition]) -> None:
        if self._listener is None or self._loop is None or self._closing:
            return
        method: Callable[[Any], Coroutine[Any, Any, None]] = getattr(self._listener, name)
        future = asyncio.run_coroutine_threadsafe(method(set(partitions)), self._loop)
        try:
            future.result(self._callback_timeout)
        except FutureTimeout:
            future.cancel()
            log.error("%s took over %g s: rebalance goes on", name, self._callback_timeout)
        except Exception:  # an exception here would come out of consume() in the thread
            log.exception("%s failed: rebalance goes on", name)

    def _on_error(self, error: Any) -> None:
        self._log_error(error)

    def _log_error(self, error: Any) -> None:
        name = str(getattr(error, "name", lambda: error)())
        now = time.monotonic()
        if now - self._error_logged.get(name, -_ERROR_LOG_SECONDS) >= _ERROR_LOG_SECONDS:
            self._error_logged[name] = now
            log.warning("stage-1 consumer (librdkafka): %s", error)
