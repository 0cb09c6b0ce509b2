"""Stage 1 inside the worker: batched ingest that bypasses Faust's per-event stream.

A Faust agent pays ~77 µs of stream machinery per event (KAFKA-LOCAL.md), so stage 1 owns a
consumer in its own group (``<app_id>-ingest``; aiokafka, or librdkafka with
``ingest.client: librdkafka``, :mod:`~stream_drift.app.rdkafka_source`): it fetches up to
``consumer_max_records`` records at once, decodes, validates and bins them with
:class:`~stream_drift.pipeline.ingest.IngestAccumulator` (the columnar decode and binning in
one dedicated thread, every change of state on the event loop, so heartbeats, stage 2 and
``/metrics`` stay responsive while a backlog drains), and every
``flush_interval_seconds`` sends the partial histograms to ``drift.partials`` and the
rejected records to ``drift.deadletter`` through the app's producer. A partial whose
watermark passed a step's end goes out at once (:meth:`IngestService.send_crossed`), so a
step closes without waiting for the interval. Offsets are committed
only once those sends were acknowledged, so a crash replays at most one flush interval
(at-least-once; stage 2 skips replayed partials it already applied). A record that cannot be
sent because of itself (too large) is retried, then skipped and counted, so that it never
stops a partition; a broker that cannot be reached holds the offsets back instead (see
:meth:`IngestService.flush`)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

import mode
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnsupportedForMessageFormatError,
)
from aiokafka.structs import TopicPartition
from faust.exceptions import FaustError

from stream_drift.app.rdkafka_source import Fetched, RdkafkaSource
from stream_drift.app.runtime import Runtime
from stream_drift.app.topics import Topics
from stream_drift.pipeline.columnar import RecordBatch
from stream_drift.pipeline.deadletter import DEADLETTER_MIN_BYTES, deadletter_payload
from stream_drift.pipeline.events import Rejection
from stream_drift.pipeline.ingest import BatchOutcome, IngestAccumulator
from stream_drift.pipeline.partials import Partial
from stream_drift.pipeline.registry import reference_record_key

log = logging.getLogger(__name__)

UNKNOWN_MODEL_LABEL = "_unknown"
"""Metric label for rejected records whose model could not be read or is not known."""

COMMIT_TIMEOUT_SECONDS: Final = 15.0
"""A stage-1 offset commit not done after this long counts as failed (``/health`` says so)."""

VERIFY_TIMEOUT_SECONDS: Final = 5.0
"""Longest wait for the group's committed offsets, read back after a rebalance."""
VERIFY_RETRY_SECONDS: Final = 5.0
"""The read-back is tried again this much later when the broker did not answer (it may be
the one that restarted)."""

SEND_ATTEMPTS: Final = 3
"""Sends of a record that fails because of itself (too large, refused) before it is skipped."""
_RETRY_FIRST_SECONDS: Final = 0.5  # back-off while the broker cannot take records: 0.5 s ...
_RETRY_MAX_SECONDS: Final = 10.0  # ... doubling up to 10 s
_ACK_REPORT_SECONDS: Final = 30.0  # unacknowledged this long: /health says so
_DEADLETTER_KEY_MAX: Final = 4096  # larger keys stay in the payload, not on the dead letter

IDLE_FETCH_WAIT_MS: Final = 500
BUSY_FETCH_WAIT_MS: Final = 100
"""Longest time the broker may hold a stage-1 fetch: 500 ms while idle, 100 ms once records
flow (back to 500 after :data:`IDLE_AFTER_SECONDS` without any). aiokafka keeps one fetch in
flight per broker, and the embedded broker (Tansu) holds it about that long even when records
arrive meanwhile: with 500 ms during a drain, a partition with a few live records came back
in about half the batches, 0.3 s apart (up to 1.6 s), and the drained partitions waited
too. Measured (one run each, load ~4-5): 100 ms took step close → alert from p50 1.17 s,
p99 2.20 s to p50 0.52 s, p99 1.34 s."""
IDLE_AFTER_SECONDS: Final = 1.0

CROSSED_SEND_GAP_SECONDS: Final = 0.2
"""Least time between two early sends of the partials whose watermark passed a step's end
(:meth:`IngestService.send_crossed`). Live data crosses a step end once per step and model;
a replay of old events crosses one in every batch, and this gap keeps it from sending a
partial per batch (each one costs stage 2 an evaluator update and a table write)."""

EARLY_SEND_RECENT_SECONDS: Final = 300.0
"""Only a watermark this recent (or within two steps plus the lateness of now) is sent early
by :meth:`IngestService.send_crossed`: live data, where someone waits for the step to close.
A backlog of older events crosses a step end in nearly every batch; its partials wait for
the flush interval, which spares stage 2 an evaluation and a table write per early send
(1,000,000 old events: the event loop's share of the worker's one busy core went from 31 %
to 26 %, and the drain from 134k to 137-146k events/s, ad-hoc runs)."""

_TOO_LARGE: Final = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError)
_INVALID: Final = (CorruptRecordException, InvalidTimestampError, UnsupportedForMessageFormatError)


def record_failure(exc: BaseException) -> str | None:
    """Why a send failed because of the record itself, or ``None`` when it is not its fault.

    Returns the ``reason`` label of ``stream_drift_send_failures_total``:
    ``message_too_large`` (the producer's ``max_request_size`` check, or the broker's
    ``MESSAGE_TOO_LARGE``/``RECORD_LIST_TOO_LARGE``), ``invalid_record`` (the broker refused
    its content), or ``error`` for an exception that is neither a Kafka nor a Faust nor an
    OS error (the record could not be serialized or handed over: a bug, but one record's).
    Connection errors, timeouts, leader changes, authorisation and every other broker
    error give ``None``: sending the record again later can work. Faust wraps the client's
    errors in ``ProducerSendError``; the wrapped error is the one classified.

    Examples
    --------
    >>> from faust.exceptions import ProducerSendError
    >>> try:
    ...     try:
    ...         raise MessageSizeTooLargeError("The message is 2000000 bytes")
    ...     except KafkaError as exc:
    ...         raise ProducerSendError(f"Error while sending: {exc!r}") from exc
    ... except ProducerSendError as wrapped:
    ...     record_failure(wrapped)
    'message_too_large'
    >>> from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
    >>> record_failure(KafkaConnectionError()), record_failure(KafkaTimeoutError())
    (None, None)
    >>> record_failure(TypeError("value must be bytes"))
    'error'
    """
    while isinstance(exc, FaustError) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, _TOO_LARGE):
        return "message_too_large"
    if isinstance(exc, _INVALID):
        return "invalid_record"
    if isinstance(exc, KafkaError | FaustError | OSError | asyncio.CancelledError):
        return None
    return "error"


@dataclass(eq=False)
class _Outgoing:
    """One record stage 1 sends, kept until it is acknowledged so that it can be sent again."""

    kind: str  # "deadletter", "partial" or "reference": the failure metric's kind
    topic: Any  # the Faust topic
    topic_name: str
    key: bytes | None
    value: bytes
    where: str  # what it is and where it comes from, for the logs
    rejection: Rejection | None = None  # a dead letter's rejection, to rebuild it smaller
    budget: int = 0  # a dead letter's size budget (key + value)
    future: asyncio.Future[Any] | None = None
    error: BaseException | None = None


async def committed_offsets(
    consumer: AIOKafkaConsumer | RdkafkaSource, tps: list[TopicPartition]
) -> dict[TopicPartition, int | None]:
    """The group's committed offset of each of ``tps`` (``None``: none committed), read from
    the broker."""
    if isinstance(consumer, RdkafkaSource):
        return await consumer.committed(tps)
    return {tp: await consumer.committed(tp) for tp in tps}


class _FlushOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Flush and commit before partitions move, so the next owner does not replay them."""

    def __init__(self, service: IngestService) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.service.revoked.update(revoked)
        await self.service.flush()
        for tp in revoked:
            # Its next owner resumes from the committed chunk start; if it comes back here,
            # so does this worker, from scratch (the cumulative chunk state would double it).
            self.service.accumulator.forget(tp.topic, tp.partition)
            self.service.drop_offsets(tp)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        service = self.service
        service.runtime.health.ingest_partitions = sorted(tp.partition for tp in assigned)
        # One writer per lag series: drop the partitions that moved to another worker.
        service.runtime.metrics.retain_partitions([(tp.topic, tp.partition) for tp in assigned])
        for tp in list(service.next_offsets):
            if tp not in assigned:
                del service.next_offsets[tp]
        service.verify_after_rebalance(assigned)


class IngestService(mode.Service):
    """Owns the ingest consumer and the accumulate → flush → commit loop."""

    def __init__(self, runtime: Runtime, topics: Topics, **kwargs: Any) -> None:
        self.runtime = runtime
        self.topics = topics
        self.consumer: AIOKafkaConsumer | RdkafkaSource | None = None
        self.accumulator = IngestAccumulator(
            runtime.registry,
            step_seconds=runtime.windows.step_seconds,
            decoder=runtime.decoder(),
            warmup=runtime.warmup(),
            chunk_records=runtime.settings.ingest.replay_chunk_records,
            max_future_seconds=runtime.windows.max_future_seconds,
            sample_per_step=(
                runtime.settings.multivariate.sample_per_step
                if runtime.settings.multivariate.enabled
                else 0
            ),
        )
        self._offsets: dict[TopicPartition, int] = {}
        self.next_offsets: dict[TopicPartition, int] = {}  # next offset to ingest, for the lag
        # The last offset this worker committed per partition, kept across rebalances: the
        # group's committed offset never goes below it unless the broker lost its state.
        self.committed_by_us: dict[TopicPartition, int] = {}
        self._to_verify: set[TopicPartition] = set()
        self._verify_after = -math.inf  # monotonic time of the next read-back attempt
        self._pending: list[_Outgoing] = []  # records sent and not yet acknowledged
        self._held_back_logged = -math.inf
        self._last_flush = time.monotonic()
        self._last_crossed_send = -math.inf
        self._crossing_unchecked = False  # a batch came since the last look at crossings
        self._last_records = -math.inf  # monotonic time of the last non-empty batch
        self._fetch_wait_ms = IDLE_FETCH_WAIT_MS
        self._consumed = 0
        self._flush_lock = asyncio.Lock()
        self._stopping = False
        self._loop_done = asyncio.Event()
        # One thread: batches are computed one at a time, in order.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="stage1")
        self.revoked: Counter[TopicPartition] = Counter()
        """How many times each partition was revoked (see :meth:`_ingest`)."""
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        s = self.runtime.settings
        listener = _FlushOnRevoke(self)
        if s.ingest.client == "librdkafka":
            source = RdkafkaSource(s, self._executor)
            await source.start()
            source.subscribe([s.topics.events], listener)
            self.consumer = source
        else:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=",".join(s.kafka.servers),
                group_id=f"{s.app_id}-ingest",
                client_id=f"{s.app_id}-ingest",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=int(s.kafka.session_timeout_seconds * 1000),
                heartbeat_interval_ms=int(s.kafka.heartbeat_interval_seconds * 1000),
                rebalance_timeout_ms=int(s.kafka.rebalance_timeout_seconds * 1000),
                max_poll_interval_ms=max(60_000, int(s.kafka.rebalance_timeout_seconds * 1000)),
                # Idle: a long wait saves wake-ups (2.4 % -> 2.0 % of a core with 100 -> 500
                # ms, bench.resources); busy, _consume shortens it (see BUSY_FETCH_WAIT_MS).
                fetch_max_wait_ms=IDLE_FETCH_WAIT_MS,
                max_partition_fetch_bytes=4 * 1024 * 1024,
                **s.kafka.client_kwargs(),
            )
            self.consumer = consumer
            await consumer.start()
            consumer.subscribe([s.topics.events], listener=listener)
        self.runtime.health.ingest = "started"

    async def on_stop(self) -> None:
        self._stopping = True
        try:
            await asyncio.wait_for(self._loop_done.wait(), timeout=15)
        except TimeoutError:
            log.warning("ingest loop did not finish within 15 s")
        if self.consumer is not None:
            await self.consumer.stop()
        self._executor.shutdown(wait=False)

    @mode.Service.task
    async def _run(self) -> None:
        try:
            await self._wait_for_references()
            await self._consume()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("ingest loop crashed")
            self.runtime.health.ingest = "crashed"
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
            self.runtime.health.ingest_loop_at = time.time()  # /health/live: loop not stuck
            if self._to_verify and time.monotonic() >= self._verify_after:
                await self._verify_committed()
            # getmany returns as soon as records come: a longer wait when idle only saves the
            # loop's wake-ups (bench.resources: the idle worker's CPU).
            wait_ms = 100 if self._fetch_wait_ms == BUSY_FETCH_WAIT_MS else 500
            fetched = await self._next_batch(consumer, s.kafka.consumer_max_records, wait_ms)
            self._pace_fetches(fetched.count > 0)
            if fetched.count:
                health = self.runtime.health
                now = time.time()
                if health.first_batch_at is None:
                    health.first_batch_at = now
                health.last_batch_at = now
                self._consumed += fetched.count
                health.records_consumed = self._consumed
                for tp, offset in fetched.next_offsets.items():
                    first = fetched.first_offsets.get(tp)
                    read = self.next_offsets.get(tp)
                    if first is not None and read is not None and first < read:
                        # Within one assignment a partition never goes back: the log it was
                        # read from is gone. A client that then starts again at the earliest
                        # offset, as librdkafka does, hides it from the high-water check.
                        self._lost_log(tp, f"fetched offset {first} below offset {read}")
                    if tp.topic not in self.accumulator.topic_partitions:
                        known = consumer.partitions_for_topic(tp.topic) or ()
                        self.accumulator.topic_partitions[tp.topic] = len(known)
                    self.next_offsets[tp] = offset
                outcome, moved = await self._ingest(fetched)
                for tp in moved:  # read again from the committed offset
                    self.next_offsets.pop(tp, None)
                await self._handle(outcome)
                assigned = consumer.assignment()
                for tp in fetched.next_offsets:
                    if tp not in assigned or tp in moved:  # its next owner commits it
                        continue
                    # A chunk start, never more: a restart replays whole chunks, which stage 2
                    # de-duplicates exactly (see IngestAccumulator).
                    start = self.accumulator.commit_offset(tp.topic, tp.partition)
                    if start is not None:
                        self._offsets[tp] = start
                health.last_batch_done_at = time.time()
                self._crossing_unchecked = True
            now_m = time.monotonic()
            if now_m - self._last_flush >= interval:
                await self.flush()
                self._export_lag()
            elif self._crossing_unchecked and now_m - self._last_crossed_send >= min(
                CROSSED_SEND_GAP_SECONDS, interval
            ):
                await self.send_crossed()
        await self.flush()

    async def _next_batch(
        self, consumer: AIOKafkaConsumer | RdkafkaSource, max_records: int, wait_ms: int
    ) -> Fetched:
        """The next fetch as one batch: librdkafka's built in stage 1's thread, aiokafka's
        here from :meth:`_fetch`."""
        revoked = self.revoked
        if isinstance(consumer, RdkafkaSource):
            # Its rebalance callbacks run inside the fetch, in the thread that computes the
            # batches next: librdkafka hands out the records of the assignment after them.
            fetched = await consumer.fetch(max_records, wait_ms)
            fetched.revoked_before = {tp: revoked[tp] for tp in fetched.next_offsets}
            return fetched
        fetched = Fetched(RecordBatch([], [], [], [], []))

        def handed_out(tps: Iterable[TopicPartition]) -> None:
            fetched.revoked_before.update((tp, revoked[tp]) for tp in tps)

        for tp, msgs in (await self._fetch(consumer, max_records, wait_ms, handed_out)).items():
            if msgs:
                fetched.records.add_partition(tp.topic, tp.partition, msgs)
                fetched.first_offsets[tp] = msgs[0].offset
                fetched.next_offsets[tp] = msgs[-1].offset + 1
        return fetched

    def _pace_fetches(self, records: bool) -> None:
        """Shorten the broker's fetch wait while records flow, lengthen it once idle."""
        now = time.monotonic()
        if records:
            self._last_records = now
        busy = now - self._last_records < IDLE_AFTER_SECONDS
        wait = BUSY_FETCH_WAIT_MS if busy else IDLE_FETCH_WAIT_MS
        if wait == self._fetch_wait_ms:
            return
        self._fetch_wait_ms = wait
        fetcher: Any = getattr(self.consumer, "_fetcher", None)
        # aiokafka's Fetcher reads this attribute for every fetch request it builds (there is
        # no public setter); tests/test_ingest_latency.py checks it is still there. librdkafka
        # keeps its own short wait (rdkafka_source.FETCH_WAIT_MS).
        if hasattr(fetcher, "_fetch_max_wait_ms"):
            fetcher._fetch_max_wait_ms = wait

    @staticmethod
    async def _fetch(
        consumer: AIOKafkaConsumer,
        max_records: int,
        timeout_ms: int = 100,
        handed_out: Callable[[Iterable[TopicPartition]], None] | None = None,
    ) -> dict[Any, list[Any]]:
        """Up to ``max_records`` fetched records, plus what each partition left out of them
        already has (a quarter as many more at most, shared among them).

        aiokafka hands out its fetched records partition by partition, in the order the
        fetches came back, until ``max_records``: while a backlog drains, a partition with a
        few live records waits behind the other partitions' whole fetches (4 MiB each, ~13k
        events), several batches. Its records then reach stage 2 late, and so does the close
        of every step they pass (``bench.resources``: the step-close → alert latency).

        ``handed_out`` is called with the partitions of each ``getmany`` answer as it comes: a
        rebalance may run between two of them.
        """
        batch: dict[Any, list[Any]] = await consumer.getmany(
            timeout_ms=timeout_ms, max_records=max_records
        )
        if handed_out is not None:
            handed_out(batch)
        if batch:
            left_out = [tp for tp in consumer.assignment() if tp not in batch]
            share = max(1, max_records // 4 // max(len(left_out), 1))
            for tp in left_out:  # one call each: together, the first would take it all
                more = await consumer.getmany(tp, timeout_ms=0, max_records=share)
                if handed_out is not None:
                    handed_out(more)
                batch.update(more)
        return batch

    async def _ingest(self, fetched: Fetched) -> tuple[BatchOutcome, set[TopicPartition]]:
        """Decode and bin a batch in the ingest thread, count it in on the event loop; return
        the outcome and the partitions whose records were left out (revoked meanwhile).

        The thread only reads (:meth:`IngestAccumulator.compute`): every change of stage 1's
        state happens here, on the loop, batch after batch, so a flush or a rebalance
        callback never sees half a batch. While the thread decodes (msgspec and numpy hold
        the GIL only in turns), the loop keeps answering heartbeats, stage 2 and
        ``/metrics``.

        A partition revoked since its records were handed out lost its state then (flushed,
        committed, forgotten), and whoever owns it now reads it from the committed offset
        — this worker too, if the partition came back: the client restarts a new
        assignment there. Its records in this batch are left out; counted, they would come
        on top of that replay, and their offsets would be committed past the events the
        forgotten state held.
        """
        accumulator = self.accumulator
        accumulator.prepare()
        batch = fetched.records
        loop = asyncio.get_running_loop()
        computed = await loop.run_in_executor(self._executor, accumulator.compute, batch)
        revoked = self.revoked
        moved = {tp for tp, n in fetched.revoked_before.items() if revoked[tp] != n}
        if moved:
            kept = [(tp.topic, tp.partition) for tp in fetched.next_offsets if tp not in moved]
            return accumulator.add_batch(batch.only(kept)), moved
        return accumulator.apply(computed), moved

    def verify_after_rebalance(self, assigned: Any) -> None:
        """Read back the group's committed offsets of the partitions this worker committed
        before, at the top of the next loop turn or before its next commit, whichever is
        first."""
        self._to_verify = {tp for tp in assigned if tp in self.committed_by_us}
        self._verify_after = -math.inf

    async def _verify_committed(self) -> None:
        """Flag a lost log when the group's committed offset of a partition is gone or below
        the one this worker committed.

        A broker that restarts empty makes the group re-join: the revoke forgets the read
        positions, so the offsets-went-back check of :meth:`_consume` cannot see it, and the
        high-water check only once the new log outgrows the old positions. Committed offsets
        only move forward (every owner commits chunk starts at or after where it resumed), so
        one that went back is the broker's loss, not a replay.
        """
        assert self.consumer is not None
        tps = sorted(self._to_verify)
        try:
            found = await asyncio.wait_for(
                committed_offsets(self.consumer, tps), VERIFY_TIMEOUT_SECONDS
            )
        except Exception as exc:  # the broker may be away: try again a little later
            log.warning("could not read the committed offsets back: %r", exc)
            self._verify_after = time.monotonic() + VERIFY_RETRY_SECONDS
            return
        for tp in tps:
            ours = self.committed_by_us.get(tp)
            theirs = found.get(tp)
            if ours is not None and (theirs is None or theirs < ours):
                group = "gone" if theirs is None else f"back at {theirs}"
                self._lost_log(tp, f"group's committed offset {group}; offset {ours} committed and")
        self._to_verify.difference_update(tps)

    def drop_offsets(self, tp: TopicPartition) -> None:
        """Forget a revoked partition's offsets (its new owner commits them)."""
        self._offsets.pop(tp, None)
        self.next_offsets.pop(tp, None)

    def _lost_log(self, tp: TopicPartition, what: str) -> None:
        """Report that offsets already read are gone: the broker lost its state (or the topic
        was re-created). Sticky: this worker's state no longer matches the broker's."""
        if self.runtime.health.broker_lost_log is None:
            self.runtime.health.broker_lost_log = f"{tp.topic}/{tp.partition}: {what} already read"
            log.error("broker lost its log? %s", self.runtime.health.broker_lost_log)

    def _export_lag(self) -> None:
        """Export high-water mark minus next offset for every partition with a known mark."""
        assert self.consumer is not None
        total = 0
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            position = self.next_offsets.get(tp)
            if highwater is None or position is None:
                continue  # nothing fetched from it yet: no figure rather than a guess
            if highwater < position:
                self._lost_log(tp, f"high-water mark {highwater} below offset {position}")
            self.runtime.metrics.set_consumer_lag(tp.topic, tp.partition, highwater - position)
            total += highwater - position
        self.runtime.note_consumer_lag(total, time.time())  # /health: falling behind?

    async def _handle(self, outcome: BatchOutcome) -> None:
        """Count a batch's outcome and send its dead letters and learned references.

        No send error escapes: a record the producer refuses keeps its error and
        :meth:`flush` decides what to do with it. A dead letter fits
        ``ingest.deadletter_max_bytes`` whatever the record's size (its copy of the record
        is cut, see :func:`~stream_drift.pipeline.deadletter.deadletter_payload`).
        """
        metrics = self.runtime.metrics
        for model, n in outcome.accepted.items():
            metrics.count_events(model, "accepted", n)
        for (model, feature), n in outcome.mismatched.items():  # names from the reference
            metrics.count_invalid_values(model, feature, "type_mismatch", n)
        known = self.runtime.registry.models() if outcome.rejections else set()
        budget = self.runtime.settings.ingest.deadletter_max_bytes
        for rejection in outcome.rejections:
            # The label must stay bounded: a name read from a bad record is used only when it
            # is a model with a reference, never whatever a producer wrote.
            label = rejection.model if rejection.model in known else UNKNOWN_MODEL_LABEL
            metrics.count_events(label, "invalid")
            metrics.count_deadletter(rejection.reason.value)
            await self._queue(self._deadletter(rejection, budget))
        for profile in outcome.learned:
            log.info("learned reference %s for %s from warm-up", profile.id, profile.key)
            await self._queue(
                _Outgoing(
                    "reference",
                    self.topics.references,
                    self.runtime.settings.topics.references,
                    reference_record_key(profile).encode(),
                    profile.to_json().encode(),
                    f"reference {profile.id} of {profile.key}",
                )
            )

    async def send_crossed(self) -> None:
        """Send at once the partials of the (source partition, model) pairs whose watermark
        passed a step's end since they were last sent (:meth:`IngestAccumulator.crossed
        <stream_drift.pipeline.ingest.IngestAccumulator.crossed>`): stage 2 can close that
        step now instead of after the rest of the flush interval. Only recent watermarks
        count (:data:`EARLY_SEND_RECENT_SECONDS`): a replay of old events waits for the flush.

        Nothing is committed and no ack awaited here: the next :meth:`flush` waits for
        these records with the others before it commits (at-least-once holds).
        """
        async with self._flush_lock:
            self._crossing_unchecked = False
            windows = self.runtime.windows
            lateness = windows.allowed_lateness_seconds
            recent = max(EARLY_SEND_RECENT_SECONDS, 2 * windows.step_seconds + lateness)
            due = self.accumulator.crossed(lateness, not_before=time.time() - recent)
            if not due:
                return
            self._last_crossed_send = time.monotonic()
            for p in self.accumulator.flush(only=due):
                await self._queue(self._outgoing_partial(p))

    def _outgoing_partial(self, p: Partial) -> _Outgoing:
        return _Outgoing(
            "partial",
            self.topics.partials,
            self.runtime.settings.topics.partials,
            p.model.encode(),
            p.to_bytes(),
            f"partial of {p.model!r} from {p.source} offsets "
            f"[{p.offset_start}, {p.offset_end}) ({p.n_events} events)",
        )

    async def flush(self) -> None:
        """Send partials and dead letters, wait for the acks, then commit the offsets.

        How a failed send is handled decides whether anything is lost:

        - **A failure of the record itself** (:func:`record_failure`: too large for the
          producer or the broker, refused as invalid): the record is sent again, alone (a
          broker refusing a batch refuses every record in it), up to :data:`SEND_ATTEMPTS`
          times in all; a dead letter is rebuilt four times smaller at each attempt, down to
          16 KiB. Then it is skipped: logged as an error with its source topic, partition and
          offset (a partial: its source partition, offsets and number of events), counted in
          ``stream_drift_send_failures_total{kind, reason}``, and the offsets are committed.
          It would fail the same way after every restart, so holding its offset back would
          stop the partition for good. A skipped partial loses the events it counted for
          stage 2 (partials are cumulative per chunk of offsets, so a later flush of the same
          chunk, larger still, is likely to be skipped too); only a partial larger than
          ``kafka.producer_max_request_bytes`` or the topic's limit does that.
        - **Any other failure** (broker unreachable, timeouts, leader changes, authorisation,
          and errors not known to be the record's): nothing is skipped and nothing committed.
          The records are sent again with a back-off doubling from 0.5 s to 10 s, and the
          flush waits for them, so stage 1 stops consuming meanwhile (no unbounded backlog in
          memory) and ``/health`` reports the commit as failing. If the worker stops first,
          the offsets stay uncommitted and the next owner of the partitions replays them
          (at-least-once: stage 2 skips partials it already applied).
        """
        async with self._flush_lock:
            for p in self.accumulator.flush():
                await self._queue(self._outgoing_partial(p))
            offsets = dict(self._offsets)
            self._last_flush = time.monotonic()
            if not self._pending and not offsets:
                return
            if not await self._deliver():
                log.warning("ingest stopping with records unacknowledged: offsets not committed")
                return
            if offsets and self.consumer is not None:
                if self._to_verify:  # before a commit of ours hides what the group had
                    await self._verify_committed()
                try:
                    # aiokafka retries some errors (an unknown topic after the broker lost its
                    # state) forever: bounded, it becomes a failure /health reports.
                    await asyncio.wait_for(self.consumer.commit(offsets), COMMIT_TIMEOUT_SECONDS)
                except Exception as exc:  # health reports it; the next flush retries
                    self.runtime.health.last_commit_error = repr(exc)
                    self.runtime.health.last_commit_ok = False
                    log.error("ingest commit failed: %r", exc)
                    return
                for tp, off in offsets.items():
                    self.committed_by_us[tp] = off
                    if self._offsets.get(tp) == off:
                        del self._offsets[tp]
            if self.runtime.health.last_commit_ok is False:
                log.info("ingest records delivered and offsets committed again")
            self.runtime.health.last_commit_ok = True
            self.runtime.health.last_flush_at = time.time()

    def _deadletter(self, rejection: Rejection, budget: int) -> _Outgoing:
        """The dead letter of ``rejection``: key + value within ``budget`` bytes.

        The record's key becomes the dead letter's key unless it is large (it is in the
        payload either way, as ``key_base64``).
        """
        record = rejection.record
        key = record.key
        if key is not None and len(key) > min(_DEADLETTER_KEY_MAX, budget - DEADLETTER_MIN_BYTES):
            key = None
        value = deadletter_payload(rejection, max_bytes=budget - len(key or b""))
        size = "tombstone" if record.value is None else f"{len(record.value)} bytes"
        return _Outgoing(
            "deadletter",
            self.topics.deadletter,
            self.runtime.settings.topics.deadletter,
            key,
            value,
            f"dead letter of {record.topic}/{record.partition}@{record.offset} "
            f"({rejection.reason.value}, {size})",
            rejection=rejection,
            budget=budget,
        )

    async def _send(self, item: _Outgoing) -> None:
        """Hand ``item`` to the producer; an error is kept on the item, never raised."""
        item.future = None
        item.error = None
        try:
            # topic.send() only enqueues (the producer checks the size here); its future
            # completes with the broker's answer.
            item.future = asyncio.ensure_future(
                await item.topic.send(key=item.key, value=item.value)
            )
        except Exception as exc:
            item.error = exc

    async def _queue(self, item: _Outgoing) -> None:
        await self._send(item)
        self._pending.append(item)

    def _is_stopping(self) -> bool:
        return self._stopping or bool(self.should_stop)

    async def _settle(self, items: list[_Outgoing]) -> bool:
        """Wait for the broker's answers; ``False`` when stopping before all came.

        Sets ``error`` on each item whose send failed.
        """
        waiting = {i.future for i in items if i.error is None and i.future is not None}
        started = time.monotonic()
        while waiting:
            _, waiting = await asyncio.wait(waiting, timeout=1.0)
            waited = time.monotonic() - started
            if waiting and waited >= _ACK_REPORT_SECONDS:
                self._hold_back(f"{len(waiting)} records unacknowledged for {waited:.0f} s")
            if waiting and self._is_stopping():
                return False
        for item in items:
            fut = item.future
            if item.error is None and fut is not None:
                if fut.cancelled():
                    item.error = asyncio.CancelledError()
                else:
                    item.error = fut.exception()
        return True

    async def _deliver(self) -> bool:
        """Wait until every pending record is acknowledged or skipped (see :meth:`flush`).

        Returns ``False`` when the service stops with records still undelivered (they stay
        in ``_pending``).
        """
        delay = _RETRY_FIRST_SECONDS
        while self._pending:
            items = list(self._pending)
            if not await self._settle(items):
                return False
            self._pending.clear()
            outage: list[_Outgoing] = []
            for item in items:
                if item.error is None:
                    continue
                reason = record_failure(item.error)
                if reason is None or not await self._retry_alone(item, reason):
                    outage.append(item)
            if not outage:
                break
            first = outage[0]
            self._hold_back(
                f"{len(outage)} records not delivered, e.g. {first.kind} to {first.topic_name}: "
                f"{first.error!r}; retrying in {delay:g} s"
            )
            self._pending.extend(outage)
            if self._is_stopping():
                return False
            await self.sleep(delay)
            delay = min(2 * delay, _RETRY_MAX_SECONDS)
            self._pending.clear()
            for item in outage:
                await self._queue(item)
        return True

    async def _retry_alone(self, item: _Outgoing, reason: str) -> bool:
        """Send a record that just failed because of itself again, alone, until it is
        delivered, or has failed :data:`SEND_ATTEMPTS` times in a row (then it is skipped and
        counted): ``True``. ``False`` when an attempt fails for a reason that is not the
        record's (an outage), or is still unanswered when the service stops."""
        for attempt in range(2, SEND_ATTEMPTS + 1):
            log.warning(
                "sending %s to %s failed (%s: %r); attempt %d of %d",
                item.where,
                item.topic_name,
                reason,
                item.error,
                attempt,
                SEND_ATTEMPTS,
            )
            if reason == "message_too_large" and item.rejection is not None:
                budget = max(DEADLETTER_MIN_BYTES, item.budget // 4)
                smaller = self._deadletter(item.rejection, budget)
                item.key, item.value, item.budget = smaller.key, smaller.value, budget
            await self._send(item)
            if not await self._settle([item]):
                return False
            if item.error is None:
                return True
            found = record_failure(item.error)
            if found is None:
                return False
            reason = found
        self.runtime.metrics.count_send_failure(item.kind, reason)
        log.error(
            "gave up sending %s to %s after %d attempts (%s: %r): skipped, and its source "
            "offsets are committed",
            item.where,
            item.topic_name,
            SEND_ATTEMPTS,
            reason,
            item.error,
        )
        return True

    def _hold_back(self, problem: str) -> None:
        """Report (log and ``/health``) that offsets are held back because sends fail."""
        message = f"offsets not committed: {problem}"
        now = time.monotonic()
        if now - self._held_back_logged >= _ACK_REPORT_SECONDS:  # not once a second
            self._held_back_logged = now
            log.warning("ingest %s", message)
        self.runtime.health.last_commit_ok = False
        self.runtime.health.last_commit_error = message
