"""Stage 2 without Kafka: merge partials, slide event-time windows, evaluate, decide.

One :class:`ModelEvaluator` holds everything a worker keeps for one model (the state of a
Faust table row): per model version a :class:`~stream_drift.pipeline.windows.VersionWindow`
(open steps, the sliding window of closed steps, the watermark of every source partition; its
module says when steps close) and the alert tracker. It is fed the messages of
``drift.partials`` in order and returns what to emit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from stream_drift.config.policies import AlertPolicy, DecisionPolicy, WindowPolicy
from stream_drift.pipeline.alert_record import Alert
from stream_drift.pipeline.alert_text import format_timestamp
from stream_drift.pipeline.alerts import AlertTracker
from stream_drift.pipeline.labels import LabelOutcomes
from stream_drift.pipeline.model_quality import QualityPolicies, QualityReport, VersionQuality
from stream_drift.pipeline.partials import Partial, Tick
from stream_drift.pipeline.registry import ReferenceRegistry
from stream_drift.pipeline.windows import VersionWindow
from stream_drift.stats.evaluate import FeatureEvaluation, evaluate_window
from stream_drift.stats.result import DriftResult

CONCEPT_FEATURE = "(predictions)"
"""The ``feature`` of concept-drift alerts and gauges: the model's labelled predictions."""
DOMAIN_FEATURE = "(all features)"
"""The ``feature`` of multivariate-drift alerts and gauges: the features jointly."""


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
    quality: QualityReport | None = None
    """Performance, concept and multivariate drift of the version, when there is any."""

    @property
    def drifted(self) -> list[str]:
        return sorted(n for n, e in self.evaluations.items() if e.drift)

    def model_checks(self) -> list[tuple[str, DriftResult]]:
        """The window's whole-model verdicts as ``(feature, result)``: concept drift on
        ``(predictions)``, multivariate drift on ``(all features)``."""
        q = self.quality
        checks: list[tuple[str, DriftResult]] = []
        if q is not None and q.concept is not None:
            checks.append((CONCEPT_FEATURE, q.concept))
        if q is not None and q.domain is not None:
            checks.append((DOMAIN_FEATURE, q.domain))
        return checks

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
            **(self.quality.to_dict() if self.quality is not None else {}),
        }


@dataclass
class Emitted:
    """What handling one message produced."""

    results: list[WindowResult] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    late_events: int = 0
    merged_events: int = 0
    unmatched_events: int = 0
    """Events of a partial whose reference this worker does not know (not merged)."""
    concept_detections: int = 0
    """Changes the concept-drift detector found in the pairs of a labels message."""
    unmatched_pairs: int = 0
    """Labelled pairs of a model version without a reference here (not judged)."""
    performance: dict[str, dict[str, float]] = field(default_factory=dict)
    """Version -> its performance gauges (:meth:`VersionQuality.gauges`), refreshed by a labels
    message (labels arrive after their window closed, so the gauges follow them rather than
    the windows)."""


class ModelEvaluator:
    """Everything stage 2 keeps for one model, and the rules that move it on.

    Parameters
    ----------
    model
        The model name (the ``drift.partials`` key).
    registry
        References, looked up by the id each partial names.
    windows, decision, alerts
        Window, decision and alert policies (the ``window``, ``decision`` and ``alerts``
        settings); ``alerts`` defaults to :class:`AlertPolicy`'s defaults.
    quality
        The ``labels``, ``concept`` and ``multivariate`` sections (defaults when ``None``).
    """

    def __init__(
        self,
        model: str,
        registry: ReferenceRegistry,
        windows: WindowPolicy,
        decision: DecisionPolicy,
        alerts: AlertPolicy | None = None,
        quality: QualityPolicies | None = None,
    ) -> None:
        self.model = model
        self.registry = registry
        self.window_policy = windows
        self.decision = decision
        self.versions: dict[str, VersionWindow] = {}
        self.tracker = AlertTracker(alerts)
        self.quality_policies = quality or QualityPolicies()
        self.quality: dict[str, VersionQuality] = {}

    def handle(self, message: Partial | Tick | LabelOutcomes, now: float) -> Emitted:
        """Merge a partial (or take a tick or labelled pairs), close what can close,
        evaluate, decide."""
        out = Emitted()
        if isinstance(message, LabelOutcomes):
            quality = self._quality_for(message.model_version)
            if quality is None:
                out.unmatched_pairs = len(message.pairs)
            else:
                out.concept_detections = quality.add(message)
                gauges = quality.gauges()
                if gauges:
                    out.performance[quality.version] = gauges
        elif isinstance(message, Partial):
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

    def resume(self, now: float) -> None:
        """A worker takes this model over at ``now``: see :meth:`VersionWindow.resume`."""
        for window in self.versions.values():
            window.resume(now)

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

    @property
    def _sample_per_step(self) -> int:
        """Sampled rows stage 2 keeps per (step, source): stage 1's, or none when off."""
        policy = self.quality_policies.multivariate
        return policy.sample_per_step if policy.enabled else 0

    def _quality_for(self, version: str) -> VersionQuality | None:
        """The quality state of ``version`` (created on first use), or ``None`` without a
        reference for it. Labels may omit the version: with one version live, it is that."""
        if not version and len(self.versions) == 1:
            version = next(iter(self.versions))
        quality = self.quality.get(version)
        window = self.versions.get(version)
        reference = window.reference if window is not None else None
        if reference is None:
            reference = self.registry.lookup(self.model, version)
        if reference is None:
            return None
        if quality is None or quality.reference.id != reference.id:
            quality = VersionQuality(reference, self.window_policy, self.quality_policies)
            self.quality[version] = quality
        quality.version = version
        return quality

    def _window_for(self, partial: Partial) -> VersionWindow | None:
        window = self.versions.get(partial.model_version)
        if window is not None and window.reference.id == partial.reference_id:
            return window
        reference = self.registry.by_id(partial.reference_id)
        if reference is None:
            # Its bins are unknown here, so its counts cannot be merged anywhere.
            return None
        window = VersionWindow(reference, self.window_policy, sample_per_step=self._sample_per_step)
        self.versions[partial.model_version] = window
        return window

    def _evaluate(
        self, version: str, window: VersionWindow, start: float, end: float, n: int, now: float
    ) -> WindowResult:
        references = {name: s.histogram for name, s in window.reference.series.items()}
        evaluations = evaluate_window(
            references,
            window.currents(),
            self.decision.statistic_objects,
            decisive=self.decision.deciding,
            correction=self.decision.correction,
        )
        late, window.late_events = window.late_events, 0
        quality = None
        if version in self.quality or window.reference.sample is not None:
            state = self._quality_for(version)
            if state is not None:
                quality = state.report(start, end, window.current_sample())
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
            quality=quality,
        )

    def _decide(self, result: WindowResult) -> list[Alert]:
        checks: list[tuple[str, DriftResult, list[dict[str, Any]]]] = [
            (feature, r, evaluation.top_bins)
            for feature, evaluation in sorted(result.evaluations.items())
            for stat in self.decision.deciding
            if (r := evaluation.results.get(stat)) is not None
        ]
        checks += [(feature, r, []) for feature, r in result.model_checks()]
        alerts = []
        for feature, r, top_bins in checks:
            alert = self.tracker.observe(
                model=self.model,
                model_version=result.model_version,
                feature=feature,
                result=r,
                window_start=result.window_start,
                window_end=result.window_end,
                evaluated_at=result.evaluated_at,
                reference_id=result.reference_id,
                top_bins=top_bins,
            )
            if alert is not None:
                alerts.append(alert)
        return alerts

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "versions": {v: w.to_dict() for v, w in self.versions.items()},
            "alerts": self.tracker.to_dict(),
            "quality": {v: q.to_dict() for v, q in self.quality.items()},
        }

    @classmethod
    def from_dict(
        cls,
        data: dict[str, Any],
        registry: ReferenceRegistry,
        windows: WindowPolicy,
        decision: DecisionPolicy,
        alerts: AlertPolicy | None = None,
        quality: QualityPolicies | None = None,
    ) -> ModelEvaluator:
        ev = cls(str(data["model"]), registry, windows, decision, alerts, quality)
        for version, wd in data.get("versions", {}).items():
            reference = registry.by_id(wd["reference_id"])
            if reference is not None:
                ev.versions[version] = VersionWindow.from_dict(
                    wd, reference, windows, sample_per_step=ev._sample_per_step
                )
        if "alerts" in data:
            ev.tracker = AlertTracker.from_dict(data["alerts"], ev.tracker.policy)
        for version, qd in data.get("quality", {}).items():
            reference = registry.by_id(qd.get("reference_id", "")) or registry.lookup(
                ev.model, version
            )
            if reference is not None:
                ev.quality[version] = VersionQuality.from_dict(
                    qd, reference, windows, ev.quality_policies
                )
        return ev
