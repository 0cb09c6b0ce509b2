"""Stage 1 inside the worker: batched ingest that bypasses Faust's per-event stream.

A Faust agent pays ~77 µs of stream machinery per event (KAFKA-LOCAL.md), so stage 1 owns
an aiokafka consumer in its own group (``<app_id>-ingest``): it fetches up to
``consumer_max_records`` records at once, decodes, validates and bins them with
:class:`~stream_drift.ingest.IngestAccumulator`, and every ``flush_interval_seconds`` sends the
partial histograms to ``drift.partials`` and the rejected records to ``drift.deadletter``
through the app's producer. Offsets are committed only once those sends were acknowledged,
so a crash replays at most one flush interval (at-least-once; stage 2 skips replayed
partials it already applied).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import mode
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.structs import TopicPartition

from stream_drift.app.runtime import Runtime
from stream_drift.app.topics import Topics
from stream_drift.events import RawRecord, deadletter_payload
from stream_drift.ingest import BatchOutcome, IngestAccumulator

log = logging.getLogger(__name__)

UNKNOWN_MODEL_LABEL = "_unknown"
"""Metric label for rejected records whose model could not be read or is not known."""


class _FlushOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Flush and commit before partitions move, so the next owner does not replay them."""

    def __init__(self, service: IngestService) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.service.flush()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        service = self.service
        service.runtime.health["ingest_partitions"] = sorted(tp.partition for tp in assigned)
        # One writer per lag series: drop the partitions that moved to another worker.
        service.runtime.metrics.retain_partitions([(tp.topic, tp.partition) for tp in assigned])
        for tp in list(service.next_offsets):
            if tp not in assigned:
                del service.next_offsets[tp]


class IngestService(mode.Service):
    """Owns the ingest consumer and the accumulate → flush → commit loop."""

    def __init__(self, runtime: Runtime, topics: Topics, **kwargs: Any) -> None:
        self.runtime = runtime
        self.topics = topics
        self.consumer: AIOKafkaConsumer | None = None
        self.accumulator = IngestAccumulator(
            runtime.registry,
            step_seconds=runtime.windows.step_seconds,
            decoder=runtime.decoder(),
            warmup=runtime.warmup(),
        )
        self._offsets: dict[TopicPartition, int] = {}
        self.next_offsets: dict[TopicPartition, int] = {}  # next offset to ingest, for the lag
        self._pending: list[Any] = []  # send futures of dead letters since the last flush
        self._last_flush = time.monotonic()
        self._consumed = 0
        self._flush_lock = asyncio.Lock()
        self._stopping = False
        self._loop_done = asyncio.Event()
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        s = self.runtime.settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=",".join(s.kafka.servers),
            group_id=f"{s.app_id}-ingest",
            client_id=f"{s.app_id}-ingest",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(s.kafka.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(s.kafka.heartbeat_interval_seconds * 1000),
            rebalance_timeout_ms=int(s.kafka.rebalance_timeout_seconds * 1000),
            max_poll_interval_ms=max(60_000, int(s.kafka.rebalance_timeout_seconds * 1000)),
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await self.consumer.start()
        self.consumer.subscribe([s.topics.events], listener=_FlushOnRevoke(self))
        self.runtime.health["ingest"] = "started"

    async def on_stop(self) -> None:
        self._stopping = True
        try:
            await asyncio.wait_for(self._loop_done.wait(), timeout=15)
        except TimeoutError:
            log.warning("ingest loop did not finish within 15 s")
        if self.consumer is not None:
            await self.consumer.stop()

    @mode.Service.task
    async def _run(self) -> None:
        try:
            await self._wait_for_references()
            await self._consume()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("ingest loop crashed")
            self.runtime.health["ingest"] = "crashed"
            raise
        finally:
            self._loop_done.set()

    async def _wait_for_references(self) -> None:
        """Give the reference follower a moment, so early events are not dead-lettered."""
        try:
            await asyncio.wait_for(self.runtime.references_ready.wait(), timeout=30)
        except TimeoutError:
            log.warning("references not loaded after 30 s; ingesting anyway")

    async def _consume(self) -> None:
        assert self.consumer is not None
        consumer = self.consumer
        s = self.runtime.settings
        interval = s.ingest.flush_interval_seconds
        while not self._stopping and not self.should_stop:
            batch = await consumer.getmany(timeout_ms=100, max_records=s.kafka.consumer_max_records)
            if batch:
                health = self.runtime.health
                now = time.time()
                health.setdefault("first_batch_at", now)
                health["last_batch_at"] = now
                self._consumed += sum(len(msgs) for msgs in batch.values())
                health["records_consumed"] = self._consumed
                records = []
                for tp, msgs in batch.items():
                    if tp.topic not in self.accumulator.topic_partitions:
                        known = consumer.partitions_for_topic(tp.topic) or ()
                        self.accumulator.topic_partitions[tp.topic] = len(known)
                    for m in msgs:
                        records.append(
                            RawRecord(m.value, tp.topic, tp.partition, m.offset, m.timestamp, m.key)
                        )
                    self._offsets[tp] = msgs[-1].offset + 1
                    self.next_offsets[tp] = msgs[-1].offset + 1
                await self._handle(self.accumulator.add_records(records))
            if time.monotonic() - self._last_flush >= interval:
                await self.flush()
                self._export_lag()
        await self.flush()

    def _export_lag(self) -> None:
        """Export high-water mark minus next offset for every partition with a known mark."""
        assert self.consumer is not None
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            position = self.next_offsets.get(tp)
            if highwater is None or position is None:
                continue  # nothing fetched from it yet: no figure rather than a guess
            self.runtime.metrics.set_consumer_lag(tp.topic, tp.partition, highwater - position)

    async def _handle(self, outcome: BatchOutcome) -> None:
        metrics = self.runtime.metrics
        for model, n in outcome.accepted.items():
            metrics.count_events(model, "accepted", n)
        known = self.runtime.registry.models() if outcome.rejections else set()
        for rejection in outcome.rejections:
            # The label must stay bounded: a name read from a bad record is used only when it
            # is a model with a reference, never whatever a producer wrote.
            label = rejection.model if rejection.model in known else UNKNOWN_MODEL_LABEL
            metrics.count_events(label, "invalid")
            metrics.count_deadletter(rejection.reason.value)
            fut = await self.topics.deadletter.send(
                key=rejection.record.key, value=deadletter_payload(rejection)
            )
            self._pending.append(fut)
        for profile in outcome.learned:
            log.info("learned reference %s for %s from warm-up", profile.id, profile.key)
            fut = await self.topics.references.send(
                key=profile.key.encode(), value=profile.to_json().encode()
            )
            self._pending.append(fut)

    async def flush(self) -> None:
        """Send partials and dead letters, wait for the acks, then commit the offsets."""
        async with self._flush_lock:
            partials = self.accumulator.flush()
            futures = list(self._pending)
            self._pending.clear()
            for p in partials:
                futures.append(
                    await self.topics.partials.send(key=p.model.encode(), value=p.to_bytes())
                )
            offsets = dict(self._offsets)
            self._last_flush = time.monotonic()
            if not futures and not offsets:
                return
            # topic.send() only enqueues; awaiting its future waits for the broker's ack.
            await asyncio.gather(*futures)
            if offsets and self.consumer is not None:
                try:
                    await self.consumer.commit(offsets)
                except Exception as exc:  # health reports it; the next flush retries
                    self.runtime.health["last_commit_error"] = repr(exc)
                    self.runtime.health["last_commit_ok"] = False
                    log.error("ingest commit failed: %r", exc)
                    return
                for tp, off in offsets.items():
                    if self._offsets.get(tp) == off:
                        del self._offsets[tp]
            self.runtime.health["last_commit_ok"] = True
            self.runtime.health["last_flush_at"] = time.time()
