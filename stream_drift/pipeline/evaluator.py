"""Stage 2 without Kafka: merge partials, slide event-time windows, evaluate, decide.

One :class:`ModelEvaluator` holds everything a worker keeps for one model (the state of a
Faust table row): per model version a :class:`VersionWindow` (open steps, the sliding window
of closed steps, the watermark of every source partition) and the alert tracker. It is fed
the messages of ``drift.partials`` in order and returns what to emit.

Time. A step closes when the watermark passes its end. The watermark is the minimum, over
the source partitions that sent something within ``idle_timeout``, of the largest event
time each has seen, minus ``allowed_lateness`` (Flink's rule). When every source is idle,
event time advances with processing time from the last watermark (the fallback that closes
the windows of a model whose traffic stopped). Counts of a step that already closed are
*late*: counted, not merged.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from stream_drift.pipeline.alerts import AlertPolicy, AlertTracker, format_timestamp
from stream_drift.pipeline.partials import Partial, Tick
from stream_drift.pipeline.reference import ReferenceProfile
from stream_drift.pipeline.registry import ReferenceRegistry
from stream_drift.stats.base import Statistic
from stream_drift.stats.evaluate import FeatureEvaluation, evaluate_window
from stream_drift.stats.histogram import Histogram
from stream_drift.stats.window import SlidingWindow


@dataclass(frozen=True)
class WindowPolicy:
    """How windows are cut and judged.

    Parameters
    ----------
    kind
        ``time`` (event time, size and step in seconds) or ``count`` (the last
        ``count_size`` events, sliding every ``count_step`` events).
    max_future_seconds
        Event time is never trusted beyond processing time plus this: a partial's watermark
        or steps beyond it (an older stage 1 let such events through) are ignored and
        counted, and a state whose event time already moved there is repaired.
    """

    kind: str = "time"
    size_seconds: float = 300.0
    step_seconds: float = 60.0
    allowed_lateness_seconds: float = 10.0
    idle_timeout_seconds: float = 30.0
    count_size: int = 1000
    count_step: int = 250
    max_future_seconds: float = math.inf

    @property
    def size_steps(self) -> int:
        if self.kind == "count":
            return max(1, self.count_size // self.count_step)
        return max(1, round(self.size_seconds / self.step_seconds))


@dataclass(frozen=True)
class DecisionPolicy:
    """Which statistics run, which decide, and how alerts behave."""

    statistics: Sequence[Statistic]
    alert_on: tuple[str, ...] = ("psi",)
    correction: str = "bh"
    alerts: AlertPolicy = field(default_factory=AlertPolicy)


@dataclass
class WindowResult:
    """One evaluation of one model version's window (a ``drift.results`` message)."""

    model: str
    model_version: str
    reference_id: str
    window_start: float
    window_end: float
    evaluated_at: float
    n_events: int
    late_events: int
    evaluations: dict[str, FeatureEvaluation]
    evaluation_seconds: float = 0.0
    """Wall time of the evaluation and the alert decisions (not part of the message)."""

    @property
    def drifted(self) -> list[str]:
        return sorted(n for n, e in self.evaluations.items() if e.drift)

    def to_dict(self) -> dict[str, Any]:
        """The ``drift.results`` message: the audit record of one evaluation."""
        from stream_drift import __version__

        return {
            "model": self.model,
            "model_version": self.model_version,
            "reference_id": self.reference_id,
            # Audit trail: which build of the worker judged it.
            "worker_version": __version__,
            "window": {
                "start": format_timestamp(self.window_start),
                "end": format_timestamp(self.window_end),
            },
            "window_start_ts": self.window_start,
            "window_end_ts": self.window_end,
            "evaluated_at": format_timestamp(self.evaluated_at),
            "n_events": self.n_events,
            "late_events": self.late_events,
            "drifted": self.drifted,
            "features": {n: e.to_dict() for n, e in sorted(self.evaluations.items())},
        }


@dataclass
class Emitted:
    """What handling one message produced."""

    results: list[WindowResult] = field(default_factory=list)
    alerts: list[dict[str, object]] = field(default_factory=list)
    late_events: int = 0
    merged_events: int = 0
    unmatched_events: int = 0
    """Events of a partial whose reference this worker does not know (not merged)."""


def _hist_dict(hists: dict[str, Histogram]) -> dict[str, Any]:
    return {name: h.to_dict() for name, h in hists.items()}


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "events": {repr(k): v for k, v in self.events.items()},
            "steps": {repr(k): _hist_dict(v) for k, v in self.steps.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], bins: dict[str, Any]) -> AppliedRange:
        return cls(
            start=int(data["start"]),
            end=int(data["end"]),
            events={float(k): int(v) for k, v in data["events"].items()},
            steps={
                float(k): {n: Histogram.from_dict(h, bins[n]) for n, h in v.items() if n in bins}
                for k, v in data["steps"].items()
            },
        )


class VersionWindow:
    """Window state of one model version against one reference."""

    def __init__(self, reference: ReferenceProfile, policy: WindowPolicy) -> None:
        self.reference = reference
        self.policy = policy
        self.pending: dict[float, dict[str, Histogram]] = {}
        self.pending_events: dict[float, int] = {}
        self.windows = {
            name: SlidingWindow(s.histogram.binning, policy.size_steps)
            for name, s in reference.series.items()
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
        self.future_events = 0
        """Events of steps beyond processing time + ``max_future_seconds``: not merged."""
        """Events a replay did not explain (a chunk size changed between runs, or a replayed
        chunk held fewer events than applied): applied as they came, or dropped if negative."""
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

    # -- de-duplication ----------------------------------------------------------------------
    def _histograms(self, partial: Partial) -> dict[float, dict[str, Histogram]]:
        out: dict[float, dict[str, Histogram]] = {}
        for step, series in partial.steps.items():
            hists = out.setdefault(step, {})
            for name, data in series.items():
                profile = self.reference.series.get(name)
                if profile is not None:
                    hists[name] = Histogram.from_dict(data, profile.histogram.binning)
        return out

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
            return self._histograms(partial), dict(partial.events)
        done = self.applied.get(source)
        if done is not None and end <= done.end and start >= done.start:
            self.duplicate_events += partial.n_events  # wholly applied already
            return None
        if done is not None and end <= done.start:
            self.duplicate_events += partial.n_events  # an older chunk, applied before
            return None
        steps, events = self._histograms(partial), dict(partial.events)
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
        step = self.policy.step_seconds
        if self.last_closed_end is not None and self.last_closed_end > horizon + step:
            self.last_closed_end = None
            self._clear_windows()

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

    def _clear_windows(self) -> None:
        for window in self.windows.values():
            window.reset()
        self.step_starts.clear()
        self.step_events.clear()

    def currents(self) -> dict[str, Histogram]:
        return {name: w.total for name, w in self.windows.items()}

    # -- persistence -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "reference_id": self.reference.id,
            "pending": {repr(k): _hist_dict(v) for k, v in self.pending.items()},
            "pending_events": {repr(k): v for k, v in self.pending_events.items()},
            "windows": {name: w.to_dict() for name, w in self.windows.items()},
            "step_starts": list(self.step_starts),
            "step_events": list(self.step_events),
            "last_closed_end": self.last_closed_end,
            "sources": {k: list(v) for k, v in self.sources.items()},
            "expected_sources": sorted(self.expected_sources),
            "first_seen": self.first_seen,
            "applied": {k: r.to_dict() for k, r in self.applied.items()},
            "applied_offsets": dict(self.applied_offsets),
            "duplicate_events": self.duplicate_events,
            "inconsistent_events": self.inconsistent_events,
            "future_events": self.future_events,
            "late_events": self.late_events,
            "max_event_time": self.max_event_time if math.isfinite(self.max_event_time) else None,
            "count_first": self.count_first,
        }

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], reference: ReferenceProfile, policy: WindowPolicy
    ) -> VersionWindow:
        w = cls(reference, policy)
        bins = {n: s.histogram.binning for n, s in reference.series.items()}
        w.pending = {
            float(k): {n: Histogram.from_dict(h, bins[n]) for n, h in v.items() if n in bins}
            for k, v in data["pending"].items()
        }
        w.pending_events = {float(k): int(v) for k, v in data["pending_events"].items()}
        for name, wd in data["windows"].items():
            if name in bins and int(wd["size"]) == policy.size_steps:
                w.windows[name] = SlidingWindow.from_dict(wd, bins[name])
        w.step_starts.extend(float(x) for x in data["step_starts"])
        w.step_events.extend(int(x) for x in data["step_events"])
        w.last_closed_end = data["last_closed_end"]
        w.sources = {k: (float(v[0]), float(v[1])) for k, v in data["sources"].items()}
        w.expected_sources = set(data.get("expected_sources", ()))
        fs = data.get("first_seen")
        w.first_seen = None if fs is None else float(fs)
        w.late_events = int(data["late_events"])
        w.applied = {k: AppliedRange.from_dict(v, bins) for k, v in data.get("applied", {}).items()}
        w.applied_offsets = {k: int(v) for k, v in data.get("applied_offsets", {}).items()}
        w.duplicate_events = int(data.get("duplicate_events", 0))
        w.inconsistent_events = int(data.get("inconsistent_events", 0))
        w.future_events = int(data.get("future_events", 0))
        met = data.get("max_event_time")
        w.max_event_time = -math.inf if met is None else float(met)
        cf = data.get("count_first")
        w.count_first = None if cf is None else float(cf)
        return w


class ModelEvaluator:
    """Everything stage 2 keeps for one model, and the rules that move it on.

    Parameters
    ----------
    model
        The model name (the ``drift.partials`` key).
    registry
        References, looked up by the id each partial names.
    windows, decision
        Window and decision policies.
    """

    def __init__(
        self,
        model: str,
        registry: ReferenceRegistry,
        windows: WindowPolicy,
        decision: DecisionPolicy,
    ) -> None:
        self.model = model
        self.registry = registry
        self.window_policy = windows
        self.decision = decision
        self.versions: dict[str, VersionWindow] = {}
        self.tracker = AlertTracker(decision.alerts)

    def handle(self, message: Partial | Tick, now: float) -> Emitted:
        """Merge a partial (or take a tick), close what can close, evaluate, decide."""
        out = Emitted()
        if isinstance(message, Partial):
            window = self._window_for(message)
            if window is None:
                out.unmatched_events = message.n_events
                return out
            out.merged_events, out.late_events = window.merge(message, now)
        for version, window in self.versions.items():
            for start, end, n in window.advance(now):
                began = time.perf_counter()
                result = self._evaluate(version, window, start, end, n, now)
                out.alerts.extend(self._decide(result))
                result.evaluation_seconds = time.perf_counter() - began
                out.results.append(result)
        return out

    def watermark_lag(self, now: float) -> float | None:
        """Processing time minus the oldest watermark of the model's versions (time windows).

        ``None`` for count windows, before any data, and while a source partition not heard
        from yet holds the windows back (the watermark is then ``-inf``: no figure rather
        than an infinite one). Large while the model's event time lags behind the clock: a
        backlog being drained, a stalled source, or skewed clocks.
        """
        if self.window_policy.kind != "time":
            return None
        marks = [m for w in self.versions.values() if (m := w.watermark(now)) is not None]
        if not marks or not math.isfinite(lag := now - min(marks)):
            return None
        return lag

    def _window_for(self, partial: Partial) -> VersionWindow | None:
        window = self.versions.get(partial.model_version)
        if window is not None and window.reference.id == partial.reference_id:
            return window
        reference = self.registry.by_id(partial.reference_id)
        if reference is None:
            # Its bins are unknown here, so its counts cannot be merged anywhere.
            return None
        window = VersionWindow(reference, self.window_policy)
        self.versions[partial.model_version] = window
        return window

    def _evaluate(
        self, version: str, window: VersionWindow, start: float, end: float, n: int, now: float
    ) -> WindowResult:
        references = {name: s.histogram for name, s in window.reference.series.items()}
        evaluations = evaluate_window(
            references,
            window.currents(),
            self.decision.statistics,
            decisive=self.decision.alert_on,
            correction=self.decision.correction,
        )
        late, window.late_events = window.late_events, 0
        return WindowResult(
            model=self.model,
            model_version=version,
            reference_id=window.reference.id,
            window_start=start,
            window_end=end,
            evaluated_at=now,
            n_events=n,
            late_events=late,
            evaluations=evaluations,
        )

    def _decide(self, result: WindowResult) -> list[dict[str, object]]:
        alerts = []
        for feature, evaluation in sorted(result.evaluations.items()):
            for stat in self.decision.alert_on:
                r = evaluation.results.get(stat)
                if r is None:
                    continue
                alert = self.tracker.observe(
                    model=self.model,
                    model_version=result.model_version,
                    feature=feature,
                    result=r,
                    window_start=result.window_start,
                    window_end=result.window_end,
                    evaluated_at=result.evaluated_at,
                    reference_id=result.reference_id,
                    top_bins=evaluation.top_bins,
                )
                if alert is not None:
                    alerts.append(alert)
        return alerts

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "versions": {v: w.to_dict() for v, w in self.versions.items()},
            "alerts": self.tracker.to_dict(),
        }

    @classmethod
    def from_dict(
        cls,
        data: dict[str, Any],
        registry: ReferenceRegistry,
        windows: WindowPolicy,
        decision: DecisionPolicy,
    ) -> ModelEvaluator:
        ev = cls(str(data["model"]), registry, windows, decision)
        for version, wd in data.get("versions", {}).items():
            reference = registry.by_id(wd["reference_id"])
            if reference is not None:
                ev.versions[version] = VersionWindow.from_dict(wd, reference, windows)
        if "alerts" in data:
            ev.tracker = AlertTracker.from_dict(data["alerts"], decision.alerts)
        return ev
