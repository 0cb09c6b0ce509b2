"""Small Kafka clients for the command line: publish references, replay events, follow topics.

Every client here takes ``security``, the keyword arguments of
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
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from stream_drift.pipeline.events import PREDICTION_SERIES, is_prediction_series
from stream_drift.pipeline.reference import ReferenceProfile
from stream_drift.tools.datasets import detect_format, is_event, read_columns

if TYPE_CHECKING:
    from stream_drift.pipeline.registry import PublishedReference

_encode = msgspec.json.Encoder().encode

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
    bootstrap
        ``host:port[,host:port]``.
    topic
        The references topic; created (``partitions``, ``topic_configs``) when missing.
    profile
        The reference profile to send.
    partitions
        Partition count of the topic if it has to be created.
    topic_configs
        Configs of the topic if it has to be created (``None``:
        :data:`REFERENCE_TOPIC_CONFIGS`, compacted and kept forever).
    security
        TLS/SASL keyword arguments, :meth:`stream_drift.config.KafkaSettings.client_kwargs`
        (``None``: PLAINTEXT).
    connect_timeout
        Seconds to wait for the brokers before :class:`BrokerUnreachableError`.

    Raises
    ------
    BrokerUnreachableError
        When no broker answered within ``connect_timeout``.
    """
    from aiokafka import AIOKafkaProducer

    from stream_drift.pipeline.registry import reference_record_key
    from stream_drift.tools.embedded import create_topics

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
        await create_topics(
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
    bootstrap
        ``host:port[,host:port]``.
    topic
        The references topic.
    model, model_version
        Keep only that model (and version); ``None`` keeps all. The current profile of a
        version is decided over the whole topic either way.
    idle_timeout
        Seconds without a record after which the topic counts as read.
    max_seconds
        Upper bound of the whole read.
    security
        TLS/SASL keyword arguments (``None``: PLAINTEXT).
    connect_timeout
        Seconds to wait for the brokers before :class:`BrokerUnreachableError`.

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

    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    from stream_drift.pipeline.reference import ReferenceError
    from stream_drift.pipeline.registry import PublishedReference as Published
    from stream_drift.pipeline.registry import reference_history

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=200,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        **dict(security or {}),
    )
    await start_client(consumer, bootstrap, connect_timeout)
    found: list[Published] = []
    try:
        try:
            tps = [TopicPartition(topic, p) for p in await partitions_of(consumer, topic)]
        except RuntimeError:  # no such topic (Apache Kafka without auto-creation): none published
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + max_seconds
        last = time.monotonic()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for tp, msgs in batch.items():
                for m in msgs:
                    try:
                        profile = ReferenceProfile.from_dict(json.loads(m.value or b""))
                    except (ValueError, ReferenceError):
                        continue
                    key = m.key.decode("utf-8", "replace") if m.key else ""
                    found.append(
                        Published.of(
                            profile,
                            timestamp_ms=m.timestamp,
                            partition=tp.partition,
                            offset=m.offset,
                            key=key,
                        )
                    )
            now = time.monotonic()
            if batch:
                last = now
            marks = [consumer.highwater(tp) for tp in tps]
            if all(h is not None for h in marks):
                positions = [await consumer.position(tp) for tp in tps]
                if all(p >= h for p, h in zip(positions, marks, strict=True)):
                    break
            if now - last > idle_timeout:
                break
    finally:
        await consumer.stop()
    return [
        r
        for r in reference_history(found)
        if (model is None or r.model == model)
        and (model_version is None or r.model_version == model_version)
    ]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def rows_as_events(
    columns: Mapping[str, Any],
    *,
    model: str,
    model_version: str = "",
    prediction: Sequence[str] = (),
    ts_column: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Turn table rows into events; ``ts`` is left out (send time) unless ``ts_column``.

    A column named ``event_id`` becomes the event's id (for the label join), not a feature.
    Without ``prediction``, columns named like prediction series (``prediction``,
    ``prediction.X``) are the prediction, as ``reference build`` reads them.

    Raises
    ------
    ValueError
        When columns ``prediction`` and ``prediction.X`` would both be the prediction.

    Examples
    --------
    >>> next(rows_as_events({"a": [1.5], "p": [0.2]}, model="m", prediction=["p"]))
    {'model': 'm', 'features': {'a': 1.5}, 'prediction': 0.2}
    >>> next(rows_as_events({"a": [1.5], "prediction.p": [0.2]}, model="m"))
    {'model': 'm', 'features': {'a': 1.5}, 'prediction': {'p': 0.2}}
    """
    named: dict[str, str] = {}  # column -> output name, for prediction-named columns
    if not prediction:
        auto = [c for c in columns if c != ts_column and is_prediction_series(c)]
        if PREDICTION_SERIES in auto and len(auto) > 1:
            raise ValueError(
                f"columns {', '.join(auto)}: a scalar prediction and named outputs cannot "
                "both be sent; pick the prediction with --prediction"
            )
        named = {c: c.removeprefix(PREDICTION_SERIES + ".") for c in auto}
    names = [
        c
        for c in columns
        if c not in prediction and c not in (ts_column, "event_id") and c not in named
    ]
    ids = columns.get("event_id")
    n = len(next(iter(columns.values()))) if columns else 0
    for i in range(n):
        event: dict[str, Any] = {"model": model}
        if model_version:
            event["model_version"] = model_version
        if ids is not None and ids[i] is not None:
            event["event_id"] = str(ids[i])
        if ts_column is not None:
            event["ts"] = _clean(columns[ts_column][i])
        event["features"] = {c: _clean(columns[c][i]) for c in names}
        if len(prediction) == 1:
            event["prediction"] = _clean(columns[prediction[0]][i])
        elif prediction:
            event["prediction"] = {c: _clean(columns[c][i]) for c in prediction}
        elif PREDICTION_SERIES in named:
            event["prediction"] = _clean(columns[PREDICTION_SERIES][i])
        elif named:
            event["prediction"] = {out: _clean(columns[c][i]) for c, out in named.items()}
        yield event


def load_events(
    path: Path,
    *,
    model: str | None,
    model_version: str = "",
    prediction: Sequence[str] = (),
    ts_column: str | None = None,
) -> list[bytes]:
    """Events to replay from a file: JSON lines are sent as they are (with ``--model``
    filling in a missing ``model``); CSV / Parquet rows become events of ``model``."""
    if detect_format(path) == "jsonl":
        out = []
        decoder = msgspec.json.Decoder()
        for line in path.read_bytes().splitlines():
            if not line.strip():
                continue
            if model is None:
                out.append(line)
                continue
            obj = decoder.decode(line)
            if isinstance(obj, dict) and not is_event(obj):
                obj = next(
                    rows_as_events(
                        {k: [v] for k, v in obj.items()},
                        model=model,
                        model_version=model_version,
                        prediction=prediction,
                        ts_column=ts_column,
                    )
                )
            elif isinstance(obj, dict):
                obj.setdefault("model", model)
            out.append(_encode(obj))
        return out
    if model is None:
        raise ValueError(f"{path}: --model is needed to turn table rows into events")
    columns = read_columns(path)
    return [
        _encode(e)
        for e in rows_as_events(
            columns,
            model=model,
            model_version=model_version,
            prediction=prediction,
            ts_column=ts_column,
        )
    ]


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
    bootstrap
        ``host:port[,host:port]``.
    topic
        Destination topic.
    values
        Message values, sent in order.
    rate
        Messages per second; 0 sends as fast as possible.
    security
        TLS/SASL keyword arguments, :meth:`stream_drift.config.KafkaSettings.client_kwargs`
        (``None``: PLAINTEXT).
    connect_timeout
        Seconds to wait for the brokers before :class:`BrokerUnreachableError`.

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


async def follow(
    bootstrap: str,
    topic: str,
    *,
    from_beginning: bool = False,
    idle_timeout: float | None = None,
    security: Mapping[str, Any] | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> AsyncIterator[Any]:
    """Yield the records of every partition of a topic, without a consumer group.

    Parameters
    ----------
    bootstrap
        ``host:port[,host:port]``.
    topic
        The topic to follow.
    from_beginning
        Start at the oldest record instead of the end.
    idle_timeout
        Stop after this many seconds with nothing new (``None``: never).
    security
        TLS/SASL keyword arguments, :meth:`stream_drift.config.KafkaSettings.client_kwargs`
        (``None``: PLAINTEXT).
    connect_timeout
        Seconds to wait for the brokers before :class:`BrokerUnreachableError`.

    Raises
    ------
    BrokerUnreachableError
        When no broker answered within ``connect_timeout``.
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        **dict(security or {}),
    )
    await start_client(consumer, bootstrap, connect_timeout)
    try:
        partitions = await partitions_of(consumer, topic)
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        last = time.monotonic()
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            for msgs in batch.values():
                for m in msgs:
                    yield m
            if batch:
                last = time.monotonic()
            elif idle_timeout is not None and time.monotonic() - last > idle_timeout:
                return
    finally:
        await consumer.stop()


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
) -> Any:
    """A started aiokafka consumer of ``topic`` in consumer group ``group``, manual commits.

    The caller reads with ``getmany()`` (the group is joined there, not in here), commits
    with ``commit({tp: offset})`` and stops it.
    A group with no committed offset starts at the oldest record with ``from_beginning``,
    at the end otherwise.

    Parameters
    ----------
    bootstrap
        ``host:port[,host:port]``.
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
    security
        TLS/SASL keyword arguments, :meth:`stream_drift.config.KafkaSettings.client_kwargs`
        (``None``: PLAINTEXT).
    connect_timeout
        Seconds to wait for the brokers before :class:`BrokerUnreachableError`.

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
        auto_offset_reset="earliest" if from_beginning else "latest",
        session_timeout_ms=int(session_timeout * 1000),
        heartbeat_interval_ms=int(heartbeat_interval * 1000),
        rebalance_timeout_ms=int(rebalance_timeout * 1000),
        max_poll_interval_ms=int(max_poll_interval * 1000),
        **dict(security or {}),
    )
    await start_client(consumer, bootstrap, connect_timeout)
    # Subscribed after start(): the group join (which may wait for a departed member's
    # session to expire) happens in the first reads, not within ``connect_timeout``.
    consumer.subscribe([topic])
    return consumer


async def partitions_of(consumer: Any, topic: str) -> list[int]:
    """Partition ids of a topic, from the broker's metadata (waits up to 5 s)."""
    for _ in range(50):
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return sorted(parts)
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic!r} not found")
