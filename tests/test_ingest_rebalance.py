"""A rebalance while stage 1's thread computes a batch: every event still counted once.

aiokafka runs the rebalance listener while stage 1's loop waits for the thread: the revoke
flushes, commits a chunk start and forgets the partition, and a partition assigned again
starts over from the group's committed offset. The batch in the thread was fetched before:
counted, its records would come on top of that replay (and their offsets would be committed
past events the forgotten state held). The real ingest loop runs here against a consumer
that does what aiokafka does at a rebalance, with the thread held while it happens; stage 2
is a real window merging every partial sent, in order.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import numpy as np
from aiokafka import TopicPartition

# The Message and the recording topic of the ingest-loop tests (tests/ is on sys.path).
from test_ingest_latency import Message, Recorder

from stream_drift.app.ingest import IngestService, _FlushOnRevoke
from stream_drift.app.runtime import Runtime
from stream_drift.app.topics import Topics
from stream_drift.config import Settings
from stream_drift.config.policies import WindowPolicy
from stream_drift.pipeline.events import RawRecord
from stream_drift.pipeline.ingest import IngestAccumulator
from stream_drift.pipeline.partials import Partial, decode_message
from stream_drift.pipeline.reference import build_reference
from stream_drift.pipeline.registry import ReferenceRegistry
from stream_drift.pipeline.windows import VersionWindow

T0 = 1_704_067_200.0  # 2024-01-01: old data, so no early send (only the flushes send)
TP = TopicPartition("drift.events", 0)
CHUNK = 10
PER_FETCH = 15  # a fetch ends mid-chunk
EVENTS = 60
REF = build_reference({"x": np.arange(100.0)}, model="m")
POLICY = WindowPolicy(size_seconds=3600, step_seconds=60, allowed_lateness_seconds=1e9)


class RebalancingConsumer:
    """One partition; at :meth:`rebalance` the listener runs and, as in aiokafka, a
    partition assigned again restarts at the group's committed offset."""

    def __init__(self, values: list[bytes]) -> None:
        self.values = values
        self.position = 0
        self.group_offset: int | None = None
        self.commits: list[int] = []
        self.assigned = {TP}

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Message]]:
        end = min(self.position + PER_FETCH, len(self.values))
        if partitions or TP not in self.assigned or end == self.position:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        msgs = [Message(self.values[o], o) for o in range(self.position, end)]
        self.position = end
        return {TP: msgs}

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def highwater(self, tp: TopicPartition) -> int | None:
        return None

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets[TP])
        self.group_offset = offsets[TP]

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.group_offset

    async def rebalance(self, listener: Any, comes_back: bool) -> None:
        await listener.on_partitions_revoked({TP})
        self.assigned = {TP} if comes_back else set()
        self.position = self.group_offset or 0
        await listener.on_partitions_assigned(set(self.assigned))


def _values() -> list[bytes]:
    rng = np.random.default_rng(3)
    return [
        json.dumps(
            {"model": "m", "ts": T0 + float(rng.uniform(0, 180)), "features": {"x": int(x)}}
        ).encode()
        for x in rng.integers(0, 100, EVENTS)
    ]


def _stage2(sent: list[bytes]) -> VersionWindow:
    window = VersionWindow(REF, POLICY)
    for value in sent:
        message = decode_message(value)
        assert isinstance(message, Partial)
        window.merge(message, now=T0 + 3600)
    return window


async def _run(
    values: list[bytes], comes_back: bool
) -> tuple[IngestService, RebalancingConsumer, Recorder]:
    settings = Settings().override(
        {
            "window.size_seconds": 3600,
            "window.step_seconds": 60,
            "ingest.flush_interval_seconds": 3600.0,  # flushes: the revoke's and the last
            "ingest.replay_chunk_records": CHUNK,
        }
    )
    runtime = Runtime(settings)
    runtime.registry.add(REF)
    partials = Recorder()
    topics = Topics(
        partials=partials, alerts=None, results=None, references=Recorder(), deadletter=Recorder()
    )
    svc = IngestService(runtime, topics)
    consumer = RebalancingConsumer(values)
    svc.consumer = consumer
    held, release = threading.Event(), threading.Event()
    compute = svc.accumulator.compute
    batches = 0

    def second_batch_held(batch: Any) -> Any:
        nonlocal batches
        batches += 1
        if batches == 2:  # offsets [15, 30), fetched before the rebalance
            held.set()
            release.wait(10)
        return compute(batch)

    svc.accumulator.compute = second_batch_held  # type: ignore[method-assign]
    task = asyncio.ensure_future(svc._consume())
    try:
        assert await asyncio.to_thread(held.wait, 10), "the second batch never reached the thread"
        await consumer.rebalance(_FlushOnRevoke(svc), comes_back)
        release.set()
        end = EVENTS if comes_back else consumer.group_offset
        for _ in range(200):
            if consumer.position == end and batches >= 3:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # the loop's turn after the last batch
    finally:
        release.set()
        svc._stopping = True
        await asyncio.wait_for(task, 5)  # the last flush and commit
        svc._executor.shutdown(wait=False)
    return svc, consumer, partials


def test_a_partition_revoked_and_assigned_again_mid_batch_counts_every_event_once() -> None:
    values = _values()
    svc, consumer, partials = asyncio.run(_run(values, comes_back=True))
    assert svc.revoked[TP] == 1
    # The revoke committed the chunk start of what was counted (offsets [0, 15)): 10.
    assert consumer.commits[0] == 10
    assert consumer.commits[-1] == EVENTS - EVENTS % CHUNK
    window = _stage2(partials.sent)
    assert sum(window.pending_events.values()) == EVENTS
    assert window.inconsistent_events == 0
    # The same histograms as one pass over the events, each once.
    once = VersionWindow(REF, POLICY)
    registry = ReferenceRegistry()
    registry.add(REF)
    acc = IngestAccumulator(registry, step_seconds=60, chunk_records=10**9)
    acc.topic_partitions[TP.topic] = 1
    acc.add_records(RawRecord(v, TP.topic, 0, o, 0) for o, v in enumerate(values))
    for p in acc.flush():
        once.merge(p, now=T0 + 3600)
    assert window.pending_events == once.pending_events
    for step, series in once.pending.items():
        for name, hist in series.items():
            np.testing.assert_array_equal(window.pending[step][name].counts, hist.counts)
    # Replayed from 10, not flagged as a lost log.
    assert svc.runtime.health.broker_lost_log is None


def test_a_partition_revoked_mid_batch_for_good_leaves_its_records_to_the_next_owner() -> None:
    values = _values()
    svc, consumer, partials = asyncio.run(_run(values, comes_back=False))
    assert svc.revoked[TP] == 1
    window = _stage2(partials.sent)
    # Only offsets [0, 15) were counted; the next owner replays from the commit, 10.
    assert consumer.commits == [10]
    assert sum(window.pending_events.values()) == 15
    assert all(
        isinstance(p := decode_message(v), Partial) and p.offset_end <= 15 for v in partials.sent
    )
