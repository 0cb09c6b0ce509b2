"""The window state of one model version in stage 2, and its saved form.

A :class:`VersionWindow` holds, for one model version against one reference, the open steps
(histograms merged from partials), the sliding window of closed steps, the watermark of every
source partition, and what was applied from each source's current chunk of offsets.

Time. A step closes when the watermark passes its end. The watermark is the minimum, over
the source partitions that sent something within ``idle_timeout``, of the largest event
time each has seen, minus ``allowed_lateness`` (Flink's rule). When every source is idle,
event time advances with processing time from the last watermark (the fallback that closes
the windows of a model whose traffic stopped). Counts of a step that already closed are
*late*: counted, not merged.

Row sample. With multivariate checks on, partials carry sampled rows (bin codes, see
:mod:`stream_drift.pipeline.domain`); the window keeps, per open step and source partition,
the ``sample_per_step`` rows of smallest priority (merged by offset, so a resent or replayed
chunk adds nothing), and per closed step of the window their union: at most
``sample_per_step`` × source partitions rows per step. :meth:`VersionWindow.current_sample`
is the window's rows. A step's rows close, slide out, arrive late or in the future with it.

Persistence. The state is saved in a changelog-backed table and read back on recovery, by
this version or a later one, so it is a typed record (:class:`VersionWindowState`) whose
fields added over time have defaults: a row saved by an earlier version reads unchanged.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from stream_drift.config.policies import WindowPolicy
from stream_drift.config.quality import MultivariatePolicy
from stream_drift.pipeline.counts import (
    StepCounts,
    WindowCounts,
    step_counts,
    step_histograms,
)
from stream_drift.pipeline.domain import SampleRow, bottom_k, sample_priority, sample_series
from stream_drift.pipeline.partials import Partial
from stream_drift.pipeline.reference import ReferenceProfile
from stream_drift.stats.binning import Binning
from stream_drift.stats.histogram import Histogram
from stream_drift.stats.window import SlidingWindow

__all__ = ["AppliedRange", "AppliedRangeState", "VersionWindow", "VersionWindowState"]

DEFAULT_SAMPLE_PER_STEP: int = MultivariatePolicy.model_fields["sample_per_step"].default
"""Rows kept per (open step, source partition) unless told: the setting's default."""


class AppliedRangeState(msgspec.Struct):
    """Saved form of an :class:`AppliedRange`."""

    start: int
    end: int
    events: dict[float, int]
    steps: StepCounts


class VersionWindowState(msgspec.Struct, kw_only=True):
    """Saved form of a :class:`VersionWindow` (a part of the evaluator table's row).

    The fields are those of the window, in the order they were always written. Those with a
    default were added after the first release: a row saved before has none of them and
    gets the default (nothing known yet: no expected sources, nothing applied, no counts).

    Examples
    --------
    A row saved by the first release (no applied ranges, counters or event time yet):

    >>> old = {"reference_id": "sha256:ab", "pending": {"120.0": {}}, "pending_events":
    ...        {"120.0": 4}, "windows": {}, "step_starts": [60], "step_events": [3],
    ...        "last_closed_end": 120.0, "sources": {"ev/0": [130.5, 1.0]}, "late_events": 0}
    >>> state = msgspec.convert(old, VersionWindowState, str_keys=True)
    >>> state.pending_events, state.step_starts, state.sources, state.max_event_time
    ({120.0: 4}, [60.0], {'ev/0': (130.5, 1.0)}, None)
    """

    reference_id: str
    pending: StepCounts
    pending_events: dict[float, int]
    windows: dict[str, WindowCounts]
    step_starts: list[float]
    step_events: list[int]
    last_closed_end: float | None
    sources: dict[str, tuple[float, float]]
    """Source partition -> (watermark, processing time it was last heard from)."""
    expected_sources: list[str] = []
    first_seen: float | None = None
    applied: dict[str, AppliedRangeState] = {}
    applied_offsets: dict[str, int] = {}
    duplicate_events: int = 0
    inconsistent_events: int = 0
    future_events: int = 0
    late_events: int
    max_event_time: float | None = None
    """Largest watermark seen; ``None`` before any (``-inf`` in the window)."""
    count_first: float | None = None
    sample_pending: dict[float, dict[str, list[list[int]]]] | msgspec.UnsetType = msgspec.UNSET
    """Open step -> source partition -> sampled rows ``[offset, code, ...]``. Unset (not
    written) without a sample, so such a row is saved as the previous release saved it."""
    sample_steps: list[list[list[int]]] | msgspec.UnsetType = msgspec.UNSET
    """The window's closed steps' sampled rows (codes), oldest first; unset without any."""


@dataclass
class AppliedRange:
    """What stage 2 applied from one source partition's current chunk of offsets.

    Stage 1 sends a chunk's partial cumulatively (every event of ``[start, end)``), so the
    next partial of the same chunk — resent while the chunk fills, or replayed after a crash
    — contains this content plus what is new; only the difference is applied. Histograms are
    kept for the steps that are still open only (a closed step's new events are late, so
    only their number matters).
    """

    start: int
    end: int
    events: dict[float, int] = field(default_factory=dict)
    steps: dict[float, dict[str, Histogram]] = field(default_factory=dict)

    def state(self) -> AppliedRangeState:
        return AppliedRangeState(self.start, self.end, dict(self.events), step_counts(self.steps))

    @classmethod
    def from_state(cls, state: AppliedRangeState, bins: Mapping[str, Binning]) -> AppliedRange:
        return cls(state.start, state.end, dict(state.events), step_histograms(state.steps, bins))


class VersionWindow:
    """Window state of one model version against one reference."""

    def __init__(
        self,
        reference: ReferenceProfile,
        policy: WindowPolicy,
        *,
        sample_per_step: int = DEFAULT_SAMPLE_PER_STEP,
    ) -> None:
        self.reference = reference
        self.policy = policy
        self.sample_per_step = sample_per_step
        """Rows kept per (open step, source partition): stage 1's ``sample_per_step``."""
        self._sample_width = len(sample_series(reference))
        self.sample_pending: dict[float, dict[str, list[SampleRow]]] = {}
        self.sample_steps: deque[list[tuple[int, ...]]] = deque(maxlen=policy.size_steps)
        self._bins = {name: s.histogram.binning for name, s in reference.series.items()}
        self.pending: dict[float, dict[str, Histogram]] = {}
        self.pending_events: dict[float, int] = {}
        self.windows = {
            name: SlidingWindow(binning, policy.size_steps) for name, binning in self._bins.items()
        }
        self.step_starts: deque[float] = deque(maxlen=policy.size_steps)
        self.step_events: deque[int] = deque(maxlen=policy.size_steps)
        self.last_closed_end: float | None = None
        self.sources: dict[str, tuple[float, float]] = {}
        self.expected_sources: set[str] = set()
        self.first_seen: float | None = None
        self.applied: dict[str, AppliedRange] = {}
        self.applied_offsets: dict[str, int] = {}
        """Legacy de-duplication of partials without an offset range (older stage 1)."""
        self.duplicate_events = 0
        self.inconsistent_events = 0
        """Events a replay did not explain (a chunk size changed between runs, or a replayed
        chunk held fewer events than applied): applied as they came, or dropped if negative."""
        self.future_events = 0
        """Events of steps beyond processing time + ``max_future_seconds``: not merged."""
        self.late_events = 0
        self.max_event_time = -math.inf
        self.count_first: float | None = None

    # -- merging ---------------------------------------------------------------------------
    def merge(self, partial: Partial, now: float) -> tuple[int, int]:
        """Merge a partial; return (events merged, events late).

        Whatever of the partial's offset range was applied already (a chunk resent while it
        fills, a replay after a crash or a rebalance) is subtracted first and counted in
        ``duplicate_events``: each event of the source is counted once.
        """
        self.repair(now)
        content = self._new_content(partial)
        if content is None:
            return 0, 0
        steps, events = content
        horizon = now + self.policy.max_future_seconds
        if self.policy.kind == "time":
            for step in [s for s in events if s > horizon]:
                self.future_events += events.pop(step)
                steps.pop(step, None)
        # A clock a little ahead of ours is bounded, not ignored (that would hold the others).
        watermark = min(partial.watermark, horizon)
        previous = self.sources.get(partial.source, (-math.inf, now))[0]
        self.sources[partial.source] = (max(previous, watermark), now)
        if self.first_seen is None:
            self.first_seen = now
        if partial.source_partitions > 0:
            topic = partial.source.rsplit("/", 1)[0]
            self.expected_sources.update(f"{topic}/{i}" for i in range(partial.source_partitions))
        self.max_event_time = max(self.max_event_time, watermark)
        self._merge_sample(partial, horizon)
        merged = late = 0
        for step, series in steps.items():
            n = events.get(step, 0)
            key = 0.0 if self.policy.kind == "count" else step
            if self.policy.kind == "time" and self._is_closed(step):
                late += n
                continue
            merged += n
            hists = self.pending.setdefault(key, {})
            for name, h in series.items():
                if name in hists:
                    hists[name].merge_in(h)
                else:
                    hists[name] = h.copy()
            self.pending_events[key] = self.pending_events.get(key, 0) + n
            if self.policy.kind == "count":
                self.count_first = step if self.count_first is None else min(self.count_first, step)
        for step, n in events.items():
            if step not in steps:  # events whose series were all unknown
                if self.policy.kind == "time" and self._is_closed(step):
                    late += n
                else:
                    merged += n
                    key = 0.0 if self.policy.kind == "count" else step
                    self.pending_events[key] = self.pending_events.get(key, 0) + n
        self.late_events += late
        return merged, late

    def _merge_sample(self, partial: Partial, horizon: float) -> None:
        """Keep the bottom-k of each open step's rows per source (late and future rows go)."""
        sample = partial.sample
        if not isinstance(sample, dict) or self.sample_per_step <= 0:
            return
        width = self._sample_width + 1
        for step, rows in sample.items():
            if self.policy.kind == "time" and (step > horizon or self._is_closed(step)):
                continue
            key = 0.0 if self.policy.kind == "count" else step
            new = _sample_rows(partial.source, [r for r in rows if len(r) == width])
            if new:
                by_source = self.sample_pending.setdefault(key, {})
                kept = by_source.get(partial.source, [])
                by_source[partial.source] = bottom_k([*kept, *new], self.sample_per_step)

    def current_sample(self) -> npt.NDArray[np.int64]:
        """The sampled rows of the window just closed (rows × :func:`~stream_drift.pipeline.
        domain.sample_series` codes, ``-1`` missing), oldest step first."""
        rows = [row for step in self.sample_steps for row in step]
        return np.asarray(rows, dtype=np.int64).reshape(len(rows), self._sample_width)

    # -- de-duplication ----------------------------------------------------------------------
    def _new_content(
        self, partial: Partial
    ) -> tuple[dict[float, dict[str, Histogram]], dict[float, int]] | None:
        """The part of ``partial`` not applied yet, as (histograms, events) per step."""
        source, start, end = partial.source, partial.offset_start, partial.offset_end
        if start < 0:  # an older stage 1: whole partials, skipped when wholly applied
            applied = self.applied_offsets.get(source, -1)
            if 0 <= end <= applied:
                self.duplicate_events += partial.n_events
                return None
            self.applied_offsets[source] = max(applied, end)
            return step_histograms(partial.steps, self._bins), dict(partial.events)
        done = self.applied.get(source)
        if done is not None and end <= done.end and start >= done.start:
            self.duplicate_events += partial.n_events  # wholly applied already
            return None
        if done is not None and end <= done.start:
            self.duplicate_events += partial.n_events  # an older chunk, applied before
            return None
        steps, events = step_histograms(partial.steps, self._bins), dict(partial.events)
        if done is not None and start == done.start:
            new_steps, new_events = self._subtract(steps, events, done)
        else:
            if done is not None and start < done.end:
                # Overlaps what was applied but does not start where it started (the chunk
                # size changed between runs): the overlap cannot be told apart.
                self.inconsistent_events += partial.n_events
            new_steps, new_events = steps, events
        self.duplicate_events += partial.n_events - sum(new_events.values())
        same_chunk = done is not None and start == done.start
        self.applied[source] = self._remember(
            start, end, steps, events, done if same_chunk else None
        )
        return new_steps, new_events

    def _subtract(
        self,
        steps: dict[float, dict[str, Histogram]],
        events: dict[float, int],
        done: AppliedRange,
    ) -> tuple[dict[float, dict[str, Histogram]], dict[float, int]]:
        new_events: dict[float, int] = {}
        for step, n in events.items():
            extra = n - done.events.get(step, 0)
            if extra < 0:
                self.inconsistent_events += -extra
                extra = 0
            if extra:
                new_events[step] = extra
        new_steps: dict[float, dict[str, Histogram]] = {}
        for step, series in steps.items():
            if step not in new_events:
                continue
            before = done.steps.get(step, {})
            out = new_steps[step] = {}
            for name, h in series.items():
                old = before.get(name)
                if old is None:
                    out[name] = h
                    continue
                try:
                    out[name] = h.copy().subtract(old)
                except ValueError:  # fewer counts than applied: not the same records
                    self.inconsistent_events += new_events[step]
                    out[name] = h
        return new_steps, new_events

    def _remember(
        self,
        start: int,
        end: int,
        steps: dict[float, dict[str, Histogram]],
        events: dict[float, int],
        previous: AppliedRange | None,
    ) -> AppliedRange:
        # A partial carries the histograms of its changed steps only: the others are as before.
        known = dict(previous.steps) if previous is not None else {}
        known.update(steps)
        open_steps = {
            step: hists
            for step, hists in known.items()
            if self.policy.kind == "count" or not self._is_closed(step)
        }
        return AppliedRange(start, end, dict(events), open_steps)

    def repair(self, now: float) -> None:
        """Undo event time that ran ahead of ``now + max_future_seconds``.

        A state written while such events were accepted (older versions) has a source
        watermark in the future, and may have closed every step up to it, so that every later
        event is late. The future watermarks are forgotten (the next partial of that source
        sets a true one), and a window closed into the future starts afresh from the next
        data; the future steps' events are dropped and counted in ``future_events``.
        """
        if self.policy.kind != "time":
            return
        horizon = now + self.policy.max_future_seconds
        if not math.isfinite(horizon):
            return
        for source, (mark, _) in list(self.sources.items()):
            if mark > horizon:
                del self.sources[source]
        if self.max_event_time > horizon:
            marks = [m for m, _ in self.sources.values()]
            self.max_event_time = max(marks, default=-math.inf)
        for step in [s for s in self.pending if s > horizon]:
            del self.pending[step]
        for step in [s for s in self.pending_events if s > horizon]:
            self.future_events += self.pending_events.pop(step)
        for step in [s for s in self.sample_pending if s > horizon]:
            del self.sample_pending[step]
        step = self.policy.step_seconds
        if self.last_closed_end is not None and self.last_closed_end > horizon + step:
            self.last_closed_end = None
            self._clear_windows()

    def resume(self, now: float) -> None:
        """Count every source as heard from at ``now``: stage 2 starts listening again.

        Called when a worker takes the window over (a restart, a rebalance). While no
        stage 2 was running, the sources went on sending: their partials wait in the topic,
        behind the ticks the last owner sent. Idle by the clock, they would let the first
        partial or tick read close steps their waiting partials still add to, and those
        events would count as late. Each source gets the idle timeout from now to be heard;
        windows of sources truly silent close that much later.

        Examples
        --------
        >>> from stream_drift.config import WindowPolicy
        >>> from stream_drift.pipeline.reference import build_reference
        >>> ref = build_reference({"x": [1.0, 2.0, 3.0]}, model="m")
        >>> policy = WindowPolicy(size_seconds=60, step_seconds=60, idle_timeout_seconds=30)
        >>> w = VersionWindow(ref, policy)
        >>> w.sources = {"ev/0": (100.0, 1_000.0), "ev/1": (130.0, 1_000.0)}
        >>> w.max_event_time = 130.0
        >>> w.watermark(now=1_100.0) >= 130.0  # both silent for 100 s: event time runs on
        True
        >>> w.resume(now=1_100.0)
        >>> w.watermark(now=1_100.0) + policy.allowed_lateness_seconds  # the slower one's
        100.0
        """
        self.sources = {src: (mark, max(seen, now)) for src, (mark, seen) in self.sources.items()}

    def _is_closed(self, step: float) -> bool:
        return self.last_closed_end is not None and step + self.policy.step_seconds <= (
            self.last_closed_end
        )

    # -- time ------------------------------------------------------------------------------
    def watermark(self, now: float) -> float | None:
        """Event time up to which steps may close, or ``None`` before any data."""
        if not self.sources:
            return None
        p = self.policy
        active = [wm for wm, seen in self.sources.values() if now - seen <= p.idle_timeout_seconds]
        # A partition not heard from yet holds the windows back, like a live but slow one, until
        # it has stayed silent for the idle timeout since this model's first partial.
        if (
            self.first_seen is not None
            and now - self.first_seen <= p.idle_timeout_seconds
            and not self.expected_sources <= self.sources.keys()
        ):
            active.append(-math.inf)
        if active:
            return min(active) - p.allowed_lateness_seconds
        last_seen = max(seen for _, seen in self.sources.values())
        # Every source idle: let event time run on with processing time.
        return self.max_event_time + (now - last_seen) - p.allowed_lateness_seconds

    def advance(self, now: float) -> Iterator[tuple[float, float, int]]:
        """Close every step the watermark has passed, one at a time.

        Yields ``(start, end, n)`` of the window right after each close and before the next
        one, so that :meth:`currents` is *that* window while the caller handles it: evaluate
        each window before asking for the next. (Closing them all first would evaluate every
        window with the content of the last one.)
        """
        if self.policy.kind == "count":
            yield from self._advance_count()
            return
        self.repair(now)
        wm = self.watermark(now)
        if wm is None:
            return
        step = self.policy.step_seconds
        while (start := self._next_start()) is not None and start + step <= wm:
            self._close(start, start)
            self.last_closed_end = start + step
            yield self.step_starts[0], start + step, sum(self.step_events)

    def _next_start(self) -> float | None:
        """The next step to close; skips silence once the window has emptied."""
        if self.last_closed_end is None:
            return min(self.pending) if self.pending else None
        start = self.last_closed_end
        # Sliding on through silence until the window is empty (one evaluation of the empty
        # window shows the traffic stopped: window_samples 0), then stopping.
        if start in self.pending or sum(self.step_events) > 0:
            return start
        # The window holds nothing: evaluating empty steps would say nothing, so jump to the
        # next step with data (or wait for one).
        if not self.pending:
            return None
        self._clear_windows()
        return min(self.pending)

    def _advance_count(self) -> list[tuple[float, float, int]]:
        if self.pending_events.get(0.0, 0) < self.policy.count_step:
            return []
        first = self.count_first if self.count_first is not None else self.max_event_time
        self._close(0.0, first)
        self.count_first = None
        return [(self.step_starts[0], self.max_event_time, sum(self.step_events))]

    def _close(self, key: float, label: float) -> None:
        hists = self.pending.pop(key, {})
        n = self.pending_events.pop(key, 0)
        for name, window in self.windows.items():
            window.push(hists.get(name) or Histogram(window.binning))
        self.step_starts.append(label)
        self.step_events.append(n)
        rows = self.sample_pending.pop(key, {})
        self.sample_steps.append([codes for src in sorted(rows) for _, _, codes in rows[src]])

    def _clear_windows(self) -> None:
        for window in self.windows.values():
            window.reset()
        self.step_starts.clear()
        self.step_events.clear()
        self.sample_steps.clear()

    def currents(self) -> dict[str, Histogram]:
        return {name: w.total for name, w in self.windows.items()}

    # -- persistence -------------------------------------------------------------------------
    def state(self) -> VersionWindowState:
        """The window's state as a typed record (see :class:`VersionWindowState`)."""
        return VersionWindowState(
            reference_id=self.reference.id,
            pending=step_counts(self.pending),
            pending_events=dict(self.pending_events),
            windows={name: WindowCounts.of(w) for name, w in self.windows.items()},
            step_starts=list(self.step_starts),
            step_events=list(self.step_events),
            last_closed_end=self.last_closed_end,
            sources=dict(self.sources),
            expected_sources=sorted(self.expected_sources),
            first_seen=self.first_seen,
            applied={k: r.state() for k, r in self.applied.items()},
            applied_offsets=dict(self.applied_offsets),
            duplicate_events=self.duplicate_events,
            inconsistent_events=self.inconsistent_events,
            future_events=self.future_events,
            late_events=self.late_events,
            max_event_time=self.max_event_time if math.isfinite(self.max_event_time) else None,
            count_first=self.count_first,
            sample_pending={
                step: {src: [[o, *codes] for _, o, codes in rows] for src, rows in by.items()}
                for step, by in self.sample_pending.items()
            }
            if self.sample_pending
            else msgspec.UNSET,
            sample_steps=[[list(codes) for codes in step] for step in self.sample_steps]
            if any(self.sample_steps)
            else msgspec.UNSET,
        )

    @classmethod
    def from_state(
        cls,
        state: VersionWindowState,
        reference: ReferenceProfile,
        policy: WindowPolicy,
        *,
        sample_per_step: int = DEFAULT_SAMPLE_PER_STEP,
    ) -> VersionWindow:
        """The window a :meth:`state` describes, over ``reference`` and under ``policy``.

        Series the reference no longer has are dropped, and the windows of a state saved
        under another window size start empty (their sampled rows too).
        """
        w = cls(reference, policy, sample_per_step=sample_per_step)
        bins = w._bins
        w.pending = step_histograms(state.pending, bins)
        w.pending_events = dict(state.pending_events)
        for name, saved in state.windows.items():
            if name in bins and saved.size == policy.size_steps:
                w.windows[name] = saved.to_window(bins[name])
        w.step_starts.extend(state.step_starts)
        w.step_events.extend(state.step_events)
        w.last_closed_end = state.last_closed_end
        w.sources = dict(state.sources)
        w.expected_sources = set(state.expected_sources)
        w.first_seen = state.first_seen
        w.late_events = state.late_events
        w.applied = {k: AppliedRange.from_state(r, bins) for k, r in state.applied.items()}
        w.applied_offsets = dict(state.applied_offsets)
        w.duplicate_events = state.duplicate_events
        w.inconsistent_events = state.inconsistent_events
        w.future_events = state.future_events
        w.max_event_time = -math.inf if state.max_event_time is None else state.max_event_time
        w.count_first = state.count_first
        width = w._sample_width
        pending = state.sample_pending if isinstance(state.sample_pending, dict) else {}
        for step, by_source in pending.items():
            for src, rows in by_source.items():
                kept = _sample_rows(src, [r for r in rows if len(r) == width + 1])
                if kept:
                    w.sample_pending.setdefault(step, {})[src] = bottom_k(kept, sample_per_step)
        if isinstance(state.sample_steps, list) and all(
            saved.size == policy.size_steps for saved in state.windows.values()
        ):
            w.sample_steps.extend(
                [tuple(r) for r in step if len(r) == width] for step in state.sample_steps
            )
        return w

    def to_dict(self) -> dict[str, Any]:
        """:meth:`state` as JSON-ready builtins (the form kept in the evaluator table)."""
        saved: dict[str, Any] = msgspec.to_builtins(self.state(), str_keys=True)
        return saved

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        reference: ReferenceProfile,
        policy: WindowPolicy,
        *,
        sample_per_step: int = DEFAULT_SAMPLE_PER_STEP,
    ) -> VersionWindow:
        """Inverse of :meth:`to_dict`; reads every shape earlier versions saved."""
        state = msgspec.convert(data, VersionWindowState, str_keys=True)
        return cls.from_state(state, reference, policy, sample_per_step=sample_per_step)


def _sample_rows(source: str, rows: list[list[int]]) -> list[SampleRow]:
    """Rows ``[offset, code, ...]`` of a source partition with their priorities."""
    if not rows:
        return []
    partition = int(source.rsplit("/", 1)[1]) if source.rsplit("/", 1)[-1].isdigit() else 0
    offsets = [r[0] for r in rows]
    priorities = sample_priority(np.full(len(rows), partition), offsets).tolist()
    return [(p, r[0], tuple(r[1:])) for p, r in zip(priorities, rows, strict=True)]
