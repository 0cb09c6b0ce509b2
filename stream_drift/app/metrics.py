"""Prometheus metrics of DESIGN §3.4, created against an injected registry.

:class:`DriftMetrics` owns every metric object a worker exports. It never touches
the global default registry: the app passes the registry its ``/metrics`` endpoint
serves, and tests pass a fresh :class:`~prometheus_client.CollectorRegistry`.

Cardinality is bounded. Every labelled metric (gauges and counters alike, except
``stream_drift_series_dropped_total`` itself, whose labels are the fixed metric
names) counts towards ``max_series`` label sets. Once the cap is reached a *new*
label set is refused and counted in ``stream_drift_series_dropped_total{metric}``
(with one log warning per metric); label sets already exported keep updating.
Removing series (:meth:`DriftMetrics.forget_model`, a ``None`` p-value, an
unjudged window) frees room under the cap.

Ownership: each (model, feature) gauge must have exactly one writer
(DESIGN §3.4). A worker calls :meth:`DriftMetrics.retain_only` with the models
whose partitions it owns after every rebalance, which removes the gauges of the
models it gave away.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Collection, Sequence
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stream_drift import __version__
from stream_drift.stats.result import DriftResult, Severity

__all__ = [
    "EVALUATION_BUCKETS",
    "EVENT_OUTCOMES",
    "INVALID_VALUE_REASONS",
    "LABEL_JOIN_OUTCOMES",
    "SEND_FAILURE_KINDS",
    "SEND_FAILURE_REASONS",
    "DriftMetrics",
]

log = logging.getLogger(__name__)

#: Allowed ``outcome`` label values of ``stream_drift_events_total``.
EVENT_OUTCOMES: Final = frozenset({"accepted", "invalid", "late"})
LABEL_JOIN_OUTCOMES: Final = frozenset({"joined", "orphan_label", "expired", "duplicate"})

#: Allowed ``kind`` label values of ``stream_drift_send_failures_total``: what the record was.
SEND_FAILURE_KINDS: Final = frozenset({"deadletter", "partial", "reference"})

#: Allowed ``reason`` label values of ``stream_drift_send_failures_total``: the record was too
#: large for the producer or the broker, the broker refused it as invalid, or sending it raised
#: something else that is the record's own (not a connection or broker outage).
SEND_FAILURE_REASONS: Final = frozenset({"message_too_large", "invalid_record", "error"})

#: Allowed ``reason`` label values of ``stream_drift_invalid_values_total``: a value of the
#: wrong kind for its series (a string or bool in a numeric feature, a list or object in a
#: categorical one). Missing values are not invalid ones: ``stream_drift_missing_ratio``.
INVALID_VALUE_REASONS: Final = frozenset({"type_mismatch"})

#: Allowed ``severity`` label values of ``stream_drift_alerts_total``.
ALERT_SEVERITIES: Final = frozenset({"warning", "critical"})

#: Buckets (seconds) of ``stream_drift_evaluation_duration_seconds``: one
#: evaluation pass is O(features x bins), typically well under a second.
EVALUATION_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

_STAT_LABELS: Final = ("model", "model_version", "feature", "statistic")
_WINDOW_LABELS: Final = ("model", "model_version", "feature")

LabelValues = tuple[str, ...]
Labelled = Gauge | Counter


class DriftMetrics:
    """Every Prometheus metric of a ``stream_drift`` worker, with a series cap.

    Parameters
    ----------
    registry
        Registry the metrics are registered in (never the global default one).
    max_series
        Maximum number of label sets across all labelled metrics (>= 1).
    buckets
        Histogram buckets of ``stream_drift_evaluation_duration_seconds``.

    Raises
    ------
    ValueError
        When ``max_series < 1``, or when the registry already holds these metrics.

    Examples
    --------
    >>> from prometheus_client import CollectorRegistry
    >>> from stream_drift.stats.result import DriftResult, Severity
    >>> registry = CollectorRegistry()
    >>> metrics = DriftMetrics(registry)
    >>> result = DriftResult("psi", 0.31, 0.2, 1e-9, True, Severity.CRITICAL, 100_000, 5231)
    >>> metrics.observe_result("fraud", "7", "amount", result, Severity.CRITICAL)
    >>> labels = {"model": "fraud", "model_version": "7", "feature": "amount", "statistic": "psi"}
    >>> registry.get_sample_value("stream_drift_statistic", labels)
    0.31
    >>> registry.get_sample_value("stream_drift_alert_state", labels)
    2.0
    >>> metrics.count_events("fraud", "accepted", 10)
    >>> registry.get_sample_value(
    ...     "stream_drift_events_total", {"model": "fraud", "outcome": "accepted"})
    10.0
    >>> metrics.forget_model("fraud")
    >>> registry.get_sample_value("stream_drift_statistic", labels) is None
    True
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        max_series: int = 10_000,
        buckets: Sequence[float] = EVALUATION_BUCKETS,
    ) -> None:
        if isinstance(max_series, bool) or not isinstance(max_series, int) or max_series < 1:
            raise ValueError(f"max_series must be an integer >= 1, got {max_series!r}")
        self.registry = registry
        self.max_series = max_series
        self._lock = threading.RLock()
        self._series: dict[str, set[LabelValues]] = {}
        self._n_series = 0
        self._warned: set[str] = set()

        def gauge(name: str, doc: str, labels: Sequence[str]) -> Gauge:
            self._series[name] = set()
            return Gauge(name, doc, labels, registry=registry)

        def counter(name: str, doc: str, labels: Sequence[str]) -> Counter:
            self._series[name] = set()
            # prometheus_client appends ``_total`` to the exposed counter name.
            return Counter(name.removesuffix("_total"), doc, labels, registry=registry)

        self.statistic = gauge(
            "stream_drift_statistic",
            "Value of a drift statistic for a feature in the last judged window.",
            _STAT_LABELS,
        )
        self.p_value = gauge(
            "stream_drift_p_value",
            "p-value of the drift statistic in the last judged window (absent when none).",
            _STAT_LABELS,
        )
        self.threshold = gauge(
            "stream_drift_threshold",
            "Threshold the statistic was judged against in the last judged window "
            "(it moves with the window's sample size).",
            _STAT_LABELS,
        )
        self.alert_state = gauge(
            "stream_drift_alert_state",
            "Alert state of a feature statistic: 0 ok, 1 warning, 2 critical.",
            _STAT_LABELS,
        )
        self.window_samples = gauge(
            "stream_drift_window_samples",
            "Events in the current window of a feature.",
            _WINDOW_LABELS,
        )
        self.missing_ratio = gauge(
            "stream_drift_missing_ratio",
            "Fraction of events in the current window with the feature missing or null.",
            _WINDOW_LABELS,
        )
        self.last_evaluation = gauge(
            "stream_drift_last_evaluation_timestamp_seconds",
            "Unix time of the last drift evaluation of a model.",
            ("model",),
        )
        self.watermark_lag = gauge(
            "stream_drift_watermark_lag_seconds",
            "Processing time minus the model's event-time watermark.",
            ("model",),
        )
        self.consumer_lag = gauge(
            "stream_drift_consumer_lag_records",
            "Stage-1 consumer lag: high-water mark minus the next offset to ingest, for the "
            "partitions this worker consumes.",
            ("topic", "partition"),
        )
        self.events = counter(
            "stream_drift_events_total",
            "Input events by outcome (accepted, invalid, late).",
            ("model", "outcome"),
        )
        self.alerts = counter(
            "stream_drift_alerts_total",
            "Drift alerts published (firing or escalated) by severity.",
            ("model", "severity"),
        )
        self.deadletter = counter(
            "stream_drift_deadletter_total",
            "Records sent to the dead-letter topic, by reason.",
            ("reason",),
        )
        self.send_failures = counter(
            "stream_drift_send_failures_total",
            "Records stage 1 gave up sending after retries (a failure of the record itself, "
            "e.g. too large); the source offsets were committed without them. By kind "
            "(deadletter, partial, reference) and reason.",
            ("kind", "reason"),
        )
        self.late_events = counter(
            "stream_drift_late_events_total",
            "Events that arrived after their window closed.",
            ("model",),
        )
        self.invalid_values = counter(
            "stream_drift_invalid_values_total",
            "Feature values of the wrong kind for the reference (e.g. a string where it has "
            "numbers), counted by stage 1 and left out of the histograms; by model, feature "
            "and reason (type_mismatch). Missing values are not counted here.",
            ("model", "feature", "reason"),
        )
        self.model_performance = gauge(
            "stream_drift_model_performance",
            "Realised performance of a model version (accuracy, f1, roc_auc, mae, ...) over "
            "its latest window of prediction time with enough labelled predictions.",
            ("model", "model_version", "metric"),
        )
        self.domain_auc = gauge(
            "stream_drift_domain_auc",
            "ROC AUC of the domain classifier telling current rows from reference rows in the "
            "last judged window (0.5: indistinguishable).",
            ("model", "model_version"),
        )
        self.domain_auc_threshold = gauge(
            "stream_drift_domain_auc_threshold",
            "AUC above which the domain classifier flags multivariate drift (calibrated on "
            "reference-vs-reference splits at the window's row count).",
            ("model", "model_version"),
        )
        self.concept_detections = counter(
            "stream_drift_concept_drift_detections_total",
            "Changes the concept-drift detector found in a model's error stream, by detector.",
            ("model", "detector"),
        )
        self.label_join = counter(
            "stream_drift_label_join_total",
            "Labels and predictions of the delayed-label join by outcome: joined, "
            "orphan_label (no prediction within the TTL), expired (no label within the TTL) "
            "and duplicate.",
            ("model", "outcome"),
        )
        self.series_dropped = Counter(
            "stream_drift_series_dropped",
            "Label sets refused because the series cap was reached, by metric.",
            ("metric",),
            registry=registry,
        )
        self.evaluation_duration = Histogram(
            "stream_drift_evaluation_duration_seconds",
            "Wall time of one window evaluation (all statistics of all features, and the "
            "alert decisions).",
            registry=registry,
            buckets=tuple(buckets),
        )
        self.window_size = Gauge(
            "stream_drift_window_size_seconds",
            "Configured window size (time windows).",
            registry=registry,
        )
        self.window_step = Gauge(
            "stream_drift_window_step_seconds",
            "Configured window step: each model is evaluated once per step.",
            registry=registry,
        )
        self.build_info = Gauge(
            "stream_drift_build_info",
            "Always 1; the version label says which stream-drift release runs.",
            ("version",),
            registry=registry,
        )
        self.build_info.labels(version=__version__).set(1)
        self._by_name: dict[str, Labelled] = {
            "stream_drift_statistic": self.statistic,
            "stream_drift_p_value": self.p_value,
            "stream_drift_threshold": self.threshold,
            "stream_drift_alert_state": self.alert_state,
            "stream_drift_window_samples": self.window_samples,
            "stream_drift_missing_ratio": self.missing_ratio,
            "stream_drift_last_evaluation_timestamp_seconds": self.last_evaluation,
            "stream_drift_watermark_lag_seconds": self.watermark_lag,
            "stream_drift_consumer_lag_records": self.consumer_lag,
            "stream_drift_events_total": self.events,
            "stream_drift_alerts_total": self.alerts,
            "stream_drift_deadletter_total": self.deadletter,
            "stream_drift_send_failures_total": self.send_failures,
            "stream_drift_late_events_total": self.late_events,
            "stream_drift_invalid_values_total": self.invalid_values,
            "stream_drift_model_performance": self.model_performance,
            "stream_drift_domain_auc": self.domain_auc,
            "stream_drift_domain_auc_threshold": self.domain_auc_threshold,
            "stream_drift_concept_drift_detections_total": self.concept_detections,
            "stream_drift_label_join_total": self.label_join,
        }
        # Per-model gauges: exported by the worker owning the model's stage-2 partition only.
        self._gauge_names: Final = (
            "stream_drift_statistic",
            "stream_drift_p_value",
            "stream_drift_threshold",
            "stream_drift_alert_state",
            "stream_drift_window_samples",
            "stream_drift_missing_ratio",
            "stream_drift_last_evaluation_timestamp_seconds",
            "stream_drift_watermark_lag_seconds",
            "stream_drift_model_performance",
            "stream_drift_domain_auc",
            "stream_drift_domain_auc_threshold",
        )
        self._versioned_names: Final = frozenset(self._gauge_names) - {
            "stream_drift_last_evaluation_timestamp_seconds",
            "stream_drift_watermark_lag_seconds",
        }
        self._model_counter_names: Final = (
            "stream_drift_events_total",
            "stream_drift_alerts_total",
            "stream_drift_late_events_total",
            "stream_drift_invalid_values_total",
            "stream_drift_concept_drift_detections_total",
            "stream_drift_label_join_total",
        )

    # ------------------------------------------------------------ series cap
    @property
    def series_count(self) -> int:
        """Label sets currently exported across all capped metrics."""
        return self._n_series

    def _child(self, name: str, labels: LabelValues) -> Labelled | None:
        """The child for ``labels``, or ``None`` (counted) when the cap refuses it."""
        metric = self._by_name[name]
        with self._lock:
            seen = self._series[name]
            if labels not in seen:
                if self._n_series >= self.max_series:
                    self.series_dropped.labels(metric=name).inc()
                    if name not in self._warned:
                        self._warned.add(name)
                        log.warning(
                            "series cap of %d reached: new %s series are dropped "
                            "(see stream_drift_series_dropped_total)",
                            self.max_series,
                            name,
                        )
                    return None
                seen.add(labels)
                self._n_series += 1
            return metric.labels(*labels)

    def _set(self, name: str, labels: LabelValues, value: float) -> None:
        child = self._child(name, labels)
        if child is not None:
            assert isinstance(child, Gauge)
            child.set(value)

    def _inc(self, name: str, labels: LabelValues, n: float) -> None:
        if n < 0 or not math.isfinite(n):
            raise ValueError(f"counter increment must be a finite number >= 0, got {n!r}")
        child = self._child(name, labels)
        if child is not None:
            assert isinstance(child, Counter)
            child.inc(n)

    def _remove(self, name: str, labels: LabelValues) -> None:
        with self._lock:
            seen = self._series[name]
            if labels in seen:
                self._by_name[name].remove(*labels)
                seen.discard(labels)
                self._n_series -= 1

    # --------------------------------------------------------------- writing
    def observe_result(
        self,
        model: str,
        model_version: str,
        feature: str,
        result: DriftResult,
        state: Severity,
    ) -> None:
        """Export one statistic's result and the key's alert state.

        ``stream_drift_alert_state`` is always set to ``int(state)`` (the alert
        tracker's state, not the window's severity). ``stream_drift_statistic`` and
        ``stream_drift_p_value`` carry only *judged* figures: for an unjudged
        window both series are removed, and a ``None`` p-value removes the p-value
        series, so no stale figure stays exported (the series reappears with the
        next judged value).
        """
        labels = (model, model_version, feature, result.statistic)
        self._set("stream_drift_alert_state", labels, int(state))
        if not result.judged:
            self._remove("stream_drift_statistic", labels)
            self._remove("stream_drift_threshold", labels)
            self._remove("stream_drift_p_value", labels)
            return
        self._set("stream_drift_statistic", labels, float(result.value))
        self._set("stream_drift_threshold", labels, float(result.threshold))
        if result.p_value is None:
            self._remove("stream_drift_p_value", labels)
        else:
            self._set("stream_drift_p_value", labels, float(result.p_value))

    def set_window(
        self,
        model: str,
        model_version: str,
        feature: str,
        n_samples: int,
        missing_ratio: float,
    ) -> None:
        """Export the size and missing ratio of a feature's current window.

        Raises
        ------
        ValueError
            When ``n_samples < 0`` or ``missing_ratio`` is outside ``[0, 1]``.
        """
        if n_samples < 0:
            raise ValueError(f"n_samples must be >= 0, got {n_samples!r}")
        if not 0.0 <= missing_ratio <= 1.0:
            raise ValueError(f"missing_ratio must be in [0, 1], got {missing_ratio!r}")
        labels = (model, model_version, feature)
        self._set("stream_drift_window_samples", labels, n_samples)
        self._set("stream_drift_missing_ratio", labels, missing_ratio)

    def count_events(self, model: str, outcome: str, n: int = 1) -> None:
        """Count input events; ``late`` also counts ``stream_drift_late_events_total``.

        Raises
        ------
        ValueError
            When ``outcome`` is not one of ``accepted``, ``invalid``, ``late``.
        """
        if outcome not in EVENT_OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(EVENT_OUTCOMES)}, got {outcome!r}")
        self._inc("stream_drift_events_total", (model, outcome), n)
        if outcome == "late":
            self._inc("stream_drift_late_events_total", (model,), n)

    def count_invalid_values(self, model: str, feature: str, reason: str, n: int = 1) -> None:
        """Count feature values of the wrong kind that stage 1 left out of a histogram.

        ``feature`` must be a series name of the model's reference (never a name read from an
        event), so the label set stays bounded.

        Raises
        ------
        ValueError
            When ``reason`` is not one of :data:`INVALID_VALUE_REASONS`, or ``n < 0``.

        Examples
        --------
        >>> from prometheus_client import CollectorRegistry
        >>> registry = CollectorRegistry()
        >>> metrics = DriftMetrics(registry)
        >>> metrics.count_invalid_values("fraud", "age", "type_mismatch", 42)
        >>> registry.get_sample_value(
        ...     "stream_drift_invalid_values_total",
        ...     {"model": "fraud", "feature": "age", "reason": "type_mismatch"})
        42.0
        """
        if reason not in INVALID_VALUE_REASONS:
            raise ValueError(
                f"reason must be one of {sorted(INVALID_VALUE_REASONS)}, got {reason!r}"
            )
        self._inc("stream_drift_invalid_values_total", (model, feature, reason), n)

    def count_alert(self, model: str, severity: str | Severity) -> None:
        """Count one published alert (call it for ``firing`` and ``escalated``).

        Raises
        ------
        ValueError
            When ``severity`` is not ``warning`` or ``critical``.
        """
        label = severity.label if isinstance(severity, Severity) else severity
        if label not in ALERT_SEVERITIES:
            raise ValueError(f"severity must be 'warning' or 'critical', got {severity!r}")
        self._inc("stream_drift_alerts_total", (model, label), 1)

    def set_performance(self, model: str, model_version: str, metrics: dict[str, float]) -> None:
        """Export a model version's realised performance (non-finite figures are left out)."""
        for metric, value in metrics.items():
            labels = (model, model_version, metric)
            if math.isfinite(value):
                self._set("stream_drift_model_performance", labels, value)
            else:
                self._remove("stream_drift_model_performance", labels)

    def set_domain_auc(self, model: str, model_version: str, auc: float, threshold: float) -> None:
        """Export the domain classifier's AUC of the last judged window and its threshold."""
        self._set("stream_drift_domain_auc", (model, model_version), auc)
        self._set("stream_drift_domain_auc_threshold", (model, model_version), threshold)

    def count_concept_detections(self, model: str, detector: str, n: int = 1) -> None:
        """Count changes a concept-drift detector found."""
        self._inc("stream_drift_concept_drift_detections_total", (model, detector), n)

    def count_label_join(self, model: str, outcome: str, n: int = 1) -> None:
        """Count outcomes of the delayed-label join.

        Raises
        ------
        ValueError
            When ``outcome`` is not one of ``joined``, ``orphan_label``, ``expired``,
            ``duplicate``.
        """
        if outcome not in LABEL_JOIN_OUTCOMES:
            raise ValueError(
                f"outcome must be one of {sorted(LABEL_JOIN_OUTCOMES)}, got {outcome!r}"
            )
        self._inc("stream_drift_label_join_total", (model, outcome), n)

    def count_deadletter(self, reason: str, n: int = 1) -> None:
        """Count records sent to ``drift.deadletter``; keep ``reason`` a short code."""
        self._inc("stream_drift_deadletter_total", (reason,), n)

    def count_send_failure(self, kind: str, reason: str) -> None:
        """Count one record stage 1 could not send and skipped (after its retries).

        Raises
        ------
        ValueError
            When ``kind`` or ``reason`` is not one of :data:`SEND_FAILURE_KINDS` /
            :data:`SEND_FAILURE_REASONS` (the label sets stay bounded).

        Examples
        --------
        >>> from prometheus_client import CollectorRegistry
        >>> registry = CollectorRegistry()
        >>> metrics = DriftMetrics(registry)
        >>> metrics.count_send_failure("deadletter", "message_too_large")
        >>> registry.get_sample_value(
        ...     "stream_drift_send_failures_total",
        ...     {"kind": "deadletter", "reason": "message_too_large"})
        1.0
        """
        if kind not in SEND_FAILURE_KINDS:
            raise ValueError(f"kind must be one of {sorted(SEND_FAILURE_KINDS)}, got {kind!r}")
        if reason not in SEND_FAILURE_REASONS:
            raise ValueError(
                f"reason must be one of {sorted(SEND_FAILURE_REASONS)}, got {reason!r}"
            )
        self._inc("stream_drift_send_failures_total", (kind, reason), 1)

    def mark_evaluated(self, model: str, timestamp: float) -> None:
        """Record the Unix time of a model's last evaluation."""
        self._set("stream_drift_last_evaluation_timestamp_seconds", (model,), timestamp)

    def set_watermark_lag(self, model: str, seconds: float) -> None:
        """Export how far a model's event-time watermark is behind processing time."""
        if not math.isfinite(seconds):
            raise ValueError(f"watermark lag must be finite, got {seconds!r}")
        self._set("stream_drift_watermark_lag_seconds", (model,), seconds)

    def set_consumer_lag(self, topic: str, partition: int, records: int) -> None:
        """Export the stage-1 lag of one source partition (negative values read as 0).

        Examples
        --------
        >>> from prometheus_client import CollectorRegistry
        >>> registry = CollectorRegistry()
        >>> metrics = DriftMetrics(registry)
        >>> metrics.set_consumer_lag("drift.events", 3, 1200)
        >>> registry.get_sample_value(
        ...     "stream_drift_consumer_lag_records", {"topic": "drift.events", "partition": "3"})
        1200.0
        >>> metrics.retain_partitions(set())
        >>> registry.get_sample_value(
        ...     "stream_drift_consumer_lag_records", {"topic": "drift.events", "partition": "3"})
        """
        self._set("stream_drift_consumer_lag_records", (topic, str(partition)), max(0, records))

    def retain_partitions(self, owned: Collection[tuple[str, int]]) -> None:
        """Remove the lag of every source partition not in ``owned`` (after a rebalance)."""
        keep = {(topic, str(partition)) for topic, partition in owned}
        with self._lock:
            stale = [k for k in self._series["stream_drift_consumer_lag_records"] if k not in keep]
        for labels in stale:
            self._remove("stream_drift_consumer_lag_records", labels)

    def set_window_policy(self, size_seconds: float, step_seconds: float) -> None:
        """Export the configured window size and step (time windows)."""
        self.window_size.set(size_seconds)
        self.window_step.set(step_seconds)

    def observe_evaluation(self, seconds: float) -> None:
        """Record the duration of one window evaluation."""
        self.evaluation_duration.observe(seconds)

    # ------------------------------------------------------------- ownership
    @property
    def owned_models(self) -> frozenset[str]:
        """Models this worker currently exports gauges for."""
        with self._lock:
            return frozenset(
                labels[0] for name in self._gauge_names for labels in self._series[name]
            )

    def forget_model(
        self,
        model: str,
        *,
        model_version: str | None = None,
        counters: bool = False,
    ) -> None:
        """Remove a model's series (after its partitions moved to another worker).

        Parameters
        ----------
        model
            The model whose series go.
        model_version
            Only remove the series of this version (per-version gauges only);
            ``None`` removes every version and the model's last-evaluation gauge.
        counters
            Also remove the model's counters (``events_total``, ``alerts_total``,
            ``late_events_total``). Off by default: counters are summed across
            workers (stage 1 counts events of every model whatever the partition
            owner), so removing them would only lose increments.
        """
        with self._lock:
            names = list(self._gauge_names)
            if counters and model_version is None:
                names += self._model_counter_names
            for name in names:
                for labels in list(self._series[name]):
                    if labels[0] != model:
                        continue
                    if model_version is not None and (
                        name not in self._versioned_names or labels[1] != model_version
                    ):
                        continue
                    self._remove(name, labels)

    def retain_only(self, models: Collection[str], *, counters: bool = False) -> None:
        """Forget every model not in ``models`` (call after each rebalance)."""
        keep = set(models)
        for model in self.owned_models - keep:
            self.forget_model(model, counters=counters)
        if counters:
            with self._lock:
                stale = {
                    labels[0]
                    for name in self._model_counter_names
                    for labels in self._series[name]
                    if labels[0] not in keep
                }
            for model in stale:
                self.forget_model(model, counters=True)
