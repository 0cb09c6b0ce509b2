"""Stage 2 commits its offsets only once the table writes before them left Faust's producer
buffer (a ``kill -9`` right after a commit must not lose them).

Faust's ``producer.flush()``, called before every commit, stops waiting for its buffer after
0.1 s without a message sent: a commit could pass a partial whose table write was still in
the buffer. The real producer and consumer of the app are used, against the session broker:
a write put in the buffer while the producer is not running yet holds the commit back, and
leaves once it runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from kafka_helpers import read_topic

from stream_drift.app import faust_transport
from stream_drift.config import Settings

pytestmark = pytest.mark.kafka


def test_a_commit_waits_for_the_table_writes_in_the_producer_buffer(
    kafka_bootstrap: str,
    unique_topic: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stream_drift.app.app import create_app

    monkeypatch.setattr(faust_transport, "TABLE_WRITES_WAIT_SECONDS", 0.3)
    topic = unique_topic("changelog")
    settings = Settings().override(
        {"kafka.bootstrap_servers": kafka_bootstrap, "worker.data_dir": str(tmp_path)}
    )

    async def run() -> tuple[bool, bool, int, bool, int]:
        app = create_app(settings)  # on this loop: the producer's buffer runs its task here
        producer = app.producer
        assert isinstance(producer, faust_transport._Producer)
        # A table write: Table.__setitem__ puts its changelog record in this buffer, so.
        app.topic(topic).send_soon(key=b"fraud", value=b"row", partition=0)
        waiting = producer.unsent
        # Faust's commit path is never reached (on this consumer, not started, it would fail).
        committed = await app.consumer._commit_offsets({TopicPartition("drift.partials", 0): 7})
        early = await faust_transport.table_writes_sent(producer, 0.2)
        await producer.start()
        try:
            sent = await faust_transport.table_writes_sent(producer, 20.0)
            await producer.flush()
            return committed, early, waiting, sent, producer.unsent
        finally:
            await producer.stop()

    committed, early, waiting, sent, left = asyncio.run(run())
    assert waiting == 1
    assert committed is False and early is False
    assert sent is True and left == 0
    rows = read_topic(kafka_bootstrap, topic, idle_s=0.5, min_records=1)
    assert [(r.key, r.value) for r in rows] == [(b"fraud", b"row")]
