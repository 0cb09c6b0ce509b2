"""Stage 1 sends a partial as soon as its watermark passes a step's end (issue 10, item 6).

The real ingest loop (:meth:`IngestService._consume`) runs against a scripted consumer and a
recording topic, with a flush interval far longer than the test: every partial seen was sent
because a step end was crossed, and nothing is committed before the regular flush has the
acknowledgements (at-least-once).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from aiokafka import TopicPartition

from stream_drift.config import Settings
from stream_drift.pipeline.partials import Partial, decode_message
from stream_drift.pipeline.reference import build_reference

STEP = 60.0
T0 = 1_800_000_000.0  # a step start (a multiple of 60)
TOPIC = "drift.events"
TP = TopicPartition(TOPIC, 0)


@dataclass
class Message:
    value: bytes
    offset: int
    timestamp: int = 0
    key: bytes | None = None


class Recorder:
    """A Faust topic stand-in: keeps every value sent, acknowledges at once."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, *, key: bytes | None, value: bytes) -> asyncio.Future[Any]:
        self.sent.append(value)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


class ScriptedConsumer:
    """Returns the batches put in ``queue`` (one per ``getmany``), nothing when it is empty."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[list[Message]] = asyncio.Queue()
        self.commits: list[dict[TopicPartition, int]] = []
        self.fetched = 0

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[Any, list[Message]]:
        try:
            msgs = await asyncio.wait_for(self.queue.get(), timeout_ms / 1000)
        except TimeoutError:
            return {}
        self.fetched += 1
        return {TP: msgs}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def highwater(self, tp: TopicPartition) -> int | None:
        return None

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


class Loop:
    """The ingest loop of one service, fed batch by batch."""

    def __init__(self, flush_interval: float) -> None:
        from stream_drift.app.ingest import IngestService
        from stream_drift.app.runtime import Runtime
        from stream_drift.app.topics import Topics

        settings = Settings().override(
            {
                "window.size_seconds": int(STEP),
                "window.step_seconds": int(STEP),
                "window.allowed_lateness_seconds": 5.0,
                "window.max_future_seconds": 1e9,
                "ingest.flush_interval_seconds": flush_interval,
            }
        )
        runtime = Runtime(settings)
        runtime.registry.add(build_reference({"x": np.arange(100.0)}, model="m"))
        self.partials = Recorder()
        topics = Topics(
            partials=self.partials,
            alerts=None,
            results=None,
            references=Recorder(),
            deadletter=Recorder(),
        )
        self.svc = IngestService(runtime, topics)
        self.consumer = ScriptedConsumer()
        self.svc.consumer = self.consumer
        self.offset = 0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.ensure_future(self.svc._consume())

    async def feed(self, times: Sequence[float]) -> None:
        """One batch of events of model ``m`` at ``times``; returns once it was counted in."""
        msgs = []
        for ts in times:
            value = json.dumps({"model": "m", "ts": ts, "features": {"x": 5}}).encode()
            msgs.append(Message(value, self.offset))
            self.offset += 1
        before = self.consumer.fetched
        await self.consumer.queue.put(msgs)
        while self.consumer.fetched == before or self.svc.runtime.health.records_consumed != (
            self.offset
        ):
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # the loop's turn after the batch (a send, or none)

    async def stop(self) -> None:
        self.svc._stopping = True
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)

    def watermarks(self) -> list[float]:
        out = []
        for value in self.partials.sent:
            message = decode_message(value)
            assert isinstance(message, Partial)
            out.append(message.watermark)
        return out


def test_a_step_end_crossed_sends_the_partial_at_once_and_commits_only_at_the_flush() -> None:
    async def run() -> Loop:
        loop = Loop(flush_interval=3600.0)  # never due during the test
        loop.start()
        await loop.feed([T0 + 10, T0 + 20])
        assert loop.watermarks() == [T0 + 20]  # never sent before: stage 2 may wait on it
        await asyncio.sleep(0.25)  # past the gap between early sends
        await loop.feed([T0 + 30, T0 + 64])
        assert loop.watermarks() == [T0 + 20]  # 64 < step end 60 + lateness 5: nothing
        await loop.feed([T0 + 66])
        assert loop.watermarks() == [T0 + 20, T0 + 66]  # past 65: the step can close, sent
        assert loop.consumer.commits == []  # no ack awaited, nothing committed yet
        health = loop.svc.runtime.health
        assert health.last_batch_done_at is not None
        assert health.last_batch_at is not None
        assert health.last_batch_done_at >= health.last_batch_at
        await loop.stop()  # the final flush: acks, then the commit (a chunk start)
        assert loop.consumer.commits == [{TP: 0}]
        return loop

    loop = asyncio.run(run())
    partials = [decode_message(v) for v in loop.partials.sent]
    assert all(isinstance(p, Partial) for p in partials)
    # Cumulative per chunk: the last partial counts every event of the chunk once.
    last = partials[-1]
    assert isinstance(last, Partial) and last.events == {T0: 3, T0 + STEP: 2}
    assert (last.offset_start, last.offset_end) == (0, 5)


def test_crossings_closer_than_the_gap_are_sent_together_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replay crosses a step end in every batch: the sends are spaced by the gap."""
    from stream_drift.app import ingest

    monkeypatch.setattr(ingest, "CROSSED_SEND_GAP_SECONDS", 1.0)

    async def run() -> Loop:
        loop = Loop(flush_interval=3600.0)
        loop.start()
        await loop.feed([T0 + 1])
        await loop.feed([T0 + 100])
        await loop.feed([T0 + 200])
        assert loop.watermarks() == [T0 + 1]  # within the gap: held
        await asyncio.sleep(1.2)  # the loop turns every 0.1 s; the gap ends
        assert loop.watermarks() == [T0 + 1, T0 + 200]  # one send for both crossings
        await loop.stop()
        return loop

    asyncio.run(run())


def test_without_a_crossing_partials_wait_for_the_flush_interval() -> None:
    async def run() -> Loop:
        loop = Loop(flush_interval=0.5)
        loop.start()
        await loop.feed([T0 + 1])  # first partial of the pair: sent at once
        await asyncio.sleep(0.6)  # a regular flush (nothing new to send) and its commit
        await loop.feed([T0 + 2, T0 + 3])
        assert loop.watermarks() == [T0 + 1]
        await asyncio.sleep(0.6)
        assert loop.watermarks() == [T0 + 1, T0 + 3]  # sent by the flush
        await loop.stop()
        return loop

    asyncio.run(run())


class BufferedConsumer:
    """aiokafka's hand-out order: fetched records partition by partition, in the order the
    fetches came back, until ``max_records``."""

    def __init__(self, buffered: dict[TopicPartition, int]) -> None:
        self.buffered = {tp: list(range(n)) for tp, n in buffered.items()}

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[int]]:
        left = max_records if max_records is not None else 1 << 62
        out: dict[TopicPartition, list[int]] = {}
        for tp, records in self.buffered.items():
            if (partitions and tp not in partitions) or not records or left == 0:
                continue
            out[tp], self.buffered[tp] = records[:left], records[left:]
            left -= len(out[tp])
        return out

    def assignment(self) -> set[TopicPartition]:
        return set(self.buffered)


def test_a_partition_with_few_records_is_not_held_behind_the_backlog_of_others() -> None:
    from stream_drift.app.ingest import IngestService

    backlog = [TopicPartition(TOPIC, p) for p in range(3)]
    live = TopicPartition(TOPIC, 3)
    consumer = BufferedConsumer({**{tp: 13_000 for tp in backlog}, live: 3})
    batch = asyncio.run(IngestService._fetch(consumer, 10_000))
    assert batch[live] == [0, 1, 2]  # fetched behind 39,000 records: in the first batch
    assert len(batch[backlog[0]]) == 10_000
    assert sum(len(v) for v in batch.values()) <= 10_000 + 10_000 // 4
    # Nothing taken twice or skipped: the rest comes in order in the next batches.
    seen = {tp: list(v) for tp, v in batch.items()}
    while any(consumer.buffered.values()):
        more = asyncio.run(IngestService._fetch(consumer, 10_000))
        for tp, records in more.items():
            seen.setdefault(tp, []).extend(records)
    assert all(seen[tp] == list(range(13_000)) for tp in backlog)


def test_the_fetch_wait_is_short_while_records_flow_and_long_once_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiokafka.consumer.fetcher import Fetcher as AIOKafkaFetcher

    from stream_drift.app import ingest

    # The private attribute the service sets is still what aiokafka reads per fetch request.
    assert "_fetch_max_wait_ms" in AIOKafkaFetcher._get_actions_per_node.__code__.co_names
    monkeypatch.setattr(ingest, "IDLE_AFTER_SECONDS", 0.3)

    class Fetcher:
        _fetch_max_wait_ms = ingest.IDLE_FETCH_WAIT_MS

    async def run() -> list[int]:
        loop = Loop(flush_interval=3600.0)
        fetcher = Fetcher()
        loop.consumer._fetcher = fetcher  # type: ignore[attr-defined]
        loop.start()
        waits = [fetcher._fetch_max_wait_ms]
        await loop.feed([T0 + 1])
        waits.append(fetcher._fetch_max_wait_ms)
        await asyncio.sleep(0.6)  # empty polls only
        waits.append(fetcher._fetch_max_wait_ms)
        await loop.stop()
        return waits

    busy, idle = ingest.BUSY_FETCH_WAIT_MS, ingest.IDLE_FETCH_WAIT_MS
    assert asyncio.run(run()) == [idle, busy, idle]
