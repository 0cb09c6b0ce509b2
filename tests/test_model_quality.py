"""Stage 2's model quality without Kafka: labelled pairs in, performance, concept-drift alerts
and join counts out of the evaluator, and all of it through a state round trip."""

from __future__ import annotations

import json

import numpy as np
from test_evaluator import REF, STEP, T0, _alerts, _decision, _partial, _policy, _values

from stream_drift.config import ConceptPolicy, LabelsPolicy, MultivariatePolicy
from stream_drift.pipeline.alert_text import format_timestamp
from stream_drift.pipeline.evaluator import CONCEPT_FEATURE, ModelEvaluator
from stream_drift.pipeline.labels import LabelOutcomes
from stream_drift.pipeline.model_quality import QualityPolicies
from stream_drift.pipeline.partials import Tick, decode_message
from stream_drift.pipeline.registry import ReferenceRegistry

POLICIES = QualityPolicies(
    labels=LabelsPolicy(min_pairs=20),
    concept=ConceptPolicy(detector="adwin"),
    multivariate=MultivariatePolicy(enabled=False),
)


def _evaluator() -> ModelEvaluator:
    registry = ReferenceRegistry()
    registry.add(REF)
    return ModelEvaluator(
        "m", registry, _policy(), _decision(fast=True), _alerts(fire_after=2), POLICIES
    )


def _pairs(
    rng: np.random.Generator, n: int, start: float, error_rate: float
) -> list[tuple[float, float, int]]:
    """Binary pairs with scores; a share ``error_rate`` of them on the wrong side of 0.5."""
    ts = np.sort(rng.uniform(start, start + STEP, n))
    labels = rng.integers(0, 2, n)
    wrong = rng.random(n) < error_rate
    right_score = np.where(labels == 1, rng.uniform(0.5, 1, n), rng.uniform(0, 0.5, n))
    score = np.where(wrong, 1 - right_score, right_score)
    score = np.clip(score, 0.001, 0.999)
    return [(float(t), float(s), int(y)) for t, s, y in zip(ts, score, labels, strict=True)]


def _window(ev: ModelEvaluator, rng: np.random.Generator, k: int) -> list[object]:
    """Feed step ``k``'s events and close it; the results and alerts."""
    start = T0 + k * STEP
    ev.handle(_partial("a", {start: _values(rng, 200)}, start + 1, offset_end=k + 1), 0)
    out = ev.handle(Tick(start + 10 * STEP), start + 10 * STEP)
    return [*out.results, *out.alerts]


def test_performance_of_the_pairs_is_in_the_window_result() -> None:
    rng = np.random.default_rng(3)
    ev = _evaluator()
    ev.handle(_partial("a", {T0: _values(rng, 200)}, T0 + 1, offset_end=1), 0)
    pairs = _pairs(rng, 300, T0, error_rate=0.2)
    msg = LabelOutcomes("m", "1", "l/0", pairs, {"joined": 300, "duplicate": 4, "expired": 2})
    # Through the wire as stage 2 gets it.
    out = ev.handle(decode_message(msg.to_bytes()), 0)
    scores = np.array([p[1] for p in pairs])
    labels = np.array([p[2] for p in pairs])
    accuracy = float(np.mean((scores >= 0.5) == (labels == 1)))
    assert out.performance["1"]["accuracy"] == accuracy  # the gauges
    block = ev.quality["1"].performance()
    assert block is not None and block["n_pairs"] == 300
    result = ev.handle(Tick(T0 + 10 * STEP), T0 + 10 * STEP).results[0]
    record = json.loads(json.dumps(result.to_dict()))
    assert record["performance"]["metrics"]["accuracy"] == accuracy
    assert record["performance"]["window"] == {"start": T0, "end": T0 + STEP}
    assert record["label_join"] == {"duplicate": 4, "expired": 2, "joined": 300}
    # Counts are reported once: the next window has none.
    later = _window(ev, rng, 15)[0]
    assert "label_join" not in later.to_dict()  # type: ignore[attr-defined]


def test_too_few_pairs_give_no_performance() -> None:
    rng = np.random.default_rng(4)
    ev = _evaluator()
    ev.handle(_partial("a", {T0: _values(rng, 50)}, T0 + 1, offset_end=1), 0)
    out = ev.handle(LabelOutcomes("m", "1", "l/0", _pairs(rng, 19, T0, 0.1), {}), 0)
    assert out.performance == {}


def test_a_concept_change_fires_one_concept_drift_alert_and_resolves() -> None:
    rng = np.random.default_rng(5)
    ev = _evaluator()
    emitted: list[object] = []
    for k in range(12):
        error = 0.05 if k < 6 else 0.45
        ev.handle(_partial("a", {T0 + k * STEP: _values(rng, 200)}, T0 + k * STEP + 1, k + 1), 0)
        ev.handle(LabelOutcomes("m", "1", "l/0", _pairs(rng, 400, T0 + k * STEP, error), {}), 0)
        out = ev.handle(Tick(T0 + (k + 10) * STEP), T0 + (k + 10) * STEP)
        emitted.extend(out.alerts)
    concept = [a for a in emitted if getattr(a, "statistic", "") == "concept_drift"]
    assert [a.status for a in concept][:1] == ["firing"]
    assert concept[0].feature == CONCEPT_FEATURE
    assert concept[0].category == "concept_drift"
    # Fired in the window of the change (step 6), not before.
    assert concept[0].window.start == format_timestamp(T0 + 6 * STEP)
    # Stable afterwards (no change after step 6): it resolves within the run.
    assert "resolved" in [a.status for a in concept]
    # No feature drift: the marginals never moved.
    assert all(a.statistic == "concept_drift" for a in emitted)


def test_state_round_trip_keeps_the_quality_state() -> None:
    rng = np.random.default_rng(6)
    ev = _evaluator()
    ev.handle(_partial("a", {T0: _values(rng, 200)}, T0 + 1, offset_end=1), 0)
    ev.handle(LabelOutcomes("m", "1", "l/0", _pairs(rng, 100, T0, 0.1), {"joined": 100}), 0)
    registry = ReferenceRegistry()
    registry.add(REF)
    state = json.loads(json.dumps(ev.to_dict()))
    copy = ModelEvaluator.from_dict(
        state, registry, _policy(), _decision(fast=True), _alerts(fire_after=2), POLICIES
    )
    more = _pairs(rng, 100, T0, 0.3)
    a = ev.handle(LabelOutcomes("m", "1", "l/0", more, {"joined": 100}), 0)
    b = copy.handle(LabelOutcomes("m", "1", "l/0", more, {"joined": 100}), 0)
    assert a.performance == b.performance
    assert (ev.quality["1"].performance() or {})["n_pairs"] == 200
    ra = ev.handle(Tick(T0 + 10 * STEP), T0 + 10 * STEP).results[0].to_dict()
    rb = copy.handle(Tick(T0 + 10 * STEP), T0 + 10 * STEP).results[0].to_dict()
    assert ra["label_join"] == rb["label_join"] == {"joined": 200}


def test_pairs_of_a_model_without_reference_are_counted_not_judged() -> None:
    # A version without its own reference is judged against the model's newest, as stage 1
    # bins its events; a model without any reference cannot be judged.
    ev = ModelEvaluator("zz", ReferenceRegistry(), _policy(), _decision(fast=True))
    out = ev.handle(LabelOutcomes("zz", "9", "l/0", [(T0, 0.5, 1)], {"joined": 1}), 0)
    assert out.unmatched_pairs == 1
    assert out.performance == {}


def test_the_label_free_estimate_leads_and_sits_beside_the_realised_accuracy() -> None:
    rng = np.random.default_rng(8)
    ev = _evaluator()
    ev.handle(_partial("a", {T0: _values(rng, 200)}, T0 + 1, offset_end=1), 0)
    scores = rng.uniform(0, 1, 500)
    confidence = {T0: (500, float(np.sum(np.maximum(scores, 1 - scores))))}
    # Before any label: the task is not known yet (no reference performance), no estimate.
    out = ev.handle(LabelOutcomes("m", "1", "ev", [], {}, confidence), 0)
    assert out.performance == {}
    pairs = _pairs(rng, 100, T0, 0.2)
    out = ev.handle(LabelOutcomes("m", "1", "l/0", pairs, {"joined": 100}), 0)
    expected = float(np.mean(np.maximum(scores, 1 - scores)))
    assert out.performance["1"]["expected_accuracy"] == expected
    # Predictions of a later step, no labels yet: the estimate moves on, the realised stays.
    later = rng.uniform(0.4, 0.6, 300)  # unsure scores: a low expected accuracy
    more = {T0 + 5 * STEP: (300, float(np.sum(np.maximum(later, 1 - later))))}
    out = ev.handle(LabelOutcomes("m", "1", "ev", [], {}, more), 0)
    gauges = out.performance["1"]
    assert gauges["expected_accuracy"] == float(np.mean(np.maximum(later, 1 - later)))
    realised = float(np.mean([(s >= 0.5) == (y == 1) for _, s, y in pairs]))
    assert gauges["accuracy"] == realised
    result = ev.handle(Tick(T0 + 10 * STEP), T0 + 10 * STEP).results[0].to_dict()
    # In the result: the realised range with its own estimate, and the latest estimate.
    assert result["performance"]["metrics"]["expected_accuracy"] == expected
    assert result["estimate"]["window"] == {"start": T0 + 5 * STEP, "end": T0 + 6 * STEP}
    assert result["estimate"]["n_predictions"] == 300
