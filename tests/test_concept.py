"""Concept drift: River detectors on the error stream, and the concept_drift/multivariate alerts."""

from __future__ import annotations

import inspect
import json
import math

import numpy as np
import pytest
from river import drift

from stream_drift.config.policies import AlertPolicy
from stream_drift.config.quality import DETECTOR_NAMES, DETECTOR_PARAMETERS, ConceptPolicy
from stream_drift.pipeline.alert_record import ConceptDriftResult, MultivariateResult
from stream_drift.pipeline.alerts import AlertTracker
from stream_drift.pipeline.concept import (
    BINARY_DETECTORS,
    ConceptMonitor,
    _change_point,
    make_detector,
)
from stream_drift.stats.result import Severity

RIVER_CLASSES = {
    "adwin": drift.ADWIN,
    "ddm": drift.binary.DDM,
    "eddm": drift.binary.EDDM,
    "hddm_a": drift.binary.HDDMA,
    "hddm_w": drift.binary.HDDMW,
    "page_hinkley": drift.PageHinkley,
    "kswin": drift.KSWIN,
}
T0 = 1_796_169_600.0  # 2026-12-02T00:00:00Z


def shifted(n_before: int, n_after: int, p0: float, p1: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.random(n_before) < p0, rng.random(n_after) < p1]).astype(float)


# ------------------------------------------------------------------------ detectors
@pytest.mark.parametrize("name", DETECTOR_NAMES)
def test_config_parameters_are_the_river_constructor_parameters(name: str) -> None:
    signature = inspect.signature(RIVER_CLASSES[name].__init__)
    real = {p for p in signature.parameters if p != "self"}
    assert set(DETECTOR_PARAMETERS[name]) <= real, name
    # Only KSWIN's initial window (a list of values, not a setting) is left out.
    assert real - set(DETECTOR_PARAMETERS[name]) <= ({"window"} if name == "kswin" else set())
    detector = make_detector(ConceptPolicy(detector=name))
    assert type(detector) is RIVER_CLASSES[name]


def test_make_detector_passes_the_parameters() -> None:
    d = make_detector(ConceptPolicy(detector="page_hinkley", params={"threshold": 20.0}))
    assert d.threshold == 20.0
    assert make_detector(ConceptPolicy(detector="kswin")).seed == 0
    assert make_detector(ConceptPolicy(detector="kswin", params={"seed": 7})).seed == 7


@pytest.mark.parametrize("name", sorted(BINARY_DETECTORS))
def test_binary_detectors_refuse_regression_errors(name: str) -> None:
    with pytest.raises(ValueError, match=r"concept\.detector: .* needs 0/1 errors") as info:
        ConceptMonitor(ConceptPolicy(detector=name), binary_errors=False)
    assert "adwin, page_hinkley or kswin" in str(info.value)
    ConceptMonitor(ConceptPolicy(detector=name), binary_errors=True)  # fine for a classifier


@pytest.mark.parametrize("name", ["adwin", "page_hinkley", "kswin"])
def test_regression_detectors_take_absolute_errors(name: str) -> None:
    monitor = ConceptMonitor(ConceptPolicy(detector=name), binary_errors=False)
    rng = np.random.default_rng(1)
    errors = np.abs(np.concatenate([rng.normal(0, 1, 1500), rng.normal(0, 5, 1500)]))
    hits = monitor.update(errors, T0 + np.arange(3000.0))
    # Page-Hinkley and KSWIN also flag the noise of the first segment at their defaults: the
    # change itself must be among the detections.
    assert any(T0 + 1500 <= h < T0 + 2000 for h in hits), hits
    result = monitor.observe_window(T0, T0 + 3000)
    assert result.regression and result.is_drift and result.value == len(hits)
    if name == "adwin":
        assert result.error_after > 2 * result.error_before


def test_update_validates_input() -> None:
    monitor = ConceptMonitor(ConceptPolicy(), binary_errors=True)
    with pytest.raises(ValueError, match="0 or 1"):
        monitor.update(np.array([0.0, 0.5]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="timestamps"):
        monitor.update(np.array([0.0, 1.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="finite"):
        monitor.update(np.array([math.nan]), np.array([1.0]))
    assert monitor.update(np.array([]), np.array([])) == []


# ---------------------------------------------------------------- detection logic
@pytest.mark.parametrize("name", ["adwin", "hddm_a", "hddm_w"])
def test_detects_an_error_rate_rise_and_reports_the_figures(name: str) -> None:
    errors = shifted(4000, 4000, 0.05, 0.30, seed=3)
    ts = T0 + np.arange(8000.0)
    monitor = ConceptMonitor(ConceptPolicy(detector=name), binary_errors=True)
    hits = monitor.update(errors, ts)
    assert hits, name
    assert T0 + 4000 <= hits[0] < T0 + 4600, (name, hits[0] - T0)
    assert monitor.detections == len(hits)
    result = monitor.observe_window(T0, T0 + 8000)
    assert isinstance(result, ConceptDriftResult)
    assert result.is_drift and result.judged and result.severity is Severity.CRITICAL
    assert result.value == len(hits) and result.threshold == 1.0
    assert result.detected_at == hits[0] and result.n_current == 8000
    # The change point estimate, checked against the true rates of the two segments.
    assert abs(result.error_before - 0.05) < 0.015
    assert abs(result.error_after - 0.30) < 0.08
    assert result.error_now == pytest.approx(errors.mean())


def test_the_detection_is_the_same_whatever_the_batching() -> None:
    errors = shifted(3000, 3000, 0.05, 0.3, seed=5)
    ts = T0 + np.arange(6000.0)
    whole = ConceptMonitor(ConceptPolicy(), binary_errors=True)
    expected = whole.update(errors, ts)
    pieces = ConceptMonitor(ConceptPolicy(), binary_errors=True)
    got: list[float] = []
    for chunk in np.array_split(np.arange(6000), 37):
        got += pieces.update(errors[chunk], ts[chunk])
    assert got == expected and pieces.pending == whole.pending


def test_change_point_against_brute_force() -> None:
    rng = np.random.default_rng(2)
    x = rng.random(200) * np.r_[np.ones(120), 3 * np.ones(80)]
    best = max(
        range(1, 200),
        key=lambda k: k * (200 - k) / 200 * (x[:k].mean() - x[k:].mean()) ** 2,
    )
    assert _change_point(x) == (x[:best].mean(), x[best:].mean(), best)


def test_windows_report_each_detection_once_and_hold_back_future_ones() -> None:
    errors = shifted(3000, 3000, 0.05, 0.3, seed=7)
    monitor = ConceptMonitor(ConceptPolicy(), binary_errors=True, min_pairs=30)
    (hit,) = monitor.update(errors, T0 + np.arange(6000.0))
    early = monitor.observe_window(T0, hit)  # the detection's prediction is later: held
    assert not early.is_drift and early.value == 0 and early.judged and early.n_current == 6000
    due = monitor.observe_window(hit, hit + 300)
    assert due.is_drift and due.value == 1 and due.n_current == 0 and due.judged
    quiet = monitor.observe_window(hit + 300, hit + 600)
    assert not quiet.is_drift and not quiet.judged  # no pairs: no evidence either way


def test_severity_comes_from_the_policy() -> None:
    monitor = ConceptMonitor(ConceptPolicy(severity="warning"), binary_errors=True)
    monitor.update(shifted(3000, 3000, 0.05, 0.3), T0 + np.arange(6000.0))
    assert monitor.observe_window(T0, T0 + 6000).severity is Severity.WARNING


# -------------------------------------------------------------------------- state
@pytest.mark.parametrize("name", ["adwin", "ddm", "eddm", "hddm_w", "page_hinkley"])
def test_state_round_trip_continues_exactly(name: str) -> None:
    errors = shifted(2500, 2500, 0.05, 0.3, seed=11)
    ts = T0 + np.arange(5000.0)
    reference = ConceptMonitor(ConceptPolicy(detector=name), binary_errors=True)
    expected = reference.update(errors, ts)
    policy = ConceptPolicy(detector=name)
    monitor = ConceptMonitor(policy, binary_errors=True, max_replay=100_000)
    got: list[float] = []
    for chunk in np.array_split(np.arange(5000), 9):
        got += monitor.update(errors[chunk], ts[chunk])
        state = json.loads(json.dumps(monitor.to_dict()))
        monitor = ConceptMonitor.from_dict(state, policy)
    assert got == expected
    assert monitor.detections == len(expected)


def test_kswin_state_restores_its_window_without_a_replay() -> None:
    policy = ConceptPolicy(detector="kswin")
    monitor = ConceptMonitor(policy, binary_errors=False)
    errors = np.abs(np.random.default_rng(4).normal(0, 1, 700))
    monitor.update(errors, T0 + np.arange(700.0))
    back = ConceptMonitor.from_dict(json.loads(json.dumps(monitor.to_dict())), policy)
    assert list(back._detector.window) == list(monitor._detector.window)
    assert back._detector.n == monitor._detector.n
    assert np.array_equal(back._buffer, monitor._buffer)
    # It still detects a change after the restore.
    shifted_up = np.abs(np.random.default_rng(5).normal(0, 5, 400))
    assert back.update(shifted_up, T0 + 700 + np.arange(400.0))


def test_state_of_absolute_errors_is_exact_float64() -> None:
    monitor = ConceptMonitor(ConceptPolicy(), binary_errors=False)
    errors = np.abs(np.random.default_rng(0).normal(0, 3, 500))
    monitor.update(errors, T0 + np.arange(500.0))
    state = monitor.to_dict()
    back = ConceptMonitor.from_dict(json.loads(json.dumps(state)), ConceptPolicy())
    assert back.to_dict() == state
    assert np.array_equal(back._buffer, monitor._buffer)


def test_state_is_bounded() -> None:
    monitor = ConceptMonitor(ConceptPolicy(), binary_errors=True, max_replay=2048)
    rng = np.random.default_rng(0)
    monitor.update((rng.random(100_000) < 0.05).astype(float), T0 + np.arange(100_000.0))
    state = monitor.to_dict()
    assert state["n_buffer"] <= 2048
    assert len(json.dumps(state)) < 1000


def test_malformed_state_is_refused() -> None:
    state = ConceptMonitor(ConceptPolicy(), binary_errors=True).to_dict()
    with pytest.raises(ValueError, match="version"):
        ConceptMonitor.from_dict({**state, "version": 99}, ConceptPolicy())
    with pytest.raises(ValueError, match="malformed"):
        ConceptMonitor.from_dict({**state, "buffer": "!!"}, ConceptPolicy())
    with pytest.raises(ValueError, match="malformed"):
        ConceptMonitor.from_dict({**state, "pending": [[1, 2]]}, ConceptPolicy())


# -------------------------------------------------------------- alert lifecycle
def observe(tracker: AlertTracker, result: object, t: float, feature: str = "(predictions)"):  # type: ignore[no-untyped-def]
    return tracker.observe(
        model="fraud",
        model_version="7",
        feature=feature,
        result=result,  # type: ignore[arg-type]
        window_start=t - 300,
        window_end=t,
        evaluated_at=t + 5,
        reference_id="ref-1",
    )


def test_concept_drift_fires_after_one_window_and_resolves_after_resolve_after() -> None:
    policy = AlertPolicy(
        fire_after=3,
        resolve_after=2,
        cooldown_seconds=0,
        runbook_base_url="https://runbooks.test/runbook.md",
    )
    tracker = AlertTracker(policy)
    monitor = ConceptMonitor(ConceptPolicy(), binary_errors=True, min_pairs=30)
    errors = shifted(3000, 3000, 0.05, 0.3, seed=7)
    monitor.update(errors[:3000], T0 + np.arange(3000.0))
    assert observe(tracker, monitor.observe_window(T0, T0 + 3000), T0 + 3000) is None
    (_hit,) = monitor.update(errors[3000:], T0 + 3000 + np.arange(3000.0))
    fired = observe(tracker, monitor.observe_window(T0 + 3000, T0 + 6000), T0 + 6000)
    assert fired is not None and fired.status == "firing"  # one window, not fire_after=3
    assert fired.category == "concept_drift" and fired.statistic == "concept_drift"
    assert fired.feature == "(predictions)" and fired.severity == "critical"
    assert fired.runbook_url == "https://runbooks.test/runbook.md#streamdriftconceptdrift"
    assert fired.value == 1.0 and fired.threshold == 1.0
    assert "concept drift — the model's error rate rose from" in fired.summary
    assert "ADWIN detected a change at" in fired.summary
    # Windows without a detection: too few pairs -> not judged (no resolve) ...
    monitor.update(np.zeros(10), T0 + 6000 + np.arange(10.0))
    assert observe(tracker, monitor.observe_window(T0 + 6000, T0 + 6300), T0 + 6300) is None
    assert tracker.state("fraud", "(predictions)", "concept_drift") is Severity.CRITICAL
    # ... then two judged quiet windows resolve it.
    rng = np.random.default_rng(9)
    alerts = []
    for k in range(2):
        t = T0 + 6600 + 300 * k
        monitor.update((rng.random(300) < 0.3).astype(float), t - 300 + np.arange(300.0))
        alerts.append(observe(tracker, monitor.observe_window(t - 300, t), t))
    assert alerts[0] is None
    resolved = alerts[1]
    assert resolved is not None and resolved.status == "resolved"
    assert resolved.alert_id == fired.alert_id
    assert (
        "concept drift over" in resolved.summary and "model-card --model fraud" in resolved.summary
    )


def test_other_statistics_still_wait_for_fire_after() -> None:
    tracker = AlertTracker(AlertPolicy(fire_after=2))
    r = MultivariateResult("domain_auc", 0.71, 0.58, None, True, Severity.WARNING, 500, 500)
    assert observe(tracker, r, T0, "(all features)") is None
    fired = observe(tracker, r, T0 + 300, "(all features)")
    assert fired is not None and fired.category == "multivariate"


def test_multivariate_alert_resolves_above_half_not_towards_zero() -> None:
    policy = AlertPolicy(fire_after=1, resolve_after=1, cooldown_seconds=0)
    tracker = AlertTracker(policy)
    high = MultivariateResult(
        "domain_auc",
        0.71,
        0.58,
        None,
        True,
        Severity.WARNING,
        1024,
        1024,
        top_features=("amount", "age"),
    )
    fired = observe(tracker, high, T0, "(all features)")
    assert fired is not None
    assert "AUC 0.71 (threshold 0.58" in fired.summary
    assert "features it relies on most: amount, age." in fired.summary
    # Resolve level 0.5 + (0.58 - 0.5) * 0.8 = 0.564: 0.57 keeps it open, 0.52 resolves.
    band = MultivariateResult("domain_auc", 0.57, 0.58, None, False, Severity.OK, 1024, 1024)
    assert observe(tracker, band, T0 + 300, "(all features)") is None
    low = MultivariateResult("domain_auc", 0.52, 0.58, None, False, Severity.OK, 1024, 1024)
    resolved = observe(tracker, low, T0 + 600, "(all features)")
    assert resolved is not None and resolved.status == "resolved"
    assert (
        "multivariate drift over" in resolved.summary and "resolve level 0.56" in resolved.summary
    )


def test_regression_text_uses_mean_absolute_error() -> None:
    tracker = AlertTracker(AlertPolicy(fire_after=2))
    r = ConceptDriftResult(
        "concept_drift",
        2.0,
        1.0,
        None,
        True,
        Severity.WARNING,
        900,
        1500,
        detector="page_hinkley",
        detected_at=T0 + 4320,
        error_before=3.2,
        error_after=7.9,
        error_now=7.5,
        regression=True,
    )
    fired = observe(tracker, r, T0 + 4500)
    assert fired is not None and fired.severity == "warning"
    assert fired.summary == (
        "fraud v7: concept drift — the model's mean absolute error rose from 3.2 to 7.9 "
        "(Page-Hinkley detected 2 changes, the first at 2026-12-02T01:12:00Z); "
        "labelled pairs since the last window: 1,500."
    )
