"""Statistics against independent computations: scipy, hand-worked arithmetic, simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from stream_drift.stats import (
    KL,
    KS,
    PSI,
    ChiSquare,
    Histogram,
    JSDistance,
    NumericBinning,
    smoothed_proportions,
)

LN2 = math.log(2.0)


@st.composite
def count_pairs(draw: st.DrawFn, max_bins: int = 15, max_count: int = 500) -> tuple:
    """Two count vectors over the same bins, each with at least one observation."""
    k = draw(st.integers(2, max_bins))
    vec = st.lists(st.integers(0, max_count), min_size=k, max_size=k)
    ref = np.array(draw(vec))
    cur = np.array(draw(vec))
    assume(ref.sum() > 0 and cur.sum() > 0)
    return ref, cur


# --- KS --------------------------------------------------------------------------------------


def _ks_samples(kind: str, seed: int, n_ref: int, n_cur: int, shift: float):
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.normal(size=n_ref), rng.normal(shift, 1.0 + abs(shift), size=n_cur)
    if kind == "zeros":  # 90 % zeros, the rest continuous
        ref = np.where(rng.random(n_ref) < 0.9, 0.0, rng.exponential(size=n_ref))
        p0 = min(0.9 + shift / 10, 0.99)
        cur = np.where(rng.random(n_cur) < p0, 0.0, rng.exponential(1 + shift, size=n_cur))
        return ref, cur
    if kind == "ints":  # integers 0..3, heavily tied
        return rng.integers(0, 4, size=n_ref), rng.integers(0, 4 + int(shift * 2), size=n_cur)
    # "rounded": continuous values rounded to one decimal: many ties, many distinct values
    return (
        np.round(rng.normal(size=n_ref), 1),
        np.round(rng.normal(shift, 1.0, size=n_cur), 1),
    )


@settings(max_examples=80, deadline=None)
@given(
    kind=st.sampled_from(["normal", "zeros", "ints", "rounded"]),
    seed=st.integers(0, 2**32 - 1),
    n_ref=st.integers(5, 3000),
    n_cur=st.integers(5, 3000),
    shift=st.floats(0.0, 2.0),
    n_bins=st.integers(2, 100),
)
def test_binned_ks_is_within_its_error_bound_of_the_exact_statistic(
    kind: str, seed: int, n_ref: int, n_cur: int, shift: float, n_bins: int
) -> None:
    ref, cur = _ks_samples(kind, seed, n_ref, n_cur, shift)
    b = NumericBinning.fit(ref, n_bins=n_bins, n_coarse=10)
    r = Histogram(b).add(ref).counts
    c = Histogram(b).add(cur).counts
    exact = sps.ks_2samp(ref, cur, method="asymp").statistic
    binned = KS().value(r, c)
    bound = KS.error_bound(r, c)
    assert binned <= exact + 1e-12
    assert exact <= binned + bound + 1e-12
    # The bound is the largest bin mass on either side.
    assert bound == pytest.approx(max(r.max() / r.sum(), c.max() / c.sum()), rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    support=st.integers(2, 12),
    n_ref=st.integers(50, 3000),
    n_cur=st.integers(50, 3000),
    tilt=st.floats(0.0, 3.0),
)
def test_ks_is_exact_when_every_value_has_its_own_bin(
    seed: int, support: int, n_ref: int, n_cur: int, tilt: float
) -> None:
    """Values on a grid with one bin per value: binned D and p-value equal scipy's."""
    rng = np.random.default_rng(seed)
    values = np.arange(support, dtype=float)
    weights = np.exp(-tilt * values / support)
    ref = np.r_[values, rng.choice(values, size=n_ref - support)]
    cur = rng.choice(values, size=n_cur, p=weights / weights.sum())
    b = NumericBinning(values[1:])
    r = Histogram(b).add(ref).counts
    c = Histogram(b).add(cur).counts
    scipy_result = sps.ks_2samp(ref, cur, method="asymp")
    ks = KS(min_samples=1, min_effect=0.0, false_alarm_rate=0.001)
    assert ks.value(r, c) == pytest.approx(scipy_result.statistic, abs=1e-12)
    result = ks.evaluate(r, c)
    assert result.p_value == pytest.approx(scipy_result.pvalue, rel=1e-9, abs=1e-300)
    # The decision at a false-alarm rate agrees with scipy's p-value (away from the boundary).
    if abs(scipy_result.pvalue - 0.001) > 1e-6:
        assert result.is_drift == (scipy_result.pvalue <= 0.001)


def test_ks_p_value_on_a_large_continuous_sample() -> None:
    rng = np.random.default_rng(11)
    ref = rng.normal(size=50_000)
    cur = rng.normal(0.03, 1.0, size=4_000)
    exact = sps.ks_2samp(ref, cur, method="asymp")
    ks = KS()
    # As a function of D, the p-value is scipy's asymptotic one.
    assert ks.p_value(exact.statistic, ref.size, cur.size, 0) == pytest.approx(
        exact.pvalue, rel=1e-9
    )
    b = NumericBinning.fit(ref, n_bins=100, n_coarse=10)
    r = Histogram(b).add(ref).counts
    c = Histogram(b).add(cur).counts
    result = ks.evaluate(r, c)
    # The binned D is a lower bound, so the binned p-value is conservative ...
    assert result.value <= exact.statistic + 1e-12
    assert result.p_value is not None
    assert result.p_value >= exact.pvalue
    # ... and close: D is within the bound, which is about one percent with 100 quantile bins.
    assert exact.statistic - result.value <= 0.02
    assert result.p_value == pytest.approx(
        sps.kstwo.sf(result.value, round(ref.size * cur.size / (ref.size + cur.size))), rel=1e-9
    )


@settings(max_examples=50, deadline=None)
@given(
    d=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=2).map(sorted),
    n_ref=st.integers(1, 10**6),
    n_cur=st.integers(1, 10**5),
)
def test_ks_p_value_is_monotone_and_inverts_the_quantile(
    d: list[float], n_ref: int, n_cur: int
) -> None:
    ks = KS()
    lo, hi = (ks.p_value(x, n_ref, n_cur, 0) for x in d)
    assert 0.0 <= hi <= lo <= 1.0
    q = ks.null_quantile(0.01, n_ref, n_cur, 0)
    # (scipy's kstwo isf/sf pair is consistent to about 1e-4.)
    assert ks.p_value(q, n_ref, n_cur, 0) == pytest.approx(0.01, rel=1e-3)


def test_ks_hand_worked() -> None:
    # CDF at the edges: ref 0.25, 0.50, 0.75; cur 0.1, 0.2, 0.6 -> gaps 0.15, 0.30, 0.15.
    assert KS().value([25, 25, 25, 25], [10, 10, 40, 40]) == pytest.approx(0.3, abs=1e-12)
    # Largest bin mass: 0.4 on the current side.
    assert KS.error_bound([25, 25, 25, 25], [10, 10, 40, 40]) == pytest.approx(0.4)
    # The last edge (+inf) never counts, a single bin has no gap at all.
    assert KS().value([1, 0], [0, 1]) == pytest.approx(1.0)
    assert KS().value([7], [3]) == 0.0


# --- chi-square ------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(pair=count_pairs())
def test_chi_square_matches_scipy_contingency(pair: tuple) -> None:
    ref, cur = pair
    table = np.vstack([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    assume(table.shape[1] >= 2)
    stat, p, dof, _ = sps.chi2_contingency(table, correction=False)
    chi = ChiSquare(min_samples=1, false_alarm_rate=0.01, min_effect=0.0)
    assert chi.value(ref, cur) == pytest.approx(stat, rel=1e-9, abs=1e-9)
    result = chi.evaluate(ref, cur)
    assert result.p_value == pytest.approx(p, rel=1e-7, abs=1e-12)
    # The degrees of freedom used for the threshold are scipy's.
    assert result.threshold == pytest.approx(sps.chi2.isf(0.01, dof), rel=1e-12)
    assert chi.p_value(stat, int(ref.sum()), int(cur.sum()), dof) == pytest.approx(p, rel=1e-7)


def test_chi_square_hand_worked() -> None:
    # 2 x 2 table [[30, 70], [60, 40]]: expected 45/55 in each row;
    # (15² / 45 + 15² / 55) · 2 = 18.1818...
    expected = 2 * (15**2 / 45 + 15**2 / 55)
    assert ChiSquare().value([30, 70, 0], [60, 40, 0]) == pytest.approx(expected, rel=1e-12)
    # A single occupied category: no evidence either way.
    assert ChiSquare().value([30, 0], [60, 0]) == 0.0


# --- PSI, KL, JS -----------------------------------------------------------------------------


def test_smoothed_proportions_hand_worked() -> None:
    # Occupied bins only; 0.5 added to each; n + 0.5·B in the denominator.
    r, c = smoothed_proportions([10, 0, 0], [5, 5, 0])
    np.testing.assert_allclose(r, [10.5 / 11, 0.5 / 11], rtol=1e-15)
    np.testing.assert_allclose(c, [5.5 / 11, 5.5 / 11], rtol=1e-15)


def test_divergences_hand_worked_with_an_empty_bin_on_one_side() -> None:
    ref, cur = [40, 60, 0], [100, 60, 40]  # bin 2 is empty in the reference only
    # Smoothed: (count + 0.5) / (n + 0.5·3)
    r = [40.5 / 101.5, 60.5 / 101.5, 0.5 / 101.5]
    c = [100.5 / 201.5, 60.5 / 201.5, 40.5 / 201.5]
    psi = (
        (c[0] - r[0]) * math.log(c[0] / r[0])
        + (c[1] - r[1]) * math.log(c[1] / r[1])
        + (c[2] - r[2]) * math.log(c[2] / r[2])
    )
    kl = r[0] * math.log(r[0] / c[0]) + r[1] * math.log(r[1] / c[1]) + r[2] * math.log(r[2] / c[2])
    m = [(r[i] + c[i]) / 2 for i in range(3)]
    js = math.sqrt(
        0.5 * sum(r[i] * math.log(r[i] / m[i]) / LN2 for i in range(3))
        + 0.5 * sum(c[i] * math.log(c[i] / m[i]) / LN2 for i in range(3))
    )
    # The same numbers, worked out once on paper/calculator.
    assert psi == pytest.approx(0.952257, abs=1e-6)
    assert kl == pytest.approx(0.301436, abs=1e-6)
    assert js == pytest.approx(0.355063, abs=1e-6)
    # Finite, and large: the new range is visible, not silently dropped.
    assert PSI().value(ref, cur) == pytest.approx(psi, rel=1e-12)
    assert KL().value(ref, cur) == pytest.approx(kl, rel=1e-12)
    assert JSDistance().value(ref, cur) == pytest.approx(js, rel=1e-12)
    assert math.isfinite(PSI().value(ref, cur)) and PSI().value(ref, cur) > 0.2
    # Empty on the current side instead: still finite.
    assert math.isfinite(KL().value([40, 60, 10], [100, 60, 0]))


def test_divergences_ignore_a_bin_empty_on_both_sides() -> None:
    ref, cur = [40, 0, 60], [50, 0, 150]
    # Bin 1 takes no part: B = 2, denominators n + 0.5·2.
    r = [40.5 / 101, 60.5 / 101]
    c = [50.5 / 201, 150.5 / 201]
    psi = (c[0] - r[0]) * math.log(c[0] / r[0]) + (c[1] - r[1]) * math.log(c[1] / r[1])
    kl = r[0] * math.log(r[0] / c[0]) + r[1] * math.log(r[1] / c[1])
    assert psi == pytest.approx(0.103422, abs=1e-6)
    assert kl == pytest.approx(0.053808, abs=1e-6)
    assert PSI().value(ref, cur) == pytest.approx(psi, rel=1e-12)
    assert KL().value(ref, cur) == pytest.approx(kl, rel=1e-12)
    # Exactly as if the empty bin did not exist, wherever it sits.
    for stat in (PSI(), KL(), JSDistance(), ChiSquare(), KS()):
        assert stat.value(ref, cur) == pytest.approx(stat.value([40, 60], [50, 150]), rel=1e-12)
    for stat in (PSI(), KL(), JSDistance(), ChiSquare()):
        assert stat.value([0, *ref, 0], [0, *cur, 0]) == pytest.approx(
            stat.value([40, 60], [50, 150]), rel=1e-12
        )
    # ... and the degrees of freedom ignore it too.
    res = PSI(min_samples=1, min_effect=0.0, false_alarm_rate=0.001).evaluate(ref, cur)
    assert res.threshold == pytest.approx((1 / 200 + 1 / 100) * sps.chi2.isf(0.001, 1))


def test_large_sample_hand_worked() -> None:
    # 50/50 vs 90/10 with 100,000 values per side: smoothing negligible.
    assert PSI().value([50_000, 50_000], [90_000, 10_000]) == pytest.approx(
        0.4 * math.log(0.9 / 0.5) + (-0.4) * math.log(0.1 / 0.5), abs=1e-4
    )
    assert KL().value([50_000, 50_000], [90_000, 10_000]) == pytest.approx(
        0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1), abs=1e-4
    )
    js2 = 0.5 * (0.5 * math.log2(0.5 / 0.7) + 0.5 * math.log2(0.5 / 0.3)) + 0.5 * (
        0.9 * math.log2(0.9 / 0.7) + 0.1 * math.log2(0.1 / 0.3)
    )
    assert JSDistance().value([50_000, 50_000], [90_000, 10_000]) == pytest.approx(
        math.sqrt(js2), abs=1e-4
    )


@settings(max_examples=100, deadline=None)
@given(pair=count_pairs())
def test_divergences_match_scipy_on_smoothed_proportions(pair: tuple) -> None:
    ref, cur = pair
    r, c = smoothed_proportions(ref, cur)
    occupied = (ref > 0) | (cur > 0)
    np.testing.assert_allclose(r, (ref[occupied] + 0.5) / (ref.sum() + 0.5 * occupied.sum()))
    np.testing.assert_allclose(c, (cur[occupied] + 0.5) / (cur.sum() + 0.5 * occupied.sum()))
    assert JSDistance().value(ref, cur) == pytest.approx(
        jensenshannon(r, c, base=2), rel=1e-9, abs=1e-9
    )
    assert KL().value(ref, cur) == pytest.approx(sps.entropy(r, c), rel=1e-9, abs=1e-12)
    # PSI is the symmetrised KL divergence.
    assert PSI().value(ref, cur) == pytest.approx(
        sps.entropy(r, c) + sps.entropy(c, r), rel=1e-9, abs=1e-12
    )
    # Symmetry where it is promised.
    assert PSI().value(ref, cur) == pytest.approx(PSI().value(cur, ref), rel=1e-9, abs=1e-12)
    assert JSDistance().value(ref, cur) == pytest.approx(
        JSDistance().value(cur, ref), rel=1e-9, abs=1e-12
    )
    assert 0.0 <= JSDistance().value(ref, cur) <= 1.0


def test_kl_is_asymmetric() -> None:
    assert KL().value([90, 10], [50, 50]) != pytest.approx(KL().value([50, 50], [90, 10]))


@pytest.mark.parametrize("rate", [0.05, 0.01, 0.001])
@pytest.mark.parametrize(("n_ref", "n_cur", "bins"), [(100_000, 1000, 10), (5000, 200, 4)])
def test_null_quantiles_follow_the_chi_square_approximation(
    rate: float, n_ref: int, n_cur: int, bins: int
) -> None:
    unit = (1 / n_cur + 1 / n_ref) * sps.chi2.isf(rate, bins - 1)
    assert PSI().null_quantile(rate, n_ref, n_cur, bins - 1) == pytest.approx(unit, rel=1e-12)
    assert KL().null_quantile(rate, n_ref, n_cur, bins - 1) == pytest.approx(unit / 2, rel=1e-12)
    assert JSDistance().null_quantile(rate, n_ref, n_cur, bins - 1) == pytest.approx(
        math.sqrt(unit / (8 * LN2)), rel=1e-12
    )
    assert ChiSquare().null_quantile(rate, n_ref, n_cur, bins - 1) == pytest.approx(
        sps.chi2.isf(rate, bins - 1), rel=1e-12
    )
    n_eff = round(n_ref * n_cur / (n_ref + n_cur))
    assert KS().null_quantile(rate, n_ref, n_cur, 0) == pytest.approx(
        sps.kstwo.isf(rate, n_eff), rel=1e-12
    )


# --- calibration under no drift ---------------------------------------------------------------

N_REF, N_CUR, N_WINDOWS = 100_000, 1000, 2000


@pytest.fixture(scope="module")
def null_windows() -> tuple[NumericBinning, Histogram, np.ndarray]:
    """2,000 windows of 1,000 values drawn from the reference distribution (fine counts)."""
    rng = np.random.default_rng(20240501)
    ref = rng.normal(size=N_REF)
    b = NumericBinning.fit(ref, n_bins=100, n_coarse=10)
    idx = b.assign(rng.normal(size=N_WINDOWS * N_CUR)).reshape(N_WINDOWS, N_CUR)
    offsets = np.arange(N_WINDOWS)[:, None] * b.n_bins
    fine = np.bincount((idx + offsets).ravel(), minlength=N_WINDOWS * b.n_bins)
    return b, Histogram(b).add(ref), fine.reshape(N_WINDOWS, b.n_bins)


def test_psi_false_alarm_rate_under_no_drift(
    null_windows: tuple[NumericBinning, Histogram, np.ndarray],
) -> None:
    b, ref, fine = null_windows
    assert b.n_coarse == 10
    psi = PSI(false_alarm_rate=0.05, min_effect=0.0)
    results = [psi.evaluate(ref.coarse_counts(), b.coarsen(w)) for w in fine]
    p = np.array([r.p_value for r in results])
    assert 0.02 <= np.mean(p < 0.05) <= 0.09
    # The threshold is the scaled chi-square quantile and flags the same windows.
    expected = (1 / N_CUR + 1 / N_REF) * sps.chi2.isf(0.05, b.n_coarse - 1)
    thresholds = np.array([r.threshold for r in results])
    np.testing.assert_allclose(thresholds, expected, rtol=1e-12)
    assert psi.null_quantile(0.05, N_REF, N_CUR, b.n_coarse - 1) == pytest.approx(
        expected, rel=1e-12
    )
    flagged = np.array([r.is_drift for r in results])
    assert np.array_equal(flagged, p <= 0.05)
    # p-values are roughly uniform: about half of them below 0.5.
    assert 0.4 <= np.mean(p < 0.5) <= 0.6


@pytest.mark.parametrize("cls", [KL, JSDistance, KS, ChiSquare])
def test_other_statistics_false_alarm_rate_under_no_drift(
    cls: type, null_windows: tuple[NumericBinning, Histogram, np.ndarray]
) -> None:
    b, ref, fine = null_windows
    stat = cls(false_alarm_rate=0.05, min_effect=0.0)
    grid = (lambda counts: counts) if stat.grid == "fine" else b.coarsen
    r = grid(ref.counts)
    # Every window has the same sizes and (with this many values) every bin occupied,
    # hence one threshold.
    threshold = stat.evaluate(r, grid(fine[0])).threshold
    values = np.array([stat.value(r, grid(w)) for w in fine])
    assert 0.02 <= np.mean(values >= threshold) <= 0.09
