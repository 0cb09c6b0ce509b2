"""Small Kafka clients for the command line: publish references, replay events, follow topics."""

from __future__ import annotations

import asyncio
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


async def publish_reference(
    bootstrap: str, topic: str, profile: ReferenceProfile, *, partitions: int = 1
) -> None:
    """Send a profile to the references topic, keyed ``model/version`` (latest wins)."""
    from aiokafka import AIOKafkaProducer

    from stream_drift.embedded import create_topics

    # Make sure the topic exists with its partitions before the first send auto-creates it.
    await create_topics(bootstrap, {topic: partitions}, compacted=[topic])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=16 * 1024 * 1024)
    await producer.start()
    try:
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


async def produce(bootstrap: str, topic: str, values: Iterable[bytes], *, rate: float = 0.0) -> int:
    """Send values (one message each); ``rate`` > 0 paces them at that many per second."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
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
    bootstrap: str, topic: str, *, from_beginning: bool = False, idle_timeout: float | None = None
) -> AsyncIterator[Any]:
    """Yield the records of every partition of a topic, without a consumer group.

    Stops after ``idle_timeout`` seconds with nothing new (``None``: never).
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
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
