"""Helpers for tests that talk to a real Kafka-protocol broker (Tansu in CI).

Reads never use a consumer group: partitions are ``assign()``-ed and read from
the beginning until nothing new arrives for ``idle_s`` seconds. ``end_offsets()``
is not used to decide that a topic was read completely because Tansu answers a
too-low "latest offset" (it counts a record batch as one record).

Each helper has an ``async`` form (prefix ``a``) and a blocking form that runs
its own event loop (for plain pytest tests; no pytest-asyncio needed).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import RecordMetadata

__all__ = [
    "adescribe_partitions",
    "aproduce",
    "aread_topic",
    "describe_partitions",
    "produce",
    "read_topic",
    "running",
    "to_bytes",
]


class _Broker(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


_B = TypeVar("_B", bound=_Broker)


@contextmanager
def running(broker: _B) -> Iterator[_B]:
    """Start ``broker`` (the test fails, not errors, if it cannot) and stop it on exit."""
    try:
        broker.start()
    except RuntimeError as exc:
        pytest.fail(f"embedded broker did not start: {exc}")
    try:
        yield broker
    finally:
        broker.stop()


def to_bytes(value: Any) -> bytes | None:
    """Encode a test value: bytes as is, str as UTF-8, None as None, anything else as JSON."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, separators=(",", ":")).encode()


async def aproduce(
    bootstrap: str,
    topic: str,
    values: Sequence[Any],
    keys: Sequence[Any] | None = None,
    *,
    partition: int | None = None,
    timeout_s: float = 30.0,
) -> list[RecordMetadata]:
    """Produce ``values`` (with optional ``keys``) to ``topic`` and wait for delivery.

    Values and keys are encoded with :func:`to_bytes`. Returns the delivery
    metadata (partition, offset) of every record, in order.
    """
    if keys is not None and len(keys) != len(values):
        raise ValueError(f"{len(keys)} keys for {len(values)} values")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    async with asyncio.timeout(timeout_s):
        await producer.start()
        try:
            futures = [
                await producer.send(
                    topic,
                    value=to_bytes(value),
                    key=to_bytes(keys[i]) if keys is not None else None,
                    partition=partition,
                )
                for i, value in enumerate(values)
            ]
            return list(await asyncio.gather(*futures))
        finally:
            await producer.stop()


def produce(
    bootstrap: str,
    topic: str,
    values: Sequence[Any],
    keys: Sequence[Any] | None = None,
    *,
    partition: int | None = None,
    timeout_s: float = 30.0,
) -> list[RecordMetadata]:
    """Blocking form of :func:`aproduce`."""
    return asyncio.run(
        aproduce(bootstrap, topic, values, keys, partition=partition, timeout_s=timeout_s)
    )


async def aread_topic(
    bootstrap: str,
    topic: str,
    *,
    idle_s: float = 1.0,
    timeout_s: float = 20.0,
    min_records: int = 0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read every record of ``topic`` from the beginning, without a consumer group.

    Stops when no record arrived for ``idle_s`` seconds and at least
    ``min_records`` were read. If the topic does not exist after ``idle_s``
    (and ``min_records`` is 0) returns ``[]``; the metadata request that looks
    for it does not create it.

    Records are returned ordered by (partition, offset).

    Raises
    ------
    TimeoutError
        If ``timeout_s`` passes before the stop condition (the message says how
        many records were read so far).
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    records: list[ConsumerRecord[bytes, bytes]] = []
    started = time.monotonic()
    deadline = started + timeout_s
    await consumer.start()
    try:
        partitions: set[int] | None = None
        while partitions is None:
            if topic in await consumer.topics():
                partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                waited = time.monotonic() - started
                if waited >= idle_s and min_records == 0:
                    return []
                if time.monotonic() > deadline:
                    raise TimeoutError(f"topic {topic!r} does not exist after {timeout_s} s")
                await asyncio.sleep(0.1)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        last_new = time.monotonic()
        while True:
            now = time.monotonic()
            if now - last_new >= idle_s and len(records) >= min_records:
                break
            if now > deadline:
                raise TimeoutError(
                    f"reading {topic!r}: {len(records)} records after {timeout_s} s "
                    f"(wanted >= {min_records} and {idle_s} s idle)"
                )
            batch = await consumer.getmany(timeout_ms=100, max_records=10_000)
            for part in batch.values():
                records.extend(part)
            if any(batch.values()):
                last_new = time.monotonic()
    finally:
        await consumer.stop()
    records.sort(key=lambda r: (r.partition, r.offset))
    return records


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    idle_s: float = 1.0,
    timeout_s: float = 20.0,
    min_records: int = 0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Blocking form of :func:`aread_topic`."""
    return asyncio.run(
        aread_topic(bootstrap, topic, idle_s=idle_s, timeout_s=timeout_s, min_records=min_records)
    )


async def adescribe_partitions(bootstrap: str, topics: Sequence[str]) -> dict[str, int]:
    """Return the number of partitions of each existing topic among ``topics`` (via metadata).

    Lists all topics first so that asking about a missing topic does not create it.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in topics if t in existing]
        if not wanted:
            return {}
        described = await admin.describe_topics(wanted)
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}


def describe_partitions(bootstrap: str, topics: Sequence[str]) -> dict[str, int]:
    """Blocking form of :func:`adescribe_partitions`."""
    return asyncio.run(adescribe_partitions(bootstrap, topics))
