"""The domain classifier: a correlation flip with unchanged marginals is caught, a null
stream is not, and the pieces (codes, AUC, calibration) are checked on their own."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from stream_drift.pipeline.domain import (
    DomainClassifier,
    mann_whitney_auc,
    null_auc_sd,
    reference_codes,
    sample_series,
)
from stream_drift.pipeline.reference import build_reference
from stream_drift.stats.evaluate import evaluate_feature
from stream_drift.stats.psi import PSI

RHO = 0.8


def _rows(rho: float, n: int, seed: int) -> list[dict[str, Any]]:
    """x1, x2 jointly normal with correlation ``rho`` (unit marginals), x3 independent, a
    categorical c independent of them."""
    rng = np.random.default_rng(seed)
    x = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], n)
    x3 = rng.normal(size=n)
    c = rng.choice(["a", "b", "c"], n)
    return [
        {"x1": float(a), "x2": float(b), "x3": float(d), "c": str(e)}
        for a, b, d, e in zip(x[:, 0], x[:, 1], x3, c, strict=True)
    ]


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {k: [r[k] for r in rows] for k in rows[0]}


REF = build_reference(_columns(_rows(RHO, 20_000, 0)), model="m")
REF_CODES = reference_codes(REF, _rows(RHO, 5_000, 1))  # H4's reservoir of raw rows


@pytest.fixture(scope="module")
def classifier() -> DomainClassifier:
    return DomainClassifier(REF, REF_CODES, min_rows=200, calibration_splits=12)


def test_codes_follow_the_layout_with_the_references_bins() -> None:
    assert sample_series(REF) == ("c", "x1", "x2", "x3")
    rows: list[dict[str, object]] = [
        {"x1": 0.0, "x2": -50.0, "x3": 50.0, "c": "b"},
        {"x1": None, "x2": "1.5", "c": "zz"},  # missing, wrong kind, unseen category
        {"c": True},  # a bool category reads "true": unseen
    ]
    codes = reference_codes(REF, rows)
    x1 = REF.series["x1"].binning
    assert codes.shape == (3, 4) and codes.dtype == np.int64
    categories = list(REF.series["c"].binning.categories)
    unseen = len(categories)
    assert codes[0].tolist() == [
        categories.index("b"),
        int(np.searchsorted(x1.edges, 0.0, side="right")),
        0,
        REF.series["x3"].binning.n_bins - 1,
    ]
    assert codes[1].tolist() == [unseen, -1, -1, -1]
    assert codes[2].tolist() == [unseen, -1, -1, -1]
    assert reference_codes(REF, []).shape == (0, 4)


def test_auc_is_mann_whitney_u_over_the_pairs() -> None:
    rng = np.random.default_rng(3)
    scores = np.round(rng.uniform(size=500), 2)  # ties on purpose
    labels = rng.integers(0, 2, 500)
    u = mannwhitneyu(scores[labels == 1], scores[labels == 0]).statistic
    n1, n0 = int(labels.sum()), int((1 - labels).sum())
    assert mann_whitney_auc(scores, labels) == pytest.approx(u / (n1 * n0), abs=1e-12)
    assert mann_whitney_auc([1.0, 2.0], [1, 1]) != mann_whitney_auc([1.0, 2.0], [1, 1])  # nan


def test_a_correlation_flip_is_caught_though_every_marginal_is_unchanged(
    classifier: DomainClassifier,
) -> None:
    flipped = _rows(-RHO, 320, 11)
    result = classifier.evaluate(reference_codes(REF, flipped), seed=1)
    assert result is not None
    assert result.n_rows == 320
    assert result.auc > result.threshold and result.is_drift
    assert set(result.top_features[:2]) == {"x1", "x2"}
    # Per feature, PSI sees nothing on the same rows.
    columns = _columns(flipped)
    psi = PSI()
    for name in ("x1", "x2", "x3", "c"):
        series = REF.series[name]
        current = series.empty().add(columns[name])
        verdict = evaluate_feature(name, series.histogram, current, [psi]).results["psi"]
        assert not verdict.is_drift, (name, verdict)


def test_the_same_distribution_stays_below_the_threshold(classifier: DomainClassifier) -> None:
    for seed in range(3):
        result = classifier.evaluate(reference_codes(REF, _rows(RHO, 320, 20 + seed)), seed=seed)
        assert result is not None and not result.is_drift, result


def test_too_few_rows_give_no_verdict(classifier: DomainClassifier) -> None:
    assert classifier.evaluate(REF_CODES[:199]) is None
    assert classifier.evaluate(np.empty((0, 4), dtype=np.int64)) is None


def test_a_window_result_is_deterministic(classifier: DomainClassifier) -> None:
    rows = reference_codes(REF, _rows(-RHO, 250, 5))
    assert classifier.evaluate(rows, seed=4) == classifier.evaluate(rows, seed=4)


def test_the_threshold_rises_as_the_false_alarm_rate_falls() -> None:
    thresholds = [
        DomainClassifier(REF, REF_CODES, false_alarm_rate=rate, calibration_splits=8).threshold(200)
        for rate in (0.1, 0.01, 0.001, 0.0001)
    ]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == 4
    # ...and never below the Mann-Whitney bound of exchangeable scores.
    assert thresholds[2] >= 0.5 + 3.09 * null_auc_sd(200, 200)


def test_buckets_are_conservative_and_the_calibration_is_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dc = DomainClassifier(REF, REF_CODES, calibration_splits=4, max_rows=1000)
    assert [dc.bucket(n) for n in (200, 282, 283, 399, 400, 5000)] == [
        200,
        200,
        282,
        282,
        400,
        1000,
    ]
    t = dc.threshold(300)
    assert dc.thresholds == {282: t}
    # Saved and restored: no calibration run again.
    restored = DomainClassifier(REF, REF_CODES, thresholds=dc.thresholds)

    def fail(*_: object, **__: object) -> None:
        raise AssertionError("calibrated again")

    monkeypatch.setattr(restored, "_run", fail)
    assert restored.threshold(350) == t


def test_no_reference_rows_is_an_error() -> None:
    with pytest.raises(ValueError, match="reference rows"):
        DomainClassifier(REF, np.empty((0, 4), dtype=np.int64))
