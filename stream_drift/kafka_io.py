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
from typing import Any

import msgspec
import numpy as np

from stream_drift.datasets import detect_format, is_event, read_columns
from stream_drift.events import PREDICTION_SERIES, is_prediction_series
from stream_drift.reference import ReferenceProfile

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


async def publish_reference(
    bootstrap: str,
    topic: str,
    profile: ReferenceProfile,
    *,
    partitions: int = 1,
    security: Mapping[str, Any] | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> None:
    """Send a profile to the references topic, keyed ``model/version`` (latest wins).

    Parameters
    ----------
    bootstrap
        ``host:port[,host:port]``.
    topic
        The references topic; created (compacted, ``partitions``) when missing.
    profile
        The reference profile to send.
    partitions
        Partition count of the topic if it has to be created.
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

    from stream_drift.embedded import create_topics

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, max_request_size=16 * 1024 * 1024, **dict(security or {})
    )
    await start_client(producer, bootstrap, connect_timeout)
    try:
        # Make sure the topic exists with its partitions before the first send auto-creates it.
        await create_topics(bootstrap, {topic: partitions}, compacted=[topic], security=security)
        await producer.send_and_wait(topic, profile.to_json().encode(), key=profile.key.encode())
    finally:
        await producer.stop()


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


async def partitions_of(consumer: Any, topic: str) -> list[int]:
    """Partition ids of a topic, from the broker's metadata (waits up to 5 s)."""
    for _ in range(50):
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return sorted(parts)
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic!r} not found")
