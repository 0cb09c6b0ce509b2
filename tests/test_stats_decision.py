"""Decisions across features: Benjamini–Hochberg, evaluate_window, decisive statistics, top bins."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from stream_drift.stats import (
    KS,
    PSI,
    CategoricalBinning,
    ChiSquare,
    DriftResult,
    Histogram,
    JSDistance,
    NumericBinning,
    Severity,
    benjamini_hochberg,
    correct_across_features,
    default_statistics,
    evaluate_window,
    top_bins,
)

p_values = st.lists(
    st.one_of(
        st.floats(0.0, 1.0),
        st.sampled_from([0.0, 1.0, 1e-6, 0.001, 0.01, 0.02, 0.05]),
    ),
    max_size=40,
)
alphas = st.one_of(st.sampled_from([0.001, 0.01, 0.05, 0.1]), st.floats(1e-4, 0.5))


def brute_force_bh(p: list[float], alpha: float) -> list[bool]:
    """Textbook step-up: find the largest k with p_(k) <= k·alpha/m, reject p <= p_(k)."""
    m = len(p)
    ranked = sorted(p)
    for k in range(m, 0, -1):
        if ranked[k - 1] <= alpha * k / m:
            return [x <= ranked[k - 1] for x in p]
    return [False] * m


@settings(max_examples=200, deadline=None)
@given(p=p_values, alpha=alphas)
def test_bh_matches_brute_force(p: list[float], alpha: float) -> None:
    assert benjamini_hochberg(p, alpha) == brute_force_bh(p, alpha)


@settings(max_examples=200, deadline=None)
@given(p=p_values.filter(bool), alpha=alphas)
def test_bh_matches_scipy(p: list[float], alpha: float) -> None:
    m = len(p)
    ranked = sorted(p)
    # Stay clear of float ties between the two ways of writing the same comparison.
    assume(all(abs(ranked[k - 1] * m / k - alpha) > 1e-9 * alpha for k in range(1, m + 1)))
    adjusted = sps.false_discovery_control(np.array(p), method="bh")
    assert benjamini_hochberg(p, alpha) == [bool(a <= alpha) for a in adjusted]


@settings(max_examples=100, deadline=None)
@given(p=p_values, alpha=alphas, data=st.data())
def test_bh_properties(p: list[float], alpha: float, data: st.DataObject) -> None:
    rejected = benjamini_hochberg(p, alpha)
    m = len(p)
    assert len(rejected) == m
    # Between Bonferroni and no correction.
    for pi, r in zip(p, rejected, strict=True):
        if pi <= alpha / m:
            assert r
        if r:
            assert pi <= alpha
    # Monotone: a smaller p-value than a rejected one is rejected too.
    for pi, ri in zip(p, rejected, strict=True):
        for pj, rj in zip(p, rejected, strict=True):
            if ri and pj <= pi:
                assert rj
    # Equivariant under permutation of the hypotheses.
    perm = data.draw(st.permutations(range(m)))
    assert benjamini_hochberg([p[i] for i in perm], alpha) == [rejected[i] for i in perm]


def test_bh_edge_cases() -> None:
    assert benjamini_hochberg([], 0.05) == []
    assert benjamini_hochberg([0.05], 0.05) == [True]
    assert benjamini_hochberg([0.0500001], 0.05) == [False]
    # Step-up: the 3rd p-value passes its own bar (3·0.05/4), which pulls in the 2nd.
    assert benjamini_hochberg([0.001, 0.03, 0.036, 0.9], 0.05) == [True, True, True, False]
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            benjamini_hochberg([0.01], bad)


# --- correct_across_features -----------------------------------------------------------------


def _result(p: float, *, judged: bool = True, drift: bool = True, name: str = "psi"):
    return DriftResult(name, 0.3, 0.1, p, drift and judged, Severity.CRITICAL, 1000, 1000, judged)


def test_correction_demotes_rejected_drifts_only() -> None:
    psi = PSI(false_alarm_rate=0.01)
    results = {
        "strong": _result(1e-9),
        "borderline": _result(0.004),
        **{f"null{i}": _result(0.9, drift=False) for i in range(20)},
    }
    out = correct_across_features(results, psi)
    assert out["strong"] == results["strong"]
    assert out["borderline"] == dataclasses.replace(
        results["borderline"], is_drift=False, severity=Severity.OK
    )
    assert all(out[f"null{i}"] == results[f"null{i}"] for i in range(20))
    # The input mapping is left alone.
    assert results["borderline"].is_drift


def test_correction_is_step_up_not_bonferroni() -> None:
    # Three drifts at p = 0.004, 0.006, 0.009 (rate 1 %): the largest passes its own bar
    # (3 · 0.01 / 3), so BH keeps all three; Bonferroni (0.01 / 3) would drop them all.
    results = {"a": _result(0.004), "b": _result(0.006), "c": _result(0.009)}
    out = correct_across_features(results, PSI(false_alarm_rate=0.01))
    assert out == results
    # m = 5, bars 0.002, 0.004, 0.006, 0.008, 0.01: ranks 1 and 2 pass, 3 and 4 do not;
    # Bonferroni (0.002) would keep only "a".
    results = {
        "a": _result(0.001),
        "b": _result(0.0035),
        "c": _result(0.009),
        "d": _result(0.0095),
        "e": _result(0.5, drift=False),
    }
    out = correct_across_features(results, PSI(false_alarm_rate=0.01))
    assert {k: r.is_drift for k, r in out.items()} == {
        "a": True,
        "b": True,
        "c": False,
        "d": False,
        "e": False,
    }


def test_unjudged_and_foreign_results_take_no_part() -> None:
    psi = PSI(false_alarm_rate=0.01)
    base = {"strong": _result(1e-9), "borderline": _result(0.004)}
    # Alone, rank 2 of 2: 0.004 <= 2 · 0.01 / 2, kept.
    assert correct_across_features(base, psi)["borderline"].is_drift
    unjudged = {f"small{i}": _result(0.9, judged=False) for i in range(50)}
    foreign = {f"ks{i}": _result(0.9, name="ks") for i in range(50)}
    out = correct_across_features({**base, **unjudged, **foreign}, psi)
    assert out["borderline"].is_drift
    # Counted as tests, the same null results would have removed it.
    judged_nulls = {f"null{i}": _result(0.9, drift=False) for i in range(50)}
    assert not correct_across_features({**base, **judged_nulls}, psi)["borderline"].is_drift


def test_fixed_threshold_is_not_corrected() -> None:
    results = {"borderline": _result(0.004), **{f"n{i}": _result(0.9) for i in range(50)}}
    fixed = PSI(threshold=0.1, false_alarm_rate=None)
    assert correct_across_features(results, fixed) == results
    fixed_with_rate = PSI(threshold=0.1, false_alarm_rate=0.01)
    assert correct_across_features(results, fixed_with_rate) == results


# --- evaluate_window -------------------------------------------------------------------------

CAT = CategoricalBinning(["a", "b"])
RATE = 0.01


def _cat(counts: list[int], missing: int = 0) -> Histogram:
    return Histogram(CAT, counts, missing)


def _window(n_null: int) -> tuple[dict[str, Histogram], dict[str, Histogram]]:
    refs = {"strong": _cat([5000, 5000, 0]), "borderline": _cat([5000, 5000, 0])}
    curs = {"strong": _cat([700, 300, 0]), "borderline": _cat([547, 453, 0])}
    for i in range(n_null):
        refs[f"null{i}"] = _cat([5000, 5000, 0])
        curs[f"null{i}"] = _cat([500, 500, 0])
    return refs, curs


STATS = [
    PSI(false_alarm_rate=RATE, min_effect=0.0, min_samples=10),
    ChiSquare(false_alarm_rate=RATE, min_samples=10),
]


def test_borderline_drift_is_removed_by_bh_among_many_null_features() -> None:
    # Precondition, checked independently: the borderline feature's two-sample test gives
    # p ≈ 0.005: significant at 1 % alone, not after correcting over 22 features.
    p = sps.chi2_contingency([[5000, 5000], [547, 453]], correction=False)[1]
    assert 0.002 < p < 0.008

    refs, curs = _window(n_null=20)
    raw = evaluate_window(refs, curs, STATS, correction="none")
    assert raw["borderline"].drift and raw["strong"].drift
    assert raw["borderline"].results["chi2"].is_drift
    assert not any(raw[f"null{i}"].drift for i in range(20))

    corrected = evaluate_window(refs, curs, STATS, correction="bh")
    for stat in ("psi", "chi2"):
        r = corrected["borderline"].results[stat]
        assert not r.is_drift and r.severity is Severity.OK
        # Only the verdict changes; the numbers stay.
        assert r.value == raw["borderline"].results[stat].value
        assert r.p_value == raw["borderline"].results[stat].p_value
        assert corrected["strong"].results[stat].is_drift
    assert not corrected["borderline"].drift
    assert corrected["borderline"].severity is Severity.OK
    assert corrected["strong"].drift

    # With no null features to correct for, BH keeps it (rank 2 of 2).
    refs, curs = _window(n_null=0)
    assert evaluate_window(refs, curs, STATS, correction="bh")["borderline"].drift


def test_bh_keeps_a_cluster_of_borderline_drifts() -> None:
    refs = {f: _cat([5000, 5000, 0]) for f in ("x", "y", "z")}
    # p ≈ 0.0046, 0.0055, 0.0066: each alone significant at 1 %; BH keeps all three
    # (largest p <= 3 · 0.01 / 3), Bonferroni (0.01 / 3) would keep none.
    curs = {"x": _cat([547, 453, 0]), "y": _cat([546, 454, 0]), "z": _cat([545, 455, 0])}
    out = evaluate_window(refs, curs, STATS, correction="bh")
    for f in ("x", "y", "z"):
        p = out[f].results["psi"].p_value
        assert p is not None and 0.01 / 3 < p < 0.01
        assert out[f].drift


def test_evaluate_window_skips_features_without_a_current_histogram() -> None:
    refs, curs = _window(n_null=2)
    del curs["null1"]
    out = evaluate_window(refs, curs, STATS)
    assert set(out) == {"strong", "borderline", "null0"}
    with pytest.raises(ValueError, match="correction"):
        evaluate_window(refs, curs, STATS, correction="bonferroni")


# Fine bins [<1, 1–2, 2–3, ≥3]; coarse bins split at 2. The current moves mass inside the
# coarse bins: the fine CDF changes (KS sees it), the coarse counts do not (PSI cannot).
NUM = NumericBinning([1.0, 2.0, 3.0], [2.0])
NUM_REF = Histogram(NUM, [500, 500, 500, 500])
NUM_CUR = Histogram(NUM, [900, 100, 100, 900], missing=250)


def test_decisive_statistics_decide_the_feature() -> None:
    stats = [PSI(min_effect=0.0), KS(min_effect=0.0)]
    refs, curs = {"x": NUM_REF}, {"x": NUM_CUR}

    by_psi = evaluate_window(refs, curs, stats)["x"]
    assert by_psi.decisive == ("psi",)
    assert by_psi.results["ks"].is_drift and not by_psi.results["psi"].is_drift
    assert not by_psi.drift and by_psi.severity is Severity.OK

    by_ks = evaluate_window(refs, curs, stats, decisive=("ks",))["x"]
    assert by_ks.drift and by_ks.severity is by_ks.results["ks"].severity
    assert by_ks.severity is Severity.CRITICAL  # KS = 0.2 >= 0.15

    both = evaluate_window(refs, curs, stats, decisive=("psi", "ks"))["x"]
    assert both.drift and both.severity is Severity.CRITICAL

    # A decisive statistic that does not apply to the kind decides nothing.
    by_chi2 = evaluate_window(refs, curs, [*stats, ChiSquare()], decisive=("chi2",))["x"]
    assert "chi2" not in by_chi2.results
    assert not by_chi2.drift and by_chi2.severity is Severity.OK


def test_each_statistic_runs_on_its_grid_and_kind() -> None:
    out = evaluate_window(
        {"x": NUM_REF, "c": _cat([50, 50, 0])},
        {"x": NUM_CUR, "c": _cat([20, 70, 10], missing=5)},
        default_statistics(min_samples=10),
    )
    x, c = out["x"], out["c"]
    quality = {"missing_rate", "mismatch_rate"}  # every kind, on the missing/mismatch counts
    assert set(x.results) == {"psi", "kl", "js", "ks"} | quality
    assert set(c.results) == {"psi", "kl", "js", "chi2"} | quality
    assert x.results["missing_rate"].value == pytest.approx(250 / 2250)
    assert (x.results["missing_rate"].n_current, c.results["missing_rate"].n_current) == (2250, 105)
    assert x.kind == "numeric" and c.kind == "categorical"
    # KS on the fine grid: CDF gaps at the fine edges 0.25 vs 0.45, 0.5 vs 0.5, 0.75 vs 0.55.
    assert x.results["ks"].value == pytest.approx(0.2, abs=1e-12)
    # PSI and JS on the coarse grid, where nothing moved.
    assert x.results["psi"].value == pytest.approx(0.0, abs=1e-12)
    assert x.results["js"].value == pytest.approx(0.0, abs=1e-12)
    assert PSI().value(NUM_REF.counts, NUM_CUR.counts) > 0.3  # (the fine grid would differ)
    assert JSDistance().value([50, 50, 0], [20, 70, 10]) == c.results["js"].value
    # Sizes and missing ratio of the current window.
    assert (x.n_reference, x.n_current) == (2000, 2000)
    assert x.missing_ratio == pytest.approx(250 / 2250)
    assert c.missing_ratio == pytest.approx(5 / 105)
    assert x.judged and c.judged
    json.dumps(x.to_dict())


def test_top_bins_order() -> None:
    b = CategoricalBinning(["a", "b", "c"])
    ref = Histogram(b, [25, 25, 25, 25])
    cur = Histogram(b, [10, 30, 45, 15])
    # Share changes: a −0.15, b +0.05, c +0.20, unseen −0.10.
    assert top_bins(ref, cur, k=3) == [
        {"bin": "c", "reference": 0.25, "current": 0.45},
        {"bin": "a", "reference": 0.25, "current": 0.1},
        {"bin": "__unseen__", "reference": 0.25, "current": 0.15},
    ]
    assert [t["bin"] for t in top_bins(ref, cur, k=10)] == ["c", "a", "__unseen__", "b"]
    # Ties keep bin order.
    assert [t["bin"] for t in top_bins(ref, Histogram(b, [15, 35, 25, 25]))][:2] == ["a", "b"]
    # Nothing to compare against.
    assert top_bins(ref, Histogram(b)) == []
    assert top_bins(Histogram(b), cur) == []


def test_top_bins_use_coarse_labels() -> None:
    ref = Histogram(NUM, [500, 500, 500, 500])
    cur = Histogram(NUM, [100, 100, 900, 900])
    tops = top_bins(ref, cur, k=2)
    assert [t["bin"] for t in tops] == ["(-inf, 2)", "[2, +inf)"]
    assert tops[0] == {"bin": "(-inf, 2)", "reference": 0.5, "current": 0.1}
    refs, curs = {"x": ref}, {"x": cur}
    assert evaluate_window(refs, curs, [PSI()])["x"].top_bins == top_bins(ref, cur)
