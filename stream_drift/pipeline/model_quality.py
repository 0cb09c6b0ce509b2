"""Stage 2's model quality of one model version: realised performance, concept and
multivariate drift.

:class:`VersionQuality` takes the labelled pairs of the delayed-label join
(:class:`~stream_drift.pipeline.labels.LabelOutcomes`) and, at every window the evaluator
closes, reports what the window's result and alerts need:

- **performance** over the latest window-sized range of *prediction* time that holds at least
  ``labels.min_pairs`` labelled pairs. Labels arrive seconds to days after their prediction,
  so that range trails the drift window by the labels' delay; it carries its own ``window``
  and is compared with the reference's performance when the profile records one.
- **concept drift**: every pair's error (0/1 for classes, absolute for numbers) is fed, in the
  order the pairs arrive (each message sorted by prediction time), to the River detector of
  the ``concept`` section (:class:`~stream_drift.pipeline.concept.ConceptMonitor`).
- **multivariate drift**: the domain classifier
  (:class:`~stream_drift.pipeline.domain.DomainClassifier`) on the rows stage 1 sampled into
  the window, against the reference profile's sample.
- **label join outcomes** counted since the previous window.

Per-step performance accumulators are kept for ``labels.ttl_seconds`` of prediction time
behind the newest pair (a label older than that was counted ``expired`` by the join anyway),
at most :data:`MAX_STEPS` steps.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from stream_drift.config.policies import WindowPolicy
from stream_drift.config.quality import ConceptPolicy, LabelsPolicy, MultivariatePolicy
from stream_drift.pipeline.alert_record import DOMAIN_AUC, MultivariateResult
from stream_drift.pipeline.concept import ConceptMonitor
from stream_drift.pipeline.domain import DomainClassifier, reference_codes
from stream_drift.pipeline.labels import LabelOutcomes
from stream_drift.pipeline.reference import ReferenceProfile
from stream_drift.stats.performance import (
    BinaryPerformance,
    MulticlassPerformance,
    RegressionPerformance,
    Task,
    accumulator_from_dict,
    errors,
    infer_task,
    new_accumulator,
)
from stream_drift.stats.result import Severity

__all__ = [
    "MAX_STEPS",
    "QualityPolicies",
    "QualityReport",
    "VersionQuality",
    "calibrate_domain",
    "domain_classifier",
]

Accumulator = BinaryPerformance | MulticlassPerformance | RegressionPerformance

MAX_STEPS: Final = 20_000
"""Prediction-time steps whose performance counts are kept at most (oldest dropped first)."""

CRITICAL_AUC: Final = 0.75
"""A domain AUC at or above this (and above the threshold) is a critical multivariate drift:
a classifier then tells most current rows from reference rows."""


_THRESHOLDS: dict[tuple[str, float, int], dict[int, float]] = {}
"""Domain-classifier thresholds by (reference id, false-alarm rate, min rows): a threshold
depends only on those and the reference rows, and calibrating one bucket takes seconds, so
every evaluator of a reference shares them (:func:`calibrate_domain` fills them ahead)."""


def domain_classifier(
    reference: ReferenceProfile, policy: MultivariatePolicy
) -> DomainClassifier | None:
    """The domain classifier of ``reference`` under ``policy``, or ``None`` when the policy is
    off or the reference holds no row sample. Its thresholds are shared (see above)."""
    sample = reference.sample
    if not policy.enabled or sample is None or not sample.rows:
        return None
    codes = reference_codes(reference, sample.rows)
    if len(codes) == 0:
        return None
    key = (reference.id, policy.false_alarm_rate, policy.min_rows)
    classifier = DomainClassifier(
        reference,
        codes,
        min_rows=policy.min_rows,
        false_alarm_rate=policy.false_alarm_rate,
        thresholds=_THRESHOLDS.get(key),
    )
    # The classifier fills this very dict: what one evaluator calibrates, all reuse.
    classifier.thresholds = _THRESHOLDS.setdefault(key, classifier.thresholds)
    return classifier


def calibrate_domain(reference: ReferenceProfile, policy: MultivariatePolicy) -> int:
    """Calibrate every row-count bucket of ``reference``'s domain classifier ahead of its
    first window (seconds of CPU per bucket: a worker runs this in a thread when it installs
    a reference, not on the loop that evaluates windows). Returns the buckets calibrated."""
    classifier = domain_classifier(reference, policy)
    if classifier is None:
        return 0
    buckets = sorted(
        {classifier.bucket(n) for n in range(classifier.min_rows, classifier.max_rows + 1)}
    )
    for bucket in buckets:
        classifier.threshold(bucket)
    return len(buckets)


@dataclass(frozen=True)
class QualityPolicies:
    """The sections model quality runs with."""

    labels: LabelsPolicy = field(default_factory=LabelsPolicy)
    concept: ConceptPolicy = field(default_factory=ConceptPolicy)
    multivariate: MultivariatePolicy = field(default_factory=MultivariatePolicy)


@dataclass
class QualityReport:
    """What one closed window says about a model version's quality."""

    performance: dict[str, Any] | None = None
    estimate: dict[str, Any] | None = None
    """The label-free accuracy estimate (:meth:`VersionQuality.estimate`)."""
    concept: Any = None
    """A :class:`~stream_drift.pipeline.alert_record.ConceptDriftResult`, or ``None`` before
    any labelled pair."""
    domain: MultivariateResult | None = None
    label_join: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The optional keys of a ``drift.results`` message (absent when there is nothing)."""
        out: dict[str, Any] = {}
        if self.performance is not None:
            out["performance"] = self.performance
        if self.estimate is not None:
            out["estimate"] = self.estimate
        if self.domain is not None:
            out["domain"] = {
                "auc": round(self.domain.value, 6),
                "threshold": round(self.domain.threshold, 6),
                "n_rows": self.domain.n_current,
                "top_features": list(self.domain.top_features),
            }
        if self.label_join:
            out["label_join"] = dict(sorted(self.label_join.items()))
        return out


class VersionQuality:
    """Performance, concept-drift and domain-classifier state of one model version.

    Parameters
    ----------
    reference
        The version's reference profile (its ``performance`` gives the task and the figures
        to compare with; its ``sample`` feeds the domain classifier).
    windows
        The window policy (steps and size of the performance ranges).
    policies
        The ``labels``, ``concept`` and ``multivariate`` sections.

    Examples
    --------
    >>> import numpy as np
    >>> from stream_drift.pipeline.reference import build_reference
    >>> ref = build_reference({"x": np.arange(100.0)}, model="m")
    >>> q = VersionQuality(ref, WindowPolicy(size_seconds=60, step_seconds=60),
    ...                    QualityPolicies(labels=LabelsPolicy(min_pairs=2)))
    >>> pairs = [(10.0, 0.9, 1), (20.0, 0.2, 0), (30.0, 0.8, 0), (40.0, 0.3, 0)]
    >>> q.add(LabelOutcomes("m", "", "l/0", pairs, {"joined": 4, "duplicate": 1}))
    0
    >>> r = q.report(0.0, 60.0, None)
    >>> r.performance["window"], r.performance["n_pairs"], r.performance["metrics"]["accuracy"]
    ({'start': 0.0, 'end': 60.0}, 4, 0.75)
    >>> r.label_join
    {'duplicate': 1, 'joined': 4}
    """

    def __init__(
        self, reference: ReferenceProfile, windows: WindowPolicy, policies: QualityPolicies
    ) -> None:
        self.reference = reference
        self.windows = windows
        self.policies = policies
        self.version = reference.model_version
        perf = reference.performance
        self.task: Task | None = perf.task if perf is not None else None  # type: ignore[assignment]
        self.steps: dict[float, Accumulator] = {}
        self.confidence: dict[float, tuple[int, float]] = {}
        """Step -> (scores in [0, 1], their sum of max(p, 1 - p)), labelled or not."""
        self.monitor: ConceptMonitor | None = None
        self.join_counts: Counter[str] = Counter()
        self.domain_thresholds: dict[int, float] = {}
        self._domain: DomainClassifier | None = None
        self._domain_tried = False

    # ----------------------------------------------------------------- labels
    @property
    def step_seconds(self) -> float:
        """Steps of prediction time (the window step, as the label join cuts them)."""
        return float(self.windows.step_seconds)

    @property
    def size_seconds(self) -> float:
        """Length of a performance range: the window's (one step for count windows)."""
        if self.windows.kind == "time":
            return float(self.windows.size_seconds)
        return self.step_seconds

    def add(self, message: LabelOutcomes) -> int:
        """Count a join message in; returns the concept-drift detections it caused."""
        self.join_counts.update({k: v for k, v in message.outcomes.items() if v})
        for start, (n, total) in message.confidence.items():
            n0, total0 = self.confidence.get(start, (0, 0.0))
            self.confidence[start] = (n0 + n, total0 + total)
        if message.confidence:
            self._evict()
        if not message.pairs:
            return 0
        ts = np.fromiter((p[0] for p in message.pairs), dtype=np.float64, count=len(message.pairs))
        predictions = [p[1] for p in message.pairs]
        labels = [p[2] for p in message.pairs]
        if self.task is None:
            self.task = infer_task(predictions, labels)
        task = self.task
        try:
            errs = errors(task, predictions, labels)
        except (TypeError, ValueError):
            # Pairs of another kind than the model's task (e.g. a class name for a
            # regressor): judged one by one, the unusable ones left out.
            keep = [i for i in range(len(labels)) if _usable(task, predictions[i], labels[i])]
            ts = ts[keep]
            predictions = [predictions[i] for i in keep]
            labels = [labels[i] for i in keep]
            if not keep:
                return 0
            errs = errors(task, predictions, labels)
        step = self.step_seconds
        starts = np.floor(ts / step) * step
        for start in np.unique(starts).tolist():
            idx = np.flatnonzero(starts == start).tolist()
            acc = self.steps.get(start)
            if acc is None:
                acc = self.steps[start] = new_accumulator(task)
            acc.add([predictions[i] for i in idx], [labels[i] for i in idx])
        self._evict()
        if self.monitor is None:
            self.monitor = ConceptMonitor(
                self.policies.concept,
                binary_errors=task != "regression",
                min_pairs=self.policies.labels.min_pairs,
            )
        return len(self.monitor.update(errs, ts))

    def _evict(self) -> None:
        held: dict[float, Any]
        for held in (self.steps, self.confidence):
            if not held:
                continue
            horizon = max(held) - self.policies.labels.ttl_seconds
            for start in [s for s in held if s < horizon]:
                del held[start]
            if len(held) > MAX_STEPS:
                for start in sorted(held)[: len(held) - MAX_STEPS]:
                    del held[start]

    # ---------------------------------------------------------------- windows
    def performance(self) -> dict[str, Any] | None:
        """Performance over the latest window-sized range of prediction time with enough
        pairs, or ``None``."""
        if not self.steps or self.task is None:
            return None
        size = self.size_seconds
        starts = sorted(self.steps, reverse=True)
        end = starts[0] + self.step_seconds
        while starts:
            begin = end - size
            total = new_accumulator(self.task)
            for s in starts:
                if begin <= s < end:
                    total.merge(self.steps[s])  # type: ignore[arg-type]  # one task per version
            if total.n >= self.policies.labels.min_pairs:
                return self._performance_block(total, begin, end)
            # Not enough labels yet in the newest range: look at the one before it.
            starts = [s for s in starts if s < begin]
            if starts:
                end = starts[0] + self.step_seconds
        return None

    def _performance_block(self, total: Accumulator, start: float, end: float) -> dict[str, Any]:
        metrics = {k: v for k, v in total.metrics().items() if v is not None and math.isfinite(v)}
        expected = self._expected_accuracy(start, end)
        if expected is not None:
            metrics["expected_accuracy"] = expected[0]
        ref = self.reference.performance
        return {
            "task": self.task,
            "window": {"start": start, "end": end},
            "n_pairs": total.n,
            "metrics": metrics,
            "reference": dict(ref.metrics) if ref is not None else None,
        }

    def _expected_accuracy(self, start: float, end: float) -> tuple[float, int] | None:
        """Mean ``max(p, 1 - p)`` of the scores predicted in ``[start, end)`` and their count,
        for a binary classifier; ``None`` otherwise or without scores."""
        if self.task != "binary":
            return None
        n, total = 0, 0.0
        for s, (count, summed) in self.confidence.items():
            if start <= s < end:
                n += count
                total += summed
        return (total / n, n) if n else None

    def estimate(self) -> dict[str, Any] | None:
        """The label-free accuracy estimate of the latest window-sized range of prediction
        time: for a binary classifier with calibrated scores, the mean of ``max(p, 1 - p)``
        (confidence-based estimation). Needs the task: from the reference's performance
        (``reference build --label``) before any label, else from the first pairs."""
        if not self.confidence:
            return None
        end = max(self.confidence) + self.step_seconds
        start = end - self.size_seconds
        expected = self._expected_accuracy(start, end)
        if expected is None:
            return None
        return {
            "window": {"start": start, "end": end},
            "n_predictions": expected[1],
            "expected_accuracy": expected[0],
        }

    def gauges(self) -> dict[str, float]:
        """What ``stream_drift_model_performance`` exports now: the realised metrics of
        :meth:`performance`, and ``expected_accuracy`` of the latest range (:meth:`estimate`),
        which leads the realised figures by the labels' delay."""
        block = self.performance()
        out = dict(block["metrics"]) if block is not None else {}
        estimate = self.estimate()
        if estimate is not None:
            out["expected_accuracy"] = estimate["expected_accuracy"]
        return out

    def domain_classifier(self) -> DomainClassifier | None:
        """The version's domain classifier, built on first use when the reference has a
        sample and multivariate checks are on."""
        if self._domain_tried:
            return self._domain
        self._domain_tried = True
        self._domain = domain_classifier(self.reference, self.policies.multivariate)
        if self._domain is not None:
            for bucket, threshold in self.domain_thresholds.items():  # from a saved state
                self._domain.thresholds.setdefault(bucket, threshold)
        return self._domain

    def report(self, start: float, end: float, current_sample: Any) -> QualityReport:
        """What the window ``[start, end)`` that just closed says (see the module)."""
        out = QualityReport(performance=self.performance(), estimate=self.estimate())
        if self.monitor is not None:
            out.concept = self.monitor.observe_window(start, end)
        classifier = self.domain_classifier() if current_sample is not None else None
        if classifier is not None and len(current_sample):
            verdict = classifier.evaluate(current_sample, seed=int(end) & 0x7FFFFFFF)
            self.domain_thresholds = dict(classifier.thresholds)
            if verdict is not None:
                drift = verdict.is_drift
                critical = drift and verdict.auc >= CRITICAL_AUC
                out.domain = MultivariateResult(
                    DOMAIN_AUC,
                    verdict.auc,
                    verdict.threshold,
                    None,
                    drift,
                    Severity.CRITICAL if critical else Severity.WARNING if drift else Severity.OK,
                    verdict.n_rows,
                    verdict.n_rows,
                    top_features=tuple(verdict.top_features),
                )
        out.label_join, self.join_counts = dict(sorted(self.join_counts.items())), Counter()
        return out

    # ------------------------------------------------------------------ state
    def to_dict(self) -> dict[str, Any]:
        return {
            "reference_id": self.reference.id,
            "task": self.task,
            "steps": [[s, acc.to_dict()] for s, acc in sorted(self.steps.items())],
            "confidence": [[s, n, t] for s, (n, t) in sorted(self.confidence.items())],
            "monitor": self.monitor.to_dict() if self.monitor is not None else None,
            "join_counts": dict(self.join_counts),
            "domain_thresholds": [[b, t] for b, t in sorted(self.domain_thresholds.items())],
        }

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        reference: ReferenceProfile,
        windows: WindowPolicy,
        policies: QualityPolicies,
    ) -> VersionQuality:
        q = cls(reference, windows, policies)
        q.task = data.get("task") or q.task
        q.steps = {float(s): accumulator_from_dict(acc) for s, acc in data.get("steps", [])}
        q.confidence = {float(s): (int(n), float(t)) for s, n, t in data.get("confidence", [])}
        if data.get("monitor") is not None:
            q.monitor = ConceptMonitor.from_dict(data["monitor"], policies.concept)
        q.join_counts = Counter({str(k): int(v) for k, v in data.get("join_counts", {}).items()})
        q.domain_thresholds = {int(b): float(t) for b, t in data.get("domain_thresholds", [])}
        return q


def _usable(task: Task, prediction: Any, label: Any) -> bool:
    try:
        errors(task, [prediction], [label])
    except (TypeError, ValueError):
        return False
    return True
