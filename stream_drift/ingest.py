"""Stage 1 without Kafka: decode, validate, bin and accumulate a batch of raw records.

The Faust layer feeds :meth:`IngestAccumulator.add_records` with each batch it consumes,
sends what :meth:`IngestAccumulator.flush` returns to ``drift.partials``, dead-letters the
rejections, and commits the batch's offsets only after both were delivered.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from stream_drift.events import (
    Event,
    EventDecoder,
    RawRecord,
    Rejection,
    RejectReason,
    group_values,
    is_prediction_series,
)
from stream_drift.partials import Partial
from stream_drift.reference import ReferenceProfile
from stream_drift.registry import ReferenceRegistry, WarmupCollector
from stream_drift.stats.histogram import Histogram


@dataclass
class BatchOutcome:
    """What one batch did: events accepted per model, rejections, references learned."""

    accepted: Counter[str] = field(default_factory=Counter)
    rejections: list[Rejection] = field(default_factory=list)
    learned: list[ReferenceProfile] = field(default_factory=list)
    warming_up: int = 0


class _Builder:
    """Histograms of one (model, version, reference, source) since the last flush."""

    __slots__ = ("events", "reference", "steps")

    def __init__(self, reference: ReferenceProfile) -> None:
        self.reference = reference
        self.steps: dict[float, dict[str, Histogram]] = {}
        self.events: Counter[float] = Counter()


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

    Examples
    --------
    >>> import numpy as np
    >>> from stream_drift.reference import build_reference
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
    """

    def __init__(
        self,
        registry: ReferenceRegistry,
        *,
        step_seconds: float,
        decoder: EventDecoder | None = None,
        warmup: WarmupCollector | None = None,
    ) -> None:
        if not step_seconds > 0:
            raise ValueError("step_seconds must be > 0")
        self.registry = registry
        self.step_seconds = float(step_seconds)
        self.decoder = decoder or EventDecoder()
        self.warmup = warmup
        self._builders: dict[tuple[str, str, str, str], _Builder] = {}
        self.watermarks: dict[tuple[str, str], float] = {}
        """Largest event time seen per (source partition, model): a model's clock is its own,
        so one model lagging another on the same partition does not make its events late."""
        self.offsets: dict[str, int] = {}
        self._source_names: dict[tuple[str, int], str] = {}
        self.topic_partitions: dict[str, int] = {}
        """Partitions of each source topic (set by the consumer), sent with every partial so
        stage 2 waits for the partitions it has not heard from yet."""

    def add_records(self, records: Iterable[RawRecord]) -> BatchOutcome:
        """Decode, validate, bin and count one batch; never raises on bad input."""
        outcome = BatchOutcome()
        by_source: dict[str, dict[tuple[str, str], list[Event]]] = {}
        waiting: dict[tuple[str, str], list[tuple[RawRecord, Event]]] = {}
        for record in records:
            decoded = self.decoder.decode(record)
            if isinstance(decoded, Rejection):
                outcome.rejections.append(decoded)
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
                waiting.setdefault(key, []).append((record, decoded))
                continue
            self._admit(record, decoded, by_source)
        for key, items in waiting.items():
            assert self.warmup is not None
            if self.registry.lookup(*key) is None:
                # Only what completes the warm-up is learned; the rest of the batch is judged
                # against the new reference (nothing dropped silently).
                used = min(len(items), self.warmup.n_events - self.warmup.pending().get(key, 0))
                outcome.warming_up += used
                profile = self.warmup.add([ev for _, ev in items[:used]])
                if profile is not None and self.registry.add(profile):
                    outcome.learned.append(profile)
                items = items[used:]
            if items and self.registry.lookup(*key) is not None:
                for record, event in items:
                    self._admit(record, event, by_source)
        for source, groups in by_source.items():
            for (model, version), events in groups.items():
                self._accumulate(source, model, version, events)
                outcome.accepted[model] += len(events)
        return outcome

    def _admit(
        self,
        record: RawRecord,
        event: Event,
        by_source: dict[str, dict[tuple[str, str], list[Event]]],
    ) -> None:
        tp = (record.topic, record.partition)
        source = self._source_names.get(tp)
        if source is None:  # one string per partition, not one per record
            source = self._source_names[tp] = f"{record.topic}/{record.partition}"
        self.offsets[source] = max(self.offsets.get(source, -1), record.offset + 1)
        by_source.setdefault(source, {}).setdefault((event.model, event.model_version), []).append(
            event
        )
        key = (source, event.model)
        if event.ts > self.watermarks.get(key, -math.inf):
            self.watermarks[key] = event.ts

    def _accumulate(self, source: str, model: str, version: str, events: list[Event]) -> None:
        reference = self.registry.lookup(model, version)
        assert reference is not None
        key = (model, version, reference.id, source)
        builder = self._builders.get(key)
        if builder is None:
            builder = self._builders[key] = _Builder(reference)
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
                hist.add(values)
        step = self.step_seconds
        for ev in events:
            builder.events[math.floor(ev.ts / step) * step] += 1

    def flush(self) -> list[Partial]:
        """Every partial accumulated since the last flush (then forgotten)."""
        partials = []
        for (model, version, ref_id, source), builder in self._builders.items():
            partial = Partial(
                model=model,
                model_version=version,
                reference_id=ref_id,
                source=source,
                watermark=self.watermarks.get((source, model), -math.inf),
                events={k: int(v) for k, v in builder.events.items()},
                offset_end=self.offsets.get(source, -1),
                source_partitions=self.topic_partitions.get(source.rsplit("/", 1)[0], 0),
            )
            for step_start, hists in builder.steps.items():
                for name, hist in hists.items():
                    partial.add_step(step_start, name, hist)
            partials.append(partial)
        self._builders.clear()
        return partials

    @property
    def pending_events(self) -> int:
        return sum(sum(b.events.values()) for b in self._builders.values())
