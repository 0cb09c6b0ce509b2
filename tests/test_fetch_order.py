"""Stage 1's fetch requests ask first for the partition served longest ago (issue 10, item 6).

The order is applied to the requests aiokafka's own fetcher builds, on a real consumer
assigned to real partitions of the session broker: if aiokafka renames or reshapes what this
relies on, these tests fail instead of the order silently going back to random.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.protocol.fetch import FetchRequest

from stream_drift.app.fetch_order import LeastServedFirst

pytestmark = pytest.mark.kafka


async def _consumer(bootstrap: str, topic: str, partitions: int) -> AIOKafkaConsumer:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, replication_factor=1)])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await consumer.start()
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    return consumer


class SentRequests:
    """Records the partition order of every fetch request the consumer's client sends."""

    def __init__(self, consumer: Any) -> None:
        self.orders: list[list[int]] = []
        client = consumer._client
        send = client.send

        async def recording(node_id: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(request, FetchRequest):
                self.orders.append([p[0] for _t, parts in request.topics for p in parts])
            return await send(node_id, request, *args, **kwargs)

        client.send = recording

    async def next(self) -> list[int]:
        """The order of the next request sent from now on."""
        seen = len(self.orders)
        for _ in range(200):
            if len(self.orders) > seen:
                return self.orders[seen]
            await asyncio.sleep(0.02)
        raise AssertionError("no fetch request sent within 4 s")


def test_each_request_asks_first_for_the_partition_served_longest_ago(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("order")
    clock = iter([10.0, 20.0, 30.0, 40.0])

    async def run() -> tuple[list[int], list[int], bool]:
        consumer = await _consumer(kafka_bootstrap, topic, 4)
        try:
            sent = SentRequests(consumer)
            order = LeastServedFirst(clock=lambda: next(clock))
            installed = order.install(consumer)
            for p in (2, 0, 3):
                order.served([TopicPartition(topic, p)])
            await sent.next()  # may have been built before the last served()
            first = await sent.next()
            order.served([TopicPartition(topic, 1)])
            await sent.next()
            second = await sent.next()
            return first, second, installed
        finally:
            await consumer.stop()

    first, second, installed = asyncio.run(run())
    assert installed
    assert first == [1, 2, 0, 3]  # 1 never served; then 2, 0, 3 in the order they were
    assert second == [2, 0, 3, 1]


def test_the_order_changes_what_is_fetched_not_what_is_read(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    """Every record of every partition comes once, in offset order, with the order on."""
    topic = unique_topic("order-all")
    per_partition = 300

    async def run() -> dict[int, list[int]]:
        consumer = await _consumer(kafka_bootstrap, topic, 3)
        try:
            order = LeastServedFirst()
            assert order.install(consumer)
            from aiokafka import AIOKafkaProducer

            producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
            await producer.start()
            try:
                for i in range(per_partition):
                    for p in range(3):
                        await producer.send(topic, str(i).encode(), partition=p)
                await producer.flush()
            finally:
                await producer.stop()
            seen: dict[int, list[int]] = {0: [], 1: [], 2: []}
            deadline = asyncio.get_running_loop().time() + 30
            while sum(map(len, seen.values())) < 3 * per_partition:
                assert asyncio.get_running_loop().time() < deadline, seen
                batch = await consumer.getmany(timeout_ms=200, max_records=100)
                order.served(tp for tp, msgs in batch.items() if msgs)
                for tp, msgs in batch.items():
                    seen[tp.partition].extend(int(m.value) for m in msgs)
            return seen
        finally:
            await consumer.stop()

    seen = asyncio.run(run())
    assert all(seen[p] == list(range(per_partition)) for p in range(3))


def test_a_consumer_without_the_fetcher_method_keeps_its_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Consumer:
        _fetcher = object()

    assert LeastServedFirst().install(Consumer()) is False
    assert "random fetch order" in caplog.text


def test_the_worker_shortens_aiokafkas_prefetch_backoff_on_what_aiokafka_reads() -> None:
    from aiokafka.consumer.fetcher import Fetcher

    from stream_drift.app.ingest import PREFETCH_BACKOFF_SECONDS

    # The private attribute the service sets is still what aiokafka stamps on fetched records.
    assert "_prefetch_backoff" in Fetcher._proc_fetch_request.__code__.co_names
    assert 0 < PREFETCH_BACKOFF_SECONDS < 0.1


def test_the_ingest_service_installs_both_on_its_aiokafka_consumer(kafka_bootstrap: str) -> None:
    from stream_drift.app.ingest import FETCH_MAX_BYTES, PREFETCH_BACKOFF_SECONDS, IngestService
    from stream_drift.app.runtime import Runtime
    from stream_drift.app.topics import Topics
    from stream_drift.config import Settings

    settings = Settings().override(
        {"kafka.bootstrap_servers": kafka_bootstrap, "app_id": "fetch-order-install"}
    )
    topics = Topics(partials=None, alerts=None, results=None, references=None, deadletter=None)

    async def run() -> tuple[float, str, int, int]:
        svc = IngestService(Runtime(settings), topics)
        await svc.on_start()
        try:
            fetcher: Any = svc.consumer._fetcher  # type: ignore[union-attr]
            return (
                fetcher._prefetch_backoff,
                fetcher._get_actions_per_node.__name__,
                fetcher._fetch_max_bytes,  # a fetch answer in all, and per partition
                fetcher._max_partition_fetch_bytes,
            )
        finally:
            assert svc.consumer is not None
            await svc.consumer.stop()
            svc._executor.shutdown(wait=False)

    assert asyncio.run(run()) == (
        PREFETCH_BACKOFF_SECONDS,
        "ordered",
        FETCH_MAX_BYTES,
        FETCH_MAX_BYTES,
    )
