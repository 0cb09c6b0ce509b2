"""Stage 1 without Kafka: decode, validate, bin and accumulate a batch of raw records.

The Faust layer feeds :meth:`IngestAccumulator.add_batch` (or :meth:`~IngestAccumulator.
add_records`) with each batch it consumes, sends what :meth:`IngestAccumulator.flush` returns
to ``drift.partials``, dead-letters the rejections, and commits the batch's offsets only after
both were delivered.

A batch takes the columnar path of :mod:`stream_drift.pipeline.columnar` first; only the
records it cannot judge (bad ones, unknown models, unusual timestamps or payloads) go through
the per-record path (:meth:`IngestAccumulator.add_records_per_record`), which gives the same
outcome for every record (a property test checks it on random batches).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

import numpy as np

from stream_drift.pipeline.alert_text import format_timestamp
from stream_drift.pipeline.columnar import Computed, FastDecoders, GroupCounts, RecordBatch
from stream_drift.pipeline.columns import group_values
from stream_drift.pipeline.decode import EventDecoder
from stream_drift.pipeline.domain import (
    SampleBlock,
    block_rows,
    merge_blocks,
    sample_priority,
    sample_series,
    select_bottom_k,
    split_groups,
    value_codes,
)
from stream_drift.pipeline.events import (
    Event,
    RawRecord,
    Rejection,
    RejectReason,
    is_prediction_series,
)
from stream_drift.pipeline.partials import Partial
from stream_drift.pipeline.reference import ReferenceProfile
from stream_drift.pipeline.registry import ReferenceRegistry, WarmupCollector
from stream_drift.stats.histogram import Histogram


@dataclass
class BatchOutcome:
    """What one batch did: events accepted per model, rejections, references learned, and
    ``mismatched``: values of the wrong kind per (model, series of its reference), e.g. a
    string where the reference has numbers, counted apart from missing ones (the event is
    accepted; the value is in no bin)."""

    accepted: Counter[str] = field(default_factory=Counter)
    rejections: list[Rejection] = field(default_factory=list)
    learned: list[ReferenceProfile] = field(default_factory=list)
    warming_up: int = 0
    mismatched: Counter[tuple[str, str]] = field(default_factory=Counter)


#: Default size, in source offsets, of the chunks partials are cut into (see
#: :class:`IngestAccumulator`): a crash replays at most this many records per partition.
CHUNK_RECORDS = 10_000


class _Builder:
    """Histograms of one (model, version, reference, source) in one chunk of offsets."""

    __slots__ = ("changed", "dirty", "events", "reference", "sample", "steps")

    def __init__(self, reference: ReferenceProfile) -> None:
        self.reference = reference
        self.steps: dict[float, dict[str, Histogram]] = {}
        self.sample: dict[float, SampleBlock] = {}
        """Per step, the chunk's bottom-k rows (when sampling)."""
        self.events: Counter[float] = Counter()
        self.dirty = False
        self.changed: set[float] = set()
        """Steps that received events since the last flush: only their histograms are
        resent (the others' are what stage 2 already has), so a partial stays as small as
        one flush's events however long its chunk takes to fill."""


class IngestAccumulator:
    """Accumulates partial histograms per (model, version, source partition, step).

    Parameters
    ----------
    registry
        References to bin against (stage 1 needs the bin edges).
    step_seconds
        Window step: events are grouped by ``floor(ts / step) * step``.
    decoder
        Event decoder (size limit, known models).
    warmup
        When set, a model with no reference is learned from its first events instead of
        being rejected as ``unknown_model``.
    max_future_seconds
        Events whose time is further ahead of ``clock()`` are rejected as
        ``future_timestamp``, so no watermark moves beyond the clock plus this margin.
    clock
        Wall clock (epoch seconds), injectable for tests.
    columnar
        Take the columnar path first (the default); ``False`` judges every record on its
        own (the reference the columnar path is tested against).
    sample_per_step
        Rows sampled per (model version, source partition, step) for the multivariate
        check (``multivariate.sample_per_step``): each chunk's partial carries, per step,
        its rows of smallest :func:`~stream_drift.pipeline.domain.sample_priority` (a hash
        of partition and offset, so every path and every replay picks the same rows) in
        :attr:`Partial.sample`. ``0`` (the default): no sample.
    chunk_records
        Partials are cut at multiples of this many source offsets. A partial covers
        ``[chunk start, position)`` of its partition — *cumulative*: each flush resends the
        chunk so far — until the chunk is complete; :meth:`commit_offset` never passes the
        start of an incomplete chunk. A replay after a crash therefore starts at a chunk start
        and produces partials whose overlap with what stage 2 applied is exactly what stage 2
        applied from that chunk, which it subtracts: every event is counted once.

    Notes
    -----
    Exactness rests on two facts: a Kafka partition's records at given offsets never change,
    and the consumer resumes from :meth:`commit_offset`, a chunk start. The price is that a
    crash replays up to ``chunk_records`` records per partition (de-duplicated by stage 2),
    and that a chunk's partial is resent at each flush while the chunk fills.

    Examples
    --------
    >>> import numpy as np
    >>> from stream_drift.pipeline.reference import build_reference
    >>> reg = ReferenceRegistry()
    >>> _ = reg.add(build_reference({"x": np.arange(100.0)}, model="m"))
    >>> acc = IngestAccumulator(reg, step_seconds=60)
    >>> recs = [RawRecord(b'{"model": "m", "ts": 61, "features": {"x": 5}}', "ev", 0, 0, 0),
    ...         RawRecord(b'{"model": "zz", "features": {"x": 5}}', "ev", 0, 1, 0),
    ...         RawRecord(b'not json', "ev", 0, 2, 0)]
    >>> out = acc.add_records(recs)
    >>> dict(out.accepted), sorted(r.reason.value for r in out.rejections)
    ({'m': 1}, ['malformed_json', 'unknown_model'])
    >>> [(p.model, p.source, p.watermark, p.events) for p in acc.flush()]
    [('m', 'ev/0', 61.0, {60.0: 1})]
    >>> [(p.offset_start, p.offset_end) for p in acc.flush()]  # nothing new: nothing resent
    []
    >>> acc.commit_offset("ev", 0)  # chunk [0, 10000) incomplete: a replay restarts at 0
    0
    """

    def __init__(
        self,
        registry: ReferenceRegistry,
        *,
        step_seconds: float,
        decoder: EventDecoder | None = None,
        warmup: WarmupCollector | None = None,
        chunk_records: int = CHUNK_RECORDS,
        max_future_seconds: float = math.inf,
        clock: Callable[[], float] = time.time,
        columnar: bool = True,
        sample_per_step: int = 0,
    ) -> None:
        if not step_seconds > 0:
            raise ValueError("step_seconds must be > 0")
        if chunk_records < 1:
            raise ValueError("chunk_records must be >= 1")
        self.chunk_records = int(chunk_records)
        if not max_future_seconds >= 0:
            raise ValueError("max_future_seconds must be >= 0")
        self.max_future_seconds = float(max_future_seconds)
        self.clock = clock
        self.registry = registry
        self.step_seconds = float(step_seconds)
        self.decoder = decoder or EventDecoder()
        self.warmup = warmup
        self._builders: dict[tuple[str, str, str, str, int], _Builder] = {}
        self.positions: dict[str, int] = {}
        """Next offset to read per source partition (after every record seen, bad ones too)."""
        self.watermarks: dict[tuple[str, str], float] = {}
        """Largest event time seen per (source partition, model): a model's clock is its own,
        so one model lagging another on the same partition does not make its events late."""
        self.offsets: dict[str, int] = {}
        self._source_names: dict[tuple[str, int], str] = {}
        self.topic_partitions: dict[str, int] = {}
        """Partitions of each source topic (set by the consumer), sent with every partial so
        stage 2 waits for the partitions it has not heard from yet."""
        self.columnar = columnar
        if sample_per_step < 0:
            raise ValueError("sample_per_step must be >= 0")
        self.sample_per_step = int(sample_per_step)
        self._fast = FastDecoders(registry, self.decoder.known_models)
        self._judged: Counter[tuple[str, str]] = Counter()  # last per-record call's accepted
        self._sent_marks: dict[tuple[str, str], float] = {}
        """Watermark of each (source partition, model) when its partials were last flushed
        (see :meth:`crossed`)."""

    def add_records(self, records: Iterable[RawRecord]) -> BatchOutcome:
        """Decode, validate, bin and count one batch; never raises on bad input."""
        if not self.columnar:
            return self.add_records_per_record(records)
        return self.add_batch(RecordBatch.of_records(records))

    def add_batch(self, batch: RecordBatch) -> BatchOutcome:
        """:meth:`add_records` for a batch already in columns."""
        self.prepare()
        return self.apply(self.compute(batch))

    def prepare(self) -> None:
        """Bring the typed decoders up to date with the registry (on the thread that owns
        this accumulator, before :meth:`compute`)."""
        self._fast.refresh()

    def compute(self, batch: RecordBatch) -> Computed:
        """Decode and bin ``batch`` without changing any state: safe to run in another
        thread while the owner's thread goes on; :meth:`apply` the result on the owner's
        thread, in batch order."""
        return self._fast.compute(
            batch,
            step_seconds=self.step_seconds,
            chunk_records=self.chunk_records,
            horizon=self.clock() + self.max_future_seconds,
            max_message_bytes=self.decoder.max_message_bytes,
            sample_per_step=self.sample_per_step,
        )

    def apply(self, computed: Computed) -> BatchOutcome:
        """Count what :meth:`compute` found into the chunk histograms, and judge the rows it
        left to the per-record path; returns the batch's outcome."""
        batch = computed.batch
        outcome = BatchOutcome()
        names = [self._source_name(topic, partition) for topic, partition in computed.sources]
        start = 0
        for topic, partition, end in batch.sources:
            name = self._source_name(topic, partition)
            if end > start:
                last = max(batch.offsets[start:end]) + 1
                if last > self.positions.get(name, -1):
                    self.positions[name] = last
            start = end
        slow = computed.slow
        registry = self.registry
        current = all(registry.lookup(g.model, g.version) is g.reference for g in computed.groups)
        if not current:  # a reference changed while the batch was computed: judge it anew
            slow = list(range(len(batch)))
        else:
            for g in computed.groups:
                self._add_group(names[g.source], g, outcome)
            for s_i, end in computed.accepted_end.items():
                name = names[s_i]
                if end > self.offsets.get(name, -1):
                    self.offsets[name] = end
            for (s_i, model), wm in computed.watermarks.items():
                key = (names[s_i], model)
                if wm > self.watermarks.get(key, -math.inf):
                    self.watermarks[key] = wm
        if slow:
            self._per_record([batch.record(i) for i in slow], outcome, computed.horizon)
            # Accepted here rather than in columns: a version whose shape is not the struct's?
            for (model, version), n in self._judged.items():
                reference = registry.lookup(model, version)
                if reference is not None:
                    seen = computed.misfits.setdefault(model, {})
                    _, before = seen.get(id(reference), (reference, 0))
                    seen[id(reference)] = (reference, before + n)
        self._fast.learn(computed)
        return outcome

    def _source_name(self, topic: str, partition: int) -> str:
        tp = (topic, partition)
        source = self._source_names.get(tp)
        if source is None:  # one string per partition, not one per record
            source = self._source_names[tp] = f"{topic}/{partition}"
        return source

    def _add_group(self, source: str, group: GroupCounts, outcome: BatchOutcome) -> None:
        reference = group.reference
        key = (group.model, group.version, reference.id, source, group.chunk)
        builder = self._builders.get(key)
        if builder is None:
            builder = self._builders[key] = _Builder(reference)
        builder.dirty = True
        hists = builder.steps.setdefault(group.step, {})
        for name, (counts, missing) in group.counts.items():
            hist = hists.get(name)
            if hist is None:
                hist = hists[name] = reference.series[name].empty()
            hist.counts += counts
            hist.missing += missing
        builder.events[group.step] += group.events
        builder.changed.add(group.step)
        outcome.accepted[group.model] += group.events
        if group.sample is not None:
            kept = builder.sample.get(group.step)
            builder.sample[group.step] = merge_blocks(kept, group.sample, self.sample_per_step)

    def add_records_per_record(self, records: Iterable[RawRecord]) -> BatchOutcome:
        """:meth:`add_records` judging every record on its own (no columnar path)."""
        return self._per_record(records, BatchOutcome(), self.clock() + self.max_future_seconds)

    def _per_record(
        self, records: Iterable[RawRecord], outcome: BatchOutcome, horizon: float
    ) -> BatchOutcome:
        starting = 0  # models whose warm-up this batch starts
        by_source: dict[str, dict[tuple[str, int, str], tuple[list[Event], list[int]]]] = {}
        waiting: dict[tuple[str, str], list[tuple[RawRecord, Event]]] = {}
        for record in records:
            source = self._source(record)
            if record.offset >= self.positions.get(source, -1):
                self.positions[source] = record.offset + 1
            decoded = self.decoder.decode(record)
            if isinstance(decoded, Rejection):
                outcome.rejections.append(decoded)
                continue
            if decoded.ts > horizon:
                outcome.rejections.append(
                    Rejection(
                        record,
                        RejectReason.FUTURE_TIMESTAMP,
                        f"ts: {format_timestamp(decoded.ts)} is more than "
                        f"{self.max_future_seconds:g} s ahead of the worker's clock "
                        f"({format_timestamp(horizon - self.max_future_seconds)}); "
                        "check the producer's clock (window.max_future_seconds)",
                        decoded.model,
                    )
                )
                continue
            key = (decoded.model, decoded.model_version)
            if self.registry.lookup(*key) is None:
                if self.warmup is None:
                    outcome.rejections.append(
                        Rejection(
                            record,
                            RejectReason.UNKNOWN_MODEL,
                            f"model {decoded.model!r}: no reference published and warm-up "
                            "is off (publish one with `stream-drift reference publish`)",
                            decoded.model,
                        )
                    )
                    continue
                if key not in waiting and not self.warmup.has_room_for(key, starting):
                    outcome.rejections.append(
                        Rejection(
                            record,
                            RejectReason.UNKNOWN_MODEL,
                            f"model {decoded.model!r}: no reference, and warm-up is already "
                            f"learning {self.warmup.max_models} models "
                            "(references.warmup_max_models); publish a reference instead",
                            decoded.model,
                        )
                    )
                    continue
                if key not in waiting:
                    waiting[key] = []
                    starting += not self.warmup.collected(key)
                waiting[key].append((record, decoded))
                continue
            self._admit(record, decoded, by_source)
        for key, items in waiting.items():
            assert self.warmup is not None
            if self.registry.lookup(*key) is None:
                # Only what completes the warm-up is learned; the rest of the batch is judged
                # against the new reference (nothing dropped silently).
                used = min(len(items), self.warmup.n_events - self.warmup.collected(key))
                outcome.warming_up += used
                profile = self.warmup.add([ev for _, ev in items[:used]])
                if profile is not None and self.registry.add(profile):
                    outcome.learned.append(profile)
                items = items[used:]
            if items and self.registry.lookup(*key) is not None:
                for record, event in items:
                    self._admit(record, event, by_source)
        self._judged.clear()
        for source, groups in by_source.items():
            for (model, chunk, version), (events, offsets) in groups.items():
                self._judged[model, version] += len(events)
                outcome.mismatched.update(
                    self._accumulate(source, chunk, model, version, events, offsets)
                )
                outcome.accepted[model] += len(events)
        return outcome

    def _source(self, record: RawRecord) -> str:
        return self._source_name(record.topic, record.partition)

    def _admit(
        self,
        record: RawRecord,
        event: Event,
        by_source: dict[str, dict[tuple[str, int, str], tuple[list[Event], list[int]]]],
    ) -> None:
        source = self._source(record)
        self.offsets[source] = max(self.offsets.get(source, -1), record.offset + 1)
        chunk = record.offset - record.offset % self.chunk_records
        events, offsets = by_source.setdefault(source, {}).setdefault(
            (event.model, chunk, event.model_version), ([], [])
        )
        events.append(event)
        offsets.append(record.offset)
        key = (source, event.model)
        if event.ts > self.watermarks.get(key, -math.inf):
            self.watermarks[key] = event.ts

    def _accumulate(
        self,
        source: str,
        chunk: int,
        model: str,
        version: str,
        events: list[Event],
        offsets: list[int],
    ) -> Counter[tuple[str, str]]:
        """Count the events into their step histograms; return the values of the wrong kind
        per (model, series)."""
        mismatched: Counter[tuple[str, str]] = Counter()
        reference = self.registry.lookup(model, version)
        assert reference is not None
        key = (model, version, reference.id, source, chunk)
        builder = self._builders.get(key)
        if builder is None:
            builder = self._builders[key] = _Builder(reference)
        builder.dirty = True
        for (_, _, step_start), columns in group_values(events, self.step_seconds).items():
            # Each series has one value per event carrying its kind (features or prediction),
            # so a reference series absent from all of them is missing in each of them.
            carrying = {False: 0, True: 0}
            for name, column in columns.items():
                kind = is_prediction_series(name)
                carrying[kind] = max(carrying[kind], len(column))
            hists = builder.steps.setdefault(step_start, {})
            for name, series in reference.series.items():
                values = columns.get(name) or [None] * carrying[is_prediction_series(name)]
                if not values:
                    continue
                hist = hists.get(name)
                if hist is None:
                    hist = hists[name] = series.empty()
                before = hist.mismatched
                hist.add(values)
                if hist.mismatched > before:
                    mismatched[model, name] += hist.mismatched - before
        step = self.step_seconds
        starts = []
        for ev in events:
            start = math.floor(ev.ts / step) * step
            builder.events[start] += 1
            builder.changed.add(start)
            starts.append(start)
        if self.sample_per_step and builder.reference.sample is not None:
            self._sample(builder, source, events, offsets, starts)
        return mismatched

    def _sample(
        self,
        builder: _Builder,
        source: str,
        events: list[Event],
        offsets: list[int],
        starts: list[float],
    ) -> None:
        """Merge the events' bottom-k rows per step into the chunk's sample (the rows and
        codes the columnar path picks for the same records)."""
        reference = builder.reference
        partition = int(source.rsplit("/", 1)[1])
        index: dict[float, int] = {}
        groups = np.fromiter((index.setdefault(s, len(index)) for s in starts), np.int64)
        priority = sample_priority(np.full(len(events), partition), offsets)
        chosen = select_bottom_k(groups, priority, self.sample_per_step)
        picked = [events[i].values for i in chosen.tolist()]
        layout = sample_series(reference)
        codes = np.full((len(picked), len(layout)), -1, dtype=np.int64)
        for j, name in enumerate(layout):
            codes[:, j] = value_codes(reference, name, [v.get(name) for v in picked])
        offset_array = np.asarray(offsets, dtype=np.int64)
        step_of = list(index)
        for g, block in split_groups(groups, chosen, priority, offset_array, codes).items():
            start = step_of[g]
            kept = builder.sample.get(start)
            builder.sample[start] = merge_blocks(kept, block, self.sample_per_step)

    def crossed(self, lateness: float = 0.0, not_before: float = -math.inf) -> set[tuple[str, str]]:
        """The (source partition, model) pairs whose watermark passed a step's end plus
        ``lateness`` since their partials were last flushed (or that were never flushed),
        among those whose watermark is at ``not_before`` or later.

        Their next partial can let stage 2 close a window: flushing just them at once
        (:meth:`flush` with ``only``), rather than at the next flush interval, takes that
        interval out of the step-close → alert latency.

        Examples
        --------
        >>> acc = IngestAccumulator(ReferenceRegistry(), step_seconds=60)
        >>> acc.watermarks["ev/0", "m"] = 70.0  # as events of model m on ev/0 move it
        >>> acc.crossed()  # never flushed
        {('ev/0', 'm')}
        >>> _ = acc.flush(only=acc.crossed())
        >>> acc.watermarks["ev/0", "m"] = 119.0
        >>> acc.crossed()  # still in the step [60, 120)
        set()
        >>> acc.watermarks["ev/0", "m"] = 121.0
        >>> acc.crossed(), acc.crossed(lateness=5)  # past 120, but not past 120 + 5
        ({('ev/0', 'm')}, set())
        >>> acc.crossed(not_before=600.0)  # old data (a replay): no hurry
        set()
        """
        step = self.step_seconds
        due = set()
        for key, mark in self.watermarks.items():
            if mark < not_before:
                continue
            sent = self._sent_marks.get(key)
            if sent is None or (mark - lateness) // step > (sent - lateness) // step:
                due.add(key)
        return due

    def flush(self, only: Collection[tuple[str, str]] | None = None) -> list[Partial]:
        """The partial of every chunk that received events since the last flush.

        Each covers ``[chunk start, min(position, chunk end))``: the event count of every
        step there (cumulative), and the histograms of the steps that received events since
        the last flush (those of the other steps did not change). Complete chunks are
        forgotten afterwards. ``only``: just the chunks of these (source partition, model)
        pairs (see :meth:`crossed`); the others wait for the next flush.
        """
        partials = []
        for key, builder in list(self._builders.items()):
            model, version, ref_id, source, chunk = key
            if only is not None and (source, model) not in only:
                continue
            chunk_end = chunk + self.chunk_records
            end = min(self.positions.get(source, chunk_end), chunk_end)
            if builder.dirty:
                partials.append(self._partial(model, version, ref_id, source, chunk, end, builder))
                builder.dirty = False
                builder.changed.clear()
            if end >= chunk_end:
                del self._builders[key]
        marks = self.watermarks
        self._sent_marks.update(
            marks if only is None else {k: marks[k] for k in only if k in marks}
        )
        return partials

    def _partial(
        self,
        model: str,
        version: str,
        ref_id: str,
        source: str,
        chunk: int,
        end: int,
        builder: _Builder,
    ) -> Partial:
        partial = Partial(
            model=model,
            model_version=version,
            reference_id=ref_id,
            source=source,
            watermark=self.watermarks.get((source, model), -math.inf),
            events={k: int(v) for k, v in builder.events.items()},
            offset_end=end,
            offset_start=chunk,
            source_partitions=self.topic_partitions.get(source.rsplit("/", 1)[0], 0),
        )
        for step_start, hists in builder.steps.items():
            if step_start in builder.changed:
                for name, hist in hists.items():
                    partial.add_step(step_start, name, hist)
        if builder.sample:
            partial.sample = {
                step: block_rows(block)
                for step, block in builder.sample.items()
                if step in builder.changed
            }
        return partial

    def commit_offset(self, topic: str, partition: int) -> int | None:
        """The offset to commit for a partition once the last flush was acknowledged.

        The start of the chunk holding the position, so that a restart replays whole chunks
        only; ``None`` when nothing was read from it.
        """
        position = self.positions.get(f"{topic}/{partition}")
        if position is None:
            return None
        return position - position % self.chunk_records

    def forget(self, topic: str, partition: int) -> None:
        """Drop a partition's state (revoked: its next owner replays from the commit)."""
        source = f"{topic}/{partition}"
        self.positions.pop(source, None)
        for key in [k for k in self._builders if k[3] == source]:
            del self._builders[key]

    @property
    def pending_events(self) -> int:
        return sum(sum(b.events.values()) for b in self._builders.values() if b.dirty)
