"""The delayed-label join: predictions on ``drift.events`` meet their labels on ``drift.labels``.

Runs only when ``labels.enabled``. A consumer group of its own (``<app_id>-labels``) reads
both topics with the range assignor: the client keys events and labels by ``event_id`` with
the same partitioner, so with equal partition counts (checked by the settings) partition p of
both topics lands on the same worker, and the join of partition p needs nothing from any
other worker. It scales out with the partitions like stage 1; one hot model spreads over all
of them.

The waiting predictions and labels (:class:`~stream_drift.pipeline.labels.LabelJoin`) are
written, as changes keyed by ``event_id``, to the compacted topic
``<app_id>-label-join-changelog`` (partition p for partition p) and read back when a worker
is assigned a partition. A flush sends the joined pairs to stage 2 (``drift.partials``, keyed
by model), the changelog records and the dead letters of bad labels, waits for every
acknowledgement, and only then commits both topics' offsets: at-least-once, as stage 1. After
a crash the records since the last commit are read again; a pair joined twice that way is
counted as a ``duplicate`` by the join state restored from the changelog.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import mode
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from stream_drift.app.runtime import Runtime
from stream_drift.pipeline.deadletter import deadletter_payload
from stream_drift.pipeline.events import RawRecord, Rejection
from stream_drift.pipeline.labels import LabelJoin, decode_predictions, outcome_messages

log = logging.getLogger(__name__)

__all__ = ["LabelJoinService"]

_RESTORE_TIMEOUT_SECONDS = 60.0
_SEND_TIMEOUT_SECONDS = 30.0


@dataclass
class _Send:
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None


class _RestoreOnAssign(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: LabelJoinService) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.service.flush()
        for tp in revoked:
            self.service.forget(tp)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.service.restore({tp.partition for tp in assigned})


class LabelJoinService(mode.Service):
    """Consumes events and labels, joins them, sends the pairs to stage 2."""

    def __init__(self, runtime: Runtime, **kwargs: Any) -> None:
        self.runtime = runtime
        s = runtime.settings
        self.join = LabelJoin(ttl_seconds=s.labels.ttl_seconds, max_pending=s.labels.max_pending)
        self.decoder = runtime.decoder()
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self._offsets: dict[TopicPartition, int] = {}
        self._outgoing: list[_Send] = []
        self._restored: set[int] = set()
        self._flush_lock = asyncio.Lock()
        self._last_flush = time.monotonic()
        self._stopping = False
        self._loop_done = asyncio.Event()
        self.skipped_events = 0
        """Events without an ``event_id`` or a prediction (nothing to join; stage 1 judges
        them)."""
        super().__init__(**kwargs)

    # ------------------------------------------------------------------ lifecycle
    async def on_start(self) -> None:
        s = self.runtime.settings
        if not s.labels.enabled:
            self._loop_done.set()
            return
        servers = ",".join(s.kafka.servers)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=servers,
            client_id=f"{s.app_id}-labels",
            acks="all",
            linger_ms=5,
            max_request_size=s.kafka.producer_max_request_bytes,
            **s.kafka.client_kwargs(),
        )
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=servers,
            group_id=f"{s.app_id}-labels",
            client_id=f"{s.app_id}-labels",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Range, not round robin: partition p of both topics goes to the same member.
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=int(s.kafka.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(s.kafka.heartbeat_interval_seconds * 1000),
            rebalance_timeout_ms=int(s.kafka.rebalance_timeout_seconds * 1000),
            max_poll_interval_ms=max(60_000, int(s.kafka.rebalance_timeout_seconds * 1000)),
            fetch_max_wait_ms=500,
            **s.kafka.client_kwargs(),
        )
        await self.consumer.start()
        self.consumer.subscribe([s.topics.events, s.topics.labels], listener=_RestoreOnAssign(self))

    async def on_stop(self) -> None:
        self._stopping = True
        try:
            await asyncio.wait_for(self._loop_done.wait(), timeout=15)
        except TimeoutError:
            log.warning("label join loop did not finish within 15 s")
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    @mode.Service.task
    async def _run(self) -> None:
        if self.consumer is None:
            return
        try:
            await self._consume()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("label join loop crashed")
            raise
        finally:
            self._loop_done.set()

    # ----------------------------------------------------------------- consuming
    async def _consume(self) -> None:
        assert self.consumer is not None
        s = self.runtime.settings
        interval = s.ingest.flush_interval_seconds
        while not self._stopping and not self.should_stop:
            batch = await self.consumer.getmany(
                timeout_ms=200, max_records=s.kafka.consumer_max_records
            )
            for tp, messages in batch.items():
                records = [
                    RawRecord(m.value, m.topic, m.partition, m.offset, m.timestamp, m.key)
                    for m in messages
                ]
                self._take(tp, records)
                self._offsets[tp] = messages[-1].offset + 1
            if time.monotonic() - self._last_flush >= interval:
                await self.flush()
        await self.flush()

    def _take(self, tp: TopicPartition, records: list[RawRecord]) -> None:
        s = self.runtime.settings
        if tp.topic == s.topics.events:
            predictions, skipped = decode_predictions(
                records,
                max_message_bytes=s.ingest.max_message_bytes,
                known_models=s.ingest.known_models or None,
            )
            self.skipped_events += skipped
            step = self.join.add_predictions(tp.partition, predictions)
        else:
            decoded = self.decoder.decode_label_batch(records)
            for rejection in decoded.rejections:
                self._deadletter(rejection)
            step = self.join.add_labels(tp.partition, decoded.labels)
        self._count(step.outcomes)
        source = f"{tp.topic}/{tp.partition}"
        for message in outcome_messages(step, source):
            self._outgoing.append(
                _Send(s.topics.partials, message.model.encode(), message.to_bytes())
            )

    def _count(self, outcomes: Counter[tuple[str, str]]) -> None:
        known = self.runtime.registry.models()
        for (model, outcome), n in outcomes.items():
            # A model name read from a label is a label value only when it has a reference.
            self.runtime.metrics.count_label_join(
                model if model in known else "_unknown", outcome, n
            )

    def _deadletter(self, rejection: Rejection) -> None:
        s = self.runtime.settings
        self.runtime.metrics.count_deadletter(rejection.reason.value)
        payload = deadletter_payload(rejection, max_bytes=s.ingest.deadletter_max_bytes)
        self._outgoing.append(_Send(s.topics.deadletter, rejection.record.key, payload))

    # ------------------------------------------------------------------- flushing
    async def flush(self) -> None:
        """Send the pairs, the changelog and the dead letters; commit once all are acked."""
        async with self._flush_lock:
            self._last_flush = time.monotonic()
            changelog = self.runtime.settings.label_join_changelog
            # Keys are the join's own (model and event id; a partition's watermark).
            for partition, key, entry in self.join.take_changes():
                self._outgoing.append(_Send(changelog, key.encode(), entry, partition))
            offsets = dict(self._offsets)
            if not self._outgoing and not offsets:
                return
            if self._outgoing and not await self._deliver():
                return  # nothing committed: kept for the next flush, replayed after a crash
            if offsets and self.consumer is not None:
                try:
                    await asyncio.wait_for(self.consumer.commit(offsets), _SEND_TIMEOUT_SECONDS)
                except Exception as exc:
                    log.error("label join commit failed: %r", exc)
                    return
                for tp, off in offsets.items():
                    if self._offsets.get(tp) == off:
                        del self._offsets[tp]

    async def _deliver(self) -> bool:
        assert self.producer is not None
        items, self._outgoing = self._outgoing, []
        futures = []
        try:
            for item in items:
                futures.append(
                    await self.producer.send(
                        item.topic, item.value, key=item.key, partition=item.partition
                    )
                )
            results = await asyncio.wait_for(
                asyncio.gather(*futures, return_exceptions=True), _SEND_TIMEOUT_SECONDS
            )
        except Exception as exc:
            results = [exc]
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            # Everything is sent again at the next flush (a record acked twice is a duplicate
            # the join state and stage 2 count, not a loss).
            log.error("label join: %d records not acknowledged: %r", len(failures), failures[0])
            self._outgoing = items + self._outgoing
            return False
        return True

    # ------------------------------------------------------------ assignment
    def forget(self, tp: TopicPartition) -> None:
        """Drop a revoked partition's offsets and join state (its new owner restores it)."""
        self._offsets.pop(tp, None)
        if tp.partition in self._restored:
            self.join.drop_partition(tp.partition)
            self._restored.discard(tp.partition)

    async def restore(self, partitions: set[int]) -> None:
        """Read the changelog of newly assigned partitions back into the join state."""
        todo = sorted(partitions - self._restored)
        if not todo:
            return
        s = self.runtime.settings
        topic = s.label_join_changelog
        reader = AIOKafkaConsumer(
            bootstrap_servers=",".join(s.kafka.servers),
            enable_auto_commit=False,
            **s.kafka.client_kwargs(),
        )
        await reader.start()
        try:
            tps = [TopicPartition(topic, p) for p in todo]
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            ends = await reader.end_offsets(tps)
            entries: dict[int, list[tuple[str, bytes | None]]] = {p: [] for p in todo}
            deadline = time.monotonic() + _RESTORE_TIMEOUT_SECONDS
            while [tp for tp in tps if await reader.position(tp) < ends[tp]]:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"label join changelog {topic} not read within "
                        f"{_RESTORE_TIMEOUT_SECONDS:.0f} s"
                    )
                batch = await reader.getmany(timeout_ms=500)
                for tp, messages in batch.items():
                    entries[tp.partition].extend(
                        (m.key.decode(), m.value) for m in messages if m.key is not None
                    )
            for p in todo:
                self.join.restore(p, entries[p])
                self._restored.add(p)
                log.info(
                    "label join partition %d restored: %d changelog records", p, len(entries[p])
                )
        finally:
            await reader.stop()
