"""Small Kafka clients: publish references, replay events, read and follow topics.

Every consumer is opened by :func:`open_consumer` and read by :func:`read_records`. Every
client here takes ``bootstrap`` (``host:port[,host:port]``), ``security``, the keyword arguments of
:meth:`stream_drift.config.KafkaSettings.client_kwargs` (TLS, SASL; ``None`` is PLAINTEXT),
and ``connect_timeout``: a broker that does not answer within it raises
:class:`BrokerUnreachableError` instead of aiokafka's retries and traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import ConsumerRecord

    from stream_drift.pipeline.reference import ReferenceProfile
    from stream_drift.pipeline.registry import PublishedReference

_T = TypeVar("_T")

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds a client waits for the brokers when none is given (``kafka.connect_timeout_seconds``
has the same default)."""


class BrokerUnreachableError(ConnectionError):
    """No broker of ``bootstrap`` answered within ``timeout`` seconds.

    ``reason`` is aiokafka's last complaint while connecting (e.g. ``[Errno 111] Connect call
    failed ...`` or a SASL error), or ``None`` when the brokers just did not answer.

    Examples
    --------
    >>> str(BrokerUnreachableError("127.0.0.1:9", 10.0))
    'cannot reach Kafka at 127.0.0.1:9 within 10 s'
    """

    def __init__(self, bootstrap: str, timeout: float, reason: str | None = None) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout
        self.reason = reason
        super().__init__(f"cannot reach Kafka at {bootstrap} within {timeout:g} s")


_AIOKAFKA_CONNECT = re.compile(r'^Unable connect to "[^"]*": (?P<reason>.*)$', re.S)


class _LastError(logging.Handler):
    """Keeps aiokafka's last error while a client starts. Being a handler, it also keeps
    Python's last-resort handler from printing it where logging is not configured (the
    command line prints one line instead); configured handlers still get the record."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.reason: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        match = _AIOKAFKA_CONNECT.match(message)
        self.reason = (match.group("reason") if match else message).splitlines()[0][:200]


async def start_client(client: Any, bootstrap: str, timeout: float) -> None:
    """Start an aiokafka producer, consumer or admin client, waiting at most ``timeout`` s.

    On failure the client is closed (no "Unclosed ..." warnings) before the error is raised.

    Raises
    ------
    BrokerUnreachableError
        When no broker answered in time, or every connection was refused or failed (its
        ``reason`` says how).
    """
    from aiokafka.errors import KafkaConnectionError

    logger = logging.getLogger("aiokafka")
    last = _LastError()
    logger.addHandler(last)
    try:
        async with asyncio.timeout(timeout):
            await client.start()
    except (TimeoutError, KafkaConnectionError) as exc:
        await _close_quietly(client)
        raise BrokerUnreachableError(bootstrap, timeout, last.reason) from exc
    except BaseException:
        await _close_quietly(client)
        raise
    finally:
        logger.removeHandler(last)


async def _close_quietly(client: Any) -> None:
    close = getattr(client, "stop", None) or client.close  # admin clients have close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(close(), timeout=5)


class ClientCommandError(Exception):
    """A client command failed; the message is the one line the command line prints.

    Examples
    --------
    >>> str(ClientCommandError("Kafka at k:1: no"))
    'Kafka at k:1: no'
    """


_UNREACHABLE_HINT = "is the broker running? --bootstrap/kafka.bootstrap_servers"


def run_client(main: Coroutine[Any, Any, _T], bootstrap: str) -> _T:
    """Run a client command's coroutine to its end.

    Parameters
    ----------
    main
        The coroutine (it may open any of this module's clients).
    bootstrap
        ``host:port[,host:port]``, for the message.

    Returns
    -------
    object
        What ``main`` returned.

    Raises
    ------
    ClientCommandError
        When no broker answered in time, or on any Kafka error: one line, no traceback.
    """
    from aiokafka.errors import KafkaError

    try:
        return asyncio.run(main)
    except BrokerUnreachableError as exc:
        why = f"; last error: {exc.reason}" if exc.reason else ""
        raise ClientCommandError(f"{exc} ({_UNREACHABLE_HINT}{why})") from exc
    except KafkaError as exc:
        raise ClientCommandError(f"Kafka at {bootstrap}: {exc}") from exc


async def check_reachable(
    bootstrap: str,
    *,
    security: Mapping[str, Any] | None = None,
    timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> None:
    """Connect once (and authenticate, with ``security``), then disconnect.

    Parameters
    ----------
    bootstrap
        ``host:port[,host:port]``.
    security
        TLS/SASL keyword arguments (``None``: PLAINTEXT).
    timeout
        Seconds to wait for the brokers.

    Raises
    ------
    BrokerUnreachableError
        When no broker answered within ``timeout`` seconds.
    """
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=max(1000, int(timeout * 1000)),
        **dict(security or {}),
    )
    await start_client(admin, bootstrap, timeout)
    await _close_quietly(admin)


#: Configs of a references topic created by :func:`publish_reference` (the defaults of
#: ``topics.cleanup_policy.references`` and ``topics.retention_ms.references``).
REFERENCE_TOPIC_CONFIGS: Mapping[str, str] = {"cleanup.policy": "compact", "retention.ms": "-1"}


async def publish_reference(
    bootstrap: str,
    topic: str,
    profile: ReferenceProfile,
    *,
    partitions: int = 1,
    topic_configs: Mapping[str, str] | None = None,
    security: Mapping[str, Any] | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> None:
    """Send a profile to the references topic, keyed ``model/version/reference-id``.

    Every distinct profile has its own key, so a compacted topic keeps them all; the latest
    record of a version (topic order) is the one workers use. Every record of a version goes
    to the partition its ``model/version`` hashes to (as when records were keyed so), which
    keeps that order defined with several partitions. The record's Kafka timestamp is its
    publish time.

    Parameters
    ----------
    bootstrap, security, connect_timeout
        As for every client here (see the module's description).
    topic
        The references topic; created (``partitions``, ``topic_configs``) when missing.
    profile
        The reference profile to send.
    partitions
        Partition count of the topic if it has to be created.
    topic_configs
        Configs of the topic if it has to be created (``None``:
        :data:`REFERENCE_TOPIC_CONFIGS`, compacted and kept forever).

    Raises
    ------
    BrokerUnreachableError
        When no broker answered within ``connect_timeout``.
    """
    from aiokafka import AIOKafkaProducer

    from stream_drift.app import admin
    from stream_drift.pipeline.registry import reference_record_key

    configs = dict(REFERENCE_TOPIC_CONFIGS if topic_configs is None else topic_configs)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        max_request_size=16 * 1024 * 1024,
        partitioner=reference_partitioner,
        **dict(security or {}),
    )
    await start_client(producer, bootstrap, connect_timeout)
    try:
        # Make sure the topic exists with its partitions before the first send auto-creates it.
        await admin.create_topics(
            bootstrap, {topic: partitions}, configs={topic: configs}, security=security
        )
        await producer.send_and_wait(
            topic, profile.to_json().encode(), key=reference_record_key(profile).encode()
        )
    finally:
        await producer.stop()


def reference_partitioner(
    key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
) -> int:
    """Partition of a references record: Kafka's default partitioner applied to the key's
    ``model/version`` part (the key without its last ``/reference-id`` segment), so every
    profile of a version lands where records keyed ``model/version`` always did and topic
    order between them is defined.

    Parameters
    ----------
    key
        The record key, ``model/version/reference-id``.
    all_partitions, available
        Partition ids of the topic, and those with a leader.

    Returns
    -------
    int
        The partition id.

    Examples
    --------
    >>> a = reference_partitioner(b"m/1/sha256:aa", [0, 1, 2, 3], [0, 1, 2, 3])
    >>> a == reference_partitioner(b"m/1/sha256:bb", [0, 1, 2, 3], [0, 1, 2, 3])
    True
    """
    from aiokafka.partitioner import DefaultPartitioner

    prefix = key.rsplit(b"/", 1)[0] if key is not None else None
    return int(DefaultPartitioner()(prefix, list(all_partitions), list(available)))


async def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[bytes],
    *,
    rate: float = 0.0,
    security: Mapping[str, Any] | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> int:
    """Send values (one message each); ``rate`` > 0 paces them at that many per second.

    Parameters
    ----------
    bootstrap, security, connect_timeout
        As for every client here (see the module's description).
    topic
        Destination topic.
    values
        Message values, sent in order.
    rate
        Messages per second; 0 sends as fast as possible.

    Returns
    -------
    int
        The number of messages sent (all acknowledged).

    Raises
    ------
    BrokerUnreachableError
        When no broker answered within ``connect_timeout``.
    """
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=20,
        max_batch_size=512 * 1024,
        **dict(security or {}),
    )
    await start_client(producer, bootstrap, connect_timeout)
    sent = 0
    start = time.monotonic()
    try:
        futures = []
        for value in values:
            futures.append(await producer.send(topic, value))
            sent += 1
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0.005:
                    await asyncio.sleep(ahead)
            if len(futures) >= 10_000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


async def open_consumer(
    bootstrap: str,
    *,
    group: str | None = None,
    security: Mapping[str, Any] | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    **options: Any,
) -> AIOKafkaConsumer:
    """A started aiokafka consumer with manual commits: the one place a consumer is built.

    Parameters
    ----------
    bootstrap
        ``host:port[,host:port]``.
    group
        Consumer group id; ``None`` reads without a group (the caller assigns partitions).
    security
        TLS/SASL keyword arguments, :meth:`stream_drift.config.KafkaSettings.client_kwargs`
        (``None``: PLAINTEXT).
    connect_timeout
        Seconds to wait for the brokers before :class:`BrokerUnreachableError`.
    **options
        Further keyword arguments of ``AIOKafkaConsumer`` (fetch sizes, group timeouts ...).

    Raises
    ------
    BrokerUnreachableError
        When no broker answered within ``connect_timeout``.
    """
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        **options,
        **dict(security or {}),
    )
    await start_client(consumer, bootstrap, connect_timeout)
    return consumer


async def open_topic(
    bootstrap: str,
    topic: str,
    *,
    from_beginning: bool = False,
    security: Mapping[str, Any] | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    **options: Any,
) -> AIOKafkaConsumer:
    """A started consumer without a group, assigned every partition of ``topic`` (as the
    broker lists them: a topic created elsewhere may differ from the config), at its oldest
    record or at its end.

    Parameters are those of :func:`open_consumer`, and ``from_beginning``.

    Raises
    ------
    BrokerUnreachableError
        When no broker answered within ``connect_timeout``.
    stream_drift.app.admin.TopicNotFoundError
        When the broker does not list the topic (within 5 s).
    """
    from aiokafka.structs import TopicPartition

    from stream_drift.app import admin

    consumer = await open_consumer(
        bootstrap, security=security, connect_timeout=connect_timeout, **options
    )
    try:
        found = await admin.partition_ids(
            bootstrap, topic, timeout=connect_timeout, security=security
        )
        partitions = [TopicPartition(topic, p) for p in found]
        consumer.assign(partitions)
        if from_beginning:
            await consumer.seek_to_beginning(*partitions)
        else:
            await consumer.seek_to_end(*partitions)
    except BaseException:
        await _close_quietly(consumer)
        raise
    return consumer


async def read_records(
    consumer: AIOKafkaConsumer,
    *,
    idle_timeout: float | None = None,
    max_seconds: float | None = None,
    caught_up: Callable[[], Awaitable[bool]] | None = None,
    join_grace: float = 0.0,
    poll_seconds: float = 0.2,
    max_records: int | None = None,
) -> AsyncIterator[ConsumerRecord]:
    """Yield a started consumer's records as they come, until it has been idle long enough.

    Parameters
    ----------
    consumer
        An assigned or subscribed consumer (it is not stopped here).
    idle_timeout
        Stop after this many seconds with nothing new (``None``: never). The time the caller
        spends on the records of a poll does not count as idle.
    max_seconds
        Stop after this many seconds in all (``None``: never).
    caught_up
        Checked after every poll: stop as soon as it answers ``True``.
    join_grace
        A consumer in a group with no partitions assigned yet is joining (which may wait for a
        departed member's session to expire): that is not idle, for up to these seconds.
    poll_seconds
        Longest wait of one poll.
    max_records
        Most records returned by one poll (``None``: no limit).
    """
    start = last = time.monotonic()
    while max_seconds is None or time.monotonic() - start < max_seconds:
        batch = await consumer.getmany(timeout_ms=int(poll_seconds * 1000), max_records=max_records)
        for records in batch.values():
            for record in records:
                yield record
        now = time.monotonic()
        joining = join_grace > 0 and not consumer.assignment() and now - start < join_grace
        if batch or joining:
            last = now
        if caught_up is not None and await caught_up():
            return
        if idle_timeout is not None and now - last > idle_timeout:
            return


async def follow(
    bootstrap: str,
    topic: str,
    *,
    from_beginning: bool = False,
    idle_timeout: float | None = None,
    security: Mapping[str, Any] | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> AsyncIterator[ConsumerRecord]:
    """Yield the records of every partition of a topic, without a consumer group.

    Parameters
    ----------
    bootstrap, security, connect_timeout
        As for every client here (see the module's description).
    topic
        The topic to follow.
    from_beginning
        Start at the oldest record instead of the end.
    idle_timeout
        Stop after this many seconds with nothing new (``None``: never).

    Raises
    ------
    BrokerUnreachableError
        When no broker answered within ``connect_timeout``.
    """
    consumer = await open_topic(
        bootstrap,
        topic,
        from_beginning=from_beginning,
        security=security,
        connect_timeout=connect_timeout,
    )
    try:
        async for record in read_records(consumer, idle_timeout=idle_timeout):
            yield record
    finally:
        await consumer.stop()


async def open_history(
    bootstrap: str,
    topic: str,
    *,
    security: Mapping[str, Any] | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> AIOKafkaConsumer | None:
    """A started consumer of every partition of ``topic`` from its beginning, without a
    group (to read a topic's history), or ``None`` when the topic does not exist."""
    from stream_drift.app.admin import TopicNotFoundError

    try:
        return await open_topic(
            bootstrap,
            topic,
            from_beginning=True,
            security=security,
            connect_timeout=connect_timeout,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=200,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
    except TopicNotFoundError:
        return None


def caught_up(consumer: AIOKafkaConsumer) -> Callable[[], Awaitable[bool]]:
    """The check :func:`read_records` ends on: every assigned partition's position has
    reached its fetch high-water mark (Tansu's end offsets are too low to decide it)."""
    partitions = sorted(consumer.assignment())

    async def check() -> bool:
        marks = [consumer.highwater(tp) for tp in partitions]
        if any(h is None for h in marks):
            return False
        positions = [await consumer.position(tp) for tp in partitions]
        return all(p >= h for p, h in zip(positions, marks, strict=True))

    return check


async def read_reference_history(
    bootstrap: str,
    topic: str,
    *,
    model: str | None = None,
    model_version: str | None = None,
    idle_timeout: float = 1.0,
    max_seconds: float = 60.0,
    security: Mapping[str, Any] | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> list[PublishedReference]:
    """Every profile on the references topic, oldest first, with the current one marked.

    Reads every partition from the beginning without a consumer group, until each partition's
    position reaches the fetch high-water mark or nothing arrived for ``idle_timeout`` seconds
    (Tansu's "latest offset" is too low, so ``end_offsets()`` is not used), at most
    ``max_seconds``. Records that are not valid profiles are skipped.

    Parameters
    ----------
    bootstrap, security, connect_timeout
        As for every client here (see the module's description).
    topic
        The references topic.
    model, model_version
        Keep only that model (and version); ``None`` keeps all. The current profile of a
        version is decided over the whole topic either way.
    idle_timeout
        Seconds without a record after which the topic counts as read.
    max_seconds
        Upper bound of the whole read.

    Returns
    -------
    list[stream_drift.pipeline.registry.PublishedReference]
        As :func:`stream_drift.pipeline.registry.reference_history` orders and marks them;
        empty when the topic does not exist.

    Raises
    ------
    BrokerUnreachableError
        When no broker answered within ``connect_timeout``.
    """
    import json

    from stream_drift.pipeline.reference import ReferenceError, ReferenceProfile
    from stream_drift.pipeline.registry import PublishedReference as Published
    from stream_drift.pipeline.registry import reference_history

    consumer = await open_history(
        bootstrap, topic, security=security, connect_timeout=connect_timeout
    )
    if consumer is None:  # Apache Kafka without auto-creation: none published
        return []
    found: list[Published] = []
    try:
        records = read_records(
            consumer,
            idle_timeout=idle_timeout,
            max_seconds=max_seconds,
            caught_up=caught_up(consumer),
        )
        async for m in records:
            try:
                profile = ReferenceProfile.from_dict(json.loads(m.value or b""))
            except (ValueError, ReferenceError):
                continue
            key = m.key.decode("utf-8", "replace") if m.key else ""
            found.append(
                Published.of(
                    profile,
                    timestamp_ms=m.timestamp,
                    partition=m.partition,
                    offset=m.offset,
                    key=key,
                )
            )
    finally:
        await consumer.stop()
    return [
        r
        for r in reference_history(found)
        if (model is None or r.model == model)
        and (model_version is None or r.model_version == model_version)
    ]


async def open_group_consumer(
    bootstrap: str,
    topic: str,
    group: str,
    *,
    from_beginning: bool = False,
    session_timeout: float = 60.0,
    heartbeat_interval: float = 3.0,
    rebalance_timeout: float = 60.0,
    max_poll_interval: float = 300.0,
    security: Mapping[str, Any] | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> AIOKafkaConsumer:
    """A started aiokafka consumer of ``topic`` in consumer group ``group``, manual commits.

    The caller reads with :func:`read_records` (the group is joined there, not in here),
    commits with ``commit({tp: offset})`` and stops it.
    A group with no committed offset starts at the oldest record with ``from_beginning``,
    at the end otherwise.

    Parameters
    ----------
    bootstrap, security, connect_timeout
        As for every client here (see the module's description).
    topic
        The topic to subscribe to.
    group
        Consumer group id (its committed offsets survive restarts).
    from_beginning
        Where a group without a committed offset starts.
    session_timeout, heartbeat_interval, rebalance_timeout
        Group session timeout, heartbeat interval and rebalance timeout, seconds.
    max_poll_interval
        Longest time between two reads before the consumer leaves the group, seconds: more
        than the longest processing of one batch.

    Raises
    ------
    BrokerUnreachableError
        When no broker answered within ``connect_timeout``.
    """
    consumer = await open_consumer(
        bootstrap,
        group=group,
        security=security,
        connect_timeout=connect_timeout,
        auto_offset_reset="earliest" if from_beginning else "latest",
        session_timeout_ms=int(session_timeout * 1000),
        heartbeat_interval_ms=int(heartbeat_interval * 1000),
        rebalance_timeout_ms=int(rebalance_timeout * 1000),
        max_poll_interval_ms=int(max_poll_interval * 1000),
    )
    # Subscribed after start(): the group join (which may wait for a departed member's
    # session to expire) happens in the first reads, not within ``connect_timeout``.
    consumer.subscribe([topic])
    return consumer
