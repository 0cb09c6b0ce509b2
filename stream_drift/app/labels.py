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
counted as a ``duplicate`` by the join state restored from the changelog. When only some
records of a flush were acknowledged, only the others are sent again (a pair resent after
it was acknowledged would be counted twice by stage 2).

Before it subscribes, the service checks that the events, labels and changelog topics exist
with equal partition counts (the broker may auto-create a missing changelog topic with one
partition, and the join would then never deliver); a failure, like any crash of its loop,
shows on ``/health`` (``label_join: "crashed"`` and ``label_join_error``). Labels with a
``ts`` beyond the clock plus ``window.max_future_seconds`` are dead-lettered
(``future_timestamp``); pairs and outcomes of models without a reference are counted (under
``_unknown``) but not sent: stage 2 could not score them, and a flood of made-up model names
would fill its tables.
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

from stream_drift.app import admin
from stream_drift.app.runtime import Runtime
from stream_drift.config.settings import KAFKA_RECORD_OVERHEAD
from stream_drift.pipeline.deadletter import deadletter_payload
from stream_drift.pipeline.events import RawRecord, Rejection
from stream_drift.pipeline.labels import (
    LabelJoin,
    LabelOutcomes,
    confidence_sums,
    decode_labels,
    decode_predictions,
    outcome_messages,
    split_outcomes,
)

log = logging.getLogger(__name__)

__all__ = ["LabelJoinService"]

_RESTORE_TIMEOUT_SECONDS = 60.0
_SEND_TIMEOUT_SECONDS = 30.0
_REFERENCES_WAIT_SECONDS = 30.0
_TOPIC_WAIT_SECONDS = 10.0


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
        partitions = {tp.partition for tp in assigned}
        self.service.runtime.health.label_join_partitions = sorted(partitions)
        try:
            await self.service.restore(partitions)
        except Exception as exc:
            # aiokafka logs and swallows a listener's exception: the partitions would then
            # be joined from an empty state (waiting predictions silently lost). The loop
            # raises it instead, before it takes any record of the new assignment.
            log.exception("label join: restoring partitions %s failed", sorted(partitions))
            self.service.restore_error = exc


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
        self.restore_error: Exception | None = None
        """Why the last restore of assigned partitions failed (the loop stops on it)."""
        self._confidence: dict[tuple[str, str], dict[float, tuple[int, float]]] = {}
        """Per (model, version) and step: scores in [0, 1] and their sum of max(p, 1 - p)
        since the last flush (stage 2's label-free accuracy estimate)."""
        self._step_seconds = float(runtime.windows.step_seconds)
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
        self.runtime.health.label_join = "started"

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
            await self._check_topics()
            await self._wait_for_references()
            s = self.runtime.settings
            self.consumer.subscribe(
                [s.topics.events, s.topics.labels], listener=_RestoreOnAssign(self)
            )
            await self._consume()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Not raised on: mode would take the whole worker down, and stages 1 and 2 do
            # not need the join. /health (failing) and /health/live (503) tell the
            # orchestrator, which restarts the worker.
            log.exception("label join loop crashed")
            self.runtime.health.label_join = "crashed"
            self.runtime.health.label_join_error = f"{type(exc).__name__}: {exc}"
        finally:
            self._loop_done.set()

    async def _check_topics(self) -> None:
        """Fail unless events, labels and the changelog exist with equal partition counts.

        Asks before anything names the changelog: the broker may auto-create a missing
        topic with one partition, and changelog records for partition 1 and up would then
        never be acknowledged (every flush failing, no offset committed, no error shown).
        """
        s = self.runtime.settings
        counts = {}
        for topic in (s.topics.events, s.topics.labels, s.label_join_changelog):
            try:
                ids = await admin.partition_ids(
                    ",".join(s.kafka.servers),
                    topic,
                    wait=_TOPIC_WAIT_SECONDS,
                    security=s.kafka.client_kwargs(),
                )
            except admin.TopicNotFoundError:
                raise RuntimeError(
                    f"label join: topic {topic!r} does not exist (labels.enabled is true; "
                    "create it with `stream-drift topics create` or topics.create: true)"
                ) from None
            counts[topic] = len(ids)
        if len(set(counts.values())) > 1:
            raise RuntimeError(
                "label join: the events, labels and changelog topics need equal partition "
                f"counts (the join is co-partitioned by event_id), got {counts}"
            )

    async def _wait_for_references(self) -> None:
        """Give the reference follower a moment: pairs of a model not known yet are not sent."""
        try:
            await asyncio.wait_for(self.runtime.references_ready.wait(), _REFERENCES_WAIT_SECONDS)
        except TimeoutError:
            log.warning("label join: references not loaded after 30 s; joining anyway")

    # ----------------------------------------------------------------- consuming
    async def _consume(self) -> None:
        assert self.consumer is not None
        s = self.runtime.settings
        interval = s.ingest.flush_interval_seconds
        while not self._stopping and not self.should_stop:
            batch = await self.consumer.getmany(
                timeout_ms=200, max_records=s.kafka.consumer_max_records
            )
            if self.restore_error is not None:
                raise self.restore_error
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
        # Stage 1's rule: no event time beyond the clock plus the margin moves a watermark.
        horizon = time.time() + self.runtime.windows.max_future_seconds
        if tp.topic == s.topics.events:
            predictions, skipped = decode_predictions(
                records,
                max_message_bytes=s.ingest.max_message_bytes,
                known_models=s.ingest.known_models or None,
                horizon=horizon,
            )
            self.skipped_events += skipped
            step = self.join.add_predictions(tp.partition, predictions)
            for version_key, steps in confidence_sums(predictions, self._step_seconds).items():
                held = self._confidence.setdefault(version_key, {})
                for start, (n, total) in steps.items():
                    n0, total0 = held.get(start, (0, 0.0))
                    held[start] = (n0 + n, total0 + total)
        else:
            labels, rejections = decode_labels(self.decoder, records, horizon=horizon)
            for rejection in rejections:
                self._deadletter(rejection)
            step = self.join.add_labels(tp.partition, labels)
        known = self.runtime.registry.models()
        self._count(step.outcomes, known)
        source = f"{tp.topic}/{tp.partition}"
        limit = s.kafka.producer_max_request_bytes - KAFKA_RECORD_OVERHEAD
        for message in outcome_messages(step, source):
            if message.model not in known:
                continue  # counted as _unknown; stage 2 has no reference to score it with
            key = message.model.encode()
            for part in split_outcomes(message, limit - len(key)):
                self._outgoing.append(_Send(s.topics.partials, key, part.to_bytes()))

    def _count(self, outcomes: Counter[tuple[str, str]], known: set[str]) -> None:
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
            s = self.runtime.settings
            known = self.runtime.registry.models()
            confidence, self._confidence = self._confidence, {}
            for (model, version), steps in sorted(confidence.items()):
                if model in known:  # as pairs: stage 2 scores only models with a reference
                    message = LabelOutcomes(model, version, s.topics.events, [], {}, steps)
                    self._outgoing.append(
                        _Send(s.topics.partials, model.encode(), message.to_bytes())
                    )
            changelog = s.label_join_changelog
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
        """Send the outgoing records; ``True`` when all were acknowledged.

        Those not acknowledged (and those after one the producer refused) stay queued, in
        order, for the next flush; those acknowledged are not sent again: a pair acked twice
        would be counted twice by stage 2.
        """
        assert self.producer is not None
        items, self._outgoing = self._outgoing, []
        sent: list[tuple[int, asyncio.Future[Any]]] = []
        unsent_from = len(items)
        error: BaseException | None = None
        for i, item in enumerate(items):
            try:
                future = await self.producer.send(
                    item.topic, item.value, key=item.key, partition=item.partition
                )
            except Exception as exc:  # refused before sending (no metadata, too large...)
                error, unsent_from = exc, i
                break
            sent.append((i, future))
        if sent:
            # asyncio.wait, not wait_for(gather): a timeout must not cancel the sends.
            await asyncio.wait([f for _, f in sent], timeout=_SEND_TIMEOUT_SECONDS)
        failed = []
        for i, future in sent:
            if not future.done():
                failed.append(i)
                error = error or TimeoutError(f"no acknowledgement in {_SEND_TIMEOUT_SECONDS} s")
            elif future.cancelled() or future.exception() is not None:
                failed.append(i)
                error = error or future.exception()
        failed.extend(range(unsent_from, len(items)))
        if not failed:
            return True
        log.error("label join: %d records not acknowledged: %r", len(failed), error)
        self._outgoing = [items[i] for i in failed] + self._outgoing
        return False

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
            fetch_max_wait_ms=100,
            **s.kafka.client_kwargs(),
        )
        await reader.start()
        try:
            tps = [TopicPartition(topic, p) for p in todo]
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            entries: dict[int, list[tuple[str, bytes | None]]] = {p: [] for p in todo}
            deadline = time.monotonic() + _RESTORE_TIMEOUT_SECONDS
            # Read up to each partition's high-water mark as the fetch responses give it,
            # not end_offsets(): Tansu answers that with a number of record batches, and a
            # restore that stopped there lost the changelog's tail (waiting predictions
            # gone after a takeover; KAFKA-LOCAL.md, quirk 2).
            while not await _caught_up(reader, tps):
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"label join changelog {topic} not read within "
                        f"{_RESTORE_TIMEOUT_SECONDS:.0f} s"
                    )
                batch = await reader.getmany(timeout_ms=200)
                for tp, messages in batch.items():
                    entries[tp.partition].extend(
                        (m.key.decode(), m.value) for m in messages if m.key is not None
                    )
            horizon = time.time() + self.runtime.windows.max_future_seconds
            for p in todo:
                self.join.restore(p, entries[p], horizon)
                self._restored.add(p)
                log.info(
                    "label join partition %d restored: %d changelog records", p, len(entries[p])
                )
        finally:
            await reader.stop()


async def _caught_up(reader: AIOKafkaConsumer, tps: list[TopicPartition]) -> bool:
    """Whether ``reader`` has read every partition up to its fetched high-water mark."""
    for tp in tps:
        mark = reader.highwater(tp)
        if mark is None or await reader.position(tp) < mark:
            return False
    return True
