"""A broker that lost its log is seen from the group's committed offsets (issue 10's flaky
restart test).

A broker that restarts empty makes the worker's group re-join; the revoke forgets the read
positions, so neither "fetched offsets went back" nor "high-water mark below the read
position" can fire until the new log outgrows the old one. What does not move back is the
group's committed offset: stage 1 reads it back after every rebalance and compares it with the
last offset it committed itself. These tests commit real offsets on the session broker and
read them back through both stage-1 clients.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as RdTopicPartition

from stream_drift.app.admin import create_topics
from stream_drift.app.ingest import IngestService, committed_offsets
from stream_drift.app.rdkafka_source import RdkafkaSource
from stream_drift.app.runtime import Runtime
from stream_drift.app.topics import Topics
from stream_drift.config import Settings

pytestmark = pytest.mark.kafka


async def _topic_with_commits(
    bootstrap: str, topic: str, group: str, commits: dict[int, int]
) -> None:
    """Create ``topic`` (4 partitions); commit ``commits`` (partition: offset) for ``group``."""
    await create_topics(bootstrap, {topic: 4})
    committer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        parts = [RdTopicPartition(topic, p, off) for p, off in commits.items()]
        done = await asyncio.to_thread(committer.commit, offsets=parts, asynchronous=False)
        assert all(p.error is None for p in done or ())
    finally:
        committer.close()


def _settings(bootstrap: str, app_id: str, client: str) -> Settings:
    return Settings.model_validate(
        {"app_id": app_id, "kafka": {"bootstrap_servers": bootstrap}, "ingest": {"client": client}}
    )


async def _consumer(settings: Settings, executor: ThreadPoolExecutor) -> Any:
    if settings.ingest.client == "librdkafka":
        source = RdkafkaSource(settings, executor)
        await source.start()
        return source
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.servers[0], group_id=f"{settings.app_id}-ingest"
    )
    await consumer.start()
    return consumer


@pytest.mark.parametrize("client", ["aiokafka", "librdkafka"])
def test_committed_offsets_are_read_back_through_both_clients(
    kafka_bootstrap: str, client: str
) -> None:
    topic = f"lost-log.{client}.{uuid.uuid4().hex[:8]}"
    app_id = f"lost-log-{uuid.uuid4().hex[:8]}"

    async def run() -> dict[TopicPartition, int | None]:
        await _topic_with_commits(kafka_bootstrap, topic, f"{app_id}-ingest", {0: 7, 1: 0})
        with ThreadPoolExecutor(1) as executor:
            consumer = await _consumer(_settings(kafka_bootstrap, app_id, client), executor)
            try:
                tps = [TopicPartition(topic, p) for p in range(3)]
                return await committed_offsets(consumer, tps)
            finally:
                await consumer.stop()

    found = asyncio.run(run())
    # Offset 0 committed is not "none committed": a chunk start of 0 is the common case.
    assert found == {
        TopicPartition(topic, 0): 7,
        TopicPartition(topic, 1): 0,
        TopicPartition(topic, 2): None,
    }


@pytest.mark.parametrize("client", ["aiokafka", "librdkafka"])
def test_a_committed_offset_gone_or_back_after_a_rebalance_flags_the_lost_log(
    kafka_bootstrap: str, client: str
) -> None:
    """Partition 0: the group still has what this worker committed (a replay, not a loss).
    Partition 1: the group's offset is below ours. Partition 2: the group has none. Partition
    3 was never committed by this worker: nothing to compare."""
    topic = f"lost-log.{client}.{uuid.uuid4().hex[:8]}"
    app_id = f"lost-log-{uuid.uuid4().hex[:8]}"
    tp = [TopicPartition(topic, p) for p in range(4)]

    async def run() -> dict[str, Any]:
        await _topic_with_commits(kafka_bootstrap, topic, f"{app_id}-ingest", {0: 0, 1: 3})
        settings = _settings(kafka_bootstrap, app_id, client)
        runtime = Runtime(settings)
        topics = Topics(partials=None, alerts=None, results=None, references=None, deadletter=None)
        svc = IngestService(runtime, topics)
        svc.consumer = await _consumer(settings, svc._executor)
        seen: dict[str, Any] = {}
        try:
            for case, ours in {
                "replay": {tp[0]: 0},
                "back": {tp[0]: 0, tp[1]: 5},
                "gone": {tp[0]: 0, tp[2]: 4},
            }.items():
                runtime.health.broker_lost_log = None
                svc.committed_by_us = ours
                svc.verify_after_rebalance(set(tp))
                await svc._verify_committed()
                seen[case] = runtime.health.broker_lost_log
            seen["left"] = svc._to_verify
            return seen
        finally:
            await svc.consumer.stop()
            svc._executor.shutdown(wait=False)

    seen = asyncio.run(run())
    assert seen["replay"] is None
    assert (
        seen["back"].startswith(f"{topic}/1:")
        and "offset back at 3; offset 5 committed" in seen["back"]
    )
    assert (
        seen["gone"].startswith(f"{topic}/2:") and "offset gone; offset 4 committed" in seen["gone"]
    )
    assert seen["left"] == set()
