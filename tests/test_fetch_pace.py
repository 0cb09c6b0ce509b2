"""Stage 2's consumer waits 100 ms for records while partials flow and 500 ms once idle
(issue 10, item 6: the step-close → alert latency; item 7: the idle cost).

The pacing runs inside Faust's own consumer thread method, on a real aiokafka consumer built
by Faust for the app and fetching from the session broker.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from faust.transport.drivers import aiokafka as driver

from stream_drift.app import faust_transport
from stream_drift.config import Settings
from stream_drift.pipeline.partials import Tick

pytestmark = pytest.mark.kafka


def test_the_overridden_faust_method_still_has_faust_signature() -> None:
    ours = inspect.signature(faust_transport._ConsumerThread._fetch_records)
    theirs = inspect.signature(driver.AIOKafkaConsumerThread._fetch_records)
    assert list(ours.parameters) == list(theirs.parameters)


def test_stage_2_waits_briefly_while_records_flow_and_long_once_idle(
    kafka_bootstrap: str,
    unique_topic: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stream_drift.app.app import create_app

    monkeypatch.setattr(faust_transport, "IDLE_AFTER_SECONDS", 0.3)
    topic = unique_topic("partials")
    settings = Settings().override(
        {"kafka.bootstrap_servers": kafka_bootstrap, "worker.data_dir": str(tmp_path)}
    )
    app = create_app(settings)

    async def run() -> list[tuple[int, int]]:
        thread: Any = app.consumer._thread
        consumer = thread._create_worker_consumer(app.transport)
        await consumer.start()
        tp = TopicPartition(topic, 0)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            fetcher = consumer._fetcher
            waits = [(0, fetcher._fetch_max_wait_ms)]

            async def poll_until_one() -> int:
                deadline = time.monotonic() + 20
                while True:
                    assert time.monotonic() < deadline, "the record never came"
                    got = await thread._fetch_records(consumer, {tp}, timeout=0.5, max_records=10)
                    if n := sum(len(v) for v in got.values()):
                        return n

            for value in (Tick(time.time()).to_bytes(), b'{"kind":"partial"}'):
                await producer.send_and_wait(topic, value, partition=0)
                waits.append((await poll_until_one(), fetcher._fetch_max_wait_ms))
            await asyncio.sleep(0.4)  # longer than IDLE_AFTER_SECONDS
            records = await thread._fetch_records(consumer, {tp}, timeout=0.1, max_records=10)
            waits.append((sum(len(v) for v in records.values()), fetcher._fetch_max_wait_ms))
            return waits
        finally:
            await producer.stop()
            await consumer.stop()

    busy, idle = faust_transport.BUSY_FETCH_WAIT_MS, faust_transport.FETCH_MAX_WAIT_MS
    # a tick leaves it idle, a partial makes it busy, a quiet moment idle again
    assert asyncio.run(run()) == [(0, idle), (1, idle), (1, busy), (0, idle)]
