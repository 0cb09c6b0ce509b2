"""Data-quality statistics: missing and type-mismatch rates judged against the reference.

The p-values are checked against independent computations (scipy's own beta-binomial, which
sums the probabilities from 0 upwards, hand-worked cases, and the binomial test they become
as the reference grows); the thresholds against their definition; the false-alarm rate by
simulation, with the reference itself sampled like the windows.
"""

from __future__ import annotations

import math
from fractions import Fraction
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from stream_drift.stats import (
    QUALITY_STATISTICS,
    STATISTICS,
    CategoricalBinning,
    Histogram,
    MismatchRate,
    MissingRate,
    NumericBinning,
    RateResult,
    Severity,
    default_statistics,
    evaluate_window,
)
from stream_drift.stats.quality import _critical_count

FAST = settings(max_examples=80, deadline=None)
RATES = [MissingRate, MismatchRate]


def _independent_p(x: int, n: int, k: int, m: int) -> float:
    """P(X >= x), X ~ BetaBinomial(n, k + 1/2, m - k + 1/2): scipy's probabilities, summed
    over the whole upper range (scipy's own ``sf`` is ``1 - cdf``, which loses small tails)."""
    if x <= 0:
        return 1.0
    xs = np.arange(x, n + 1)
    return float(sps.betabinom.pmf(xs, n, k + 0.5, m - k + 0.5)[::-1].sum())


def _exact_p(x: int, n: int, k: int, m: int) -> Fraction:
    """The same tail in exact rational arithmetic: with half-integer parameters,
    P(X = j) = C(n, j) (a)_j (b)_(n-j) / (a + b)_n, rising factorials of a = k + 1/2,
    b = m - k + 1/2."""
    a, b = Fraction(2 * k + 1, 2), Fraction(2 * (m - k) + 1, 2)

    def rising(base: Fraction, count: int) -> Fraction:
        out = Fraction(1)
        for i in range(count):
            out *= base + i
        return out

    total = rising(a + b, n)
    return sum(
        (math.comb(n, j) * rising(a, j) * rising(b, n - j) / total for j in range(x, n + 1)),
        Fraction(0),
    )


# --- p-values ---------------------------------------------------------------------------------


def test_hand_worked_smallest_case() -> None:
    """m = 1 clean value, n = 2: the rate is Beta(1/2, 3/2); E[p^2] = 1/8 and
    P(X >= 1) = 1 - E[(1-p)^2] = 1 - B(1/2, 7/2)/B(1/2, 3/2) = 1 - 5/8 = 3/8."""
    stat = MissingRate(min_samples=1)
    assert stat.evaluate([1, 0], [0, 2]).p_value == pytest.approx(1 / 8, rel=1e-12)
    assert stat.evaluate([1, 0], [1, 1]).p_value == pytest.approx(3 / 8, rel=1e-12)
    assert stat.evaluate([1, 0], [2, 0]).p_value == 1.0


@FAST
@given(n=st.integers(1, 40), m=st.integers(1, 300), data=st.data())
def test_p_value_matches_exact_rational_arithmetic(n: int, m: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, m))
    x = data.draw(st.integers(0, n))
    r = MismatchRate(min_samples=1).evaluate([m - k, k], [n - x, x])
    assert r.p_value == pytest.approx(float(_exact_p(x, n, k, m)), rel=1e-9, abs=1e-300)


@FAST
@given(n=st.integers(1, 3000), m=st.integers(1, 50_000), data=st.data())
def test_p_value_matches_scipy_beta_binomial(n: int, m: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, m))
    x = data.draw(st.integers(0, n))
    r = MissingRate(min_samples=1).evaluate([m - k, k], [n - x, x])
    assert isinstance(r, RateResult)
    assert r.p_value == pytest.approx(_independent_p(x, n, k, m), rel=1e-8, abs=1e-15)
    assert r.value == x / n and r.reference_rate == k / m
    assert (r.n_reference, r.n_current) == (m, n)


@pytest.mark.parametrize(("x", "n", "k"), [(3, 200, 0), (12, 1000, 5), (80, 1000, 50), (0, 50, 1)])
def test_large_reference_gives_the_binomial_test(x: int, n: int, k: int) -> None:
    """With a reference of 10^9 values the rate is known: scipy's exact binomial test."""
    m = 10**9
    k_big = k * 10**6  # same share of flagged values, known almost exactly
    r = MissingRate(min_samples=1).evaluate([m - k_big, k_big], [n - x, x])
    p0 = (k_big + 0.5) / (m + 1)
    want = sps.binomtest(x, n, p0, alternative="greater").pvalue
    assert r.p_value == pytest.approx(want, rel=1e-3)


@FAST
@given(n=st.integers(1, 2000), m=st.integers(1, 20_000), data=st.data())
def test_p_value_never_rises_with_more_flagged_values(n: int, m: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, m))
    stat = MismatchRate(min_samples=1)
    xs = sorted(data.draw(st.lists(st.integers(0, n), min_size=2, max_size=6)))
    ps = [stat.evaluate([m - k, k], [n - x, x]).p_value for x in xs]
    assert all(a is not None and b is not None and a >= b - 1e-12 for a, b in pairwise(ps))


# --- thresholds -------------------------------------------------------------------------------


@FAST
@given(
    n=st.integers(1, 5000),
    m=st.integers(1, 100_000),
    rate=st.sampled_from([0.05, 0.01, 0.001, 0.0005]),
    data=st.data(),
)
def test_threshold_is_the_smallest_significant_rate(
    n: int, m: int, rate: float, data: st.DataObject
) -> None:
    k = data.draw(st.integers(0, m))
    stat = MissingRate(false_alarm_rate=rate, min_effect=0.0)
    kstar = round(stat.null_quantile(rate, m, n, 1, flagged_reference=k) * n)
    assert 1 <= kstar <= n + 1
    # The threshold: that rate, floored by the reference's own (min_effect 0).
    assert stat.threshold_for(m, n, 1, flagged_reference=k) == max(kstar / n, k / m)
    # Independently: kstar is significant (or unreachable), kstar - 1 is not.
    if kstar <= n:
        assert _independent_p(kstar, n, k, m) <= rate * (1 + 1e-6)
    assert _independent_p(kstar - 1, n, k, m) > rate * (1 - 1e-6)


def test_threshold_floor_is_the_reference_rate_plus_min_effect() -> None:
    stat = MissingRate()  # false_alarm_rate 0.0005, min_effect 0.05
    # 2 % missing in the reference, 10,000-event windows: the floor (7 %) is above the test.
    assert stat.threshold_for(100_000, 10_000, 1, flagged_reference=2000) == pytest.approx(0.07)
    free = MissingRate(min_effect=0.0)
    assert free.threshold_for(100_000, 10_000, 1, flagged_reference=2000) < 0.03
    # Fixed threshold: an absolute rate, still floored.
    assert MissingRate(threshold=0.2).threshold_for(100, 100, 1, flagged_reference=50) == 0.55
    assert MissingRate(threshold=0.2).threshold_for(100, 100, 1, flagged_reference=0) == 0.2
    # Every reference value flagged: no window rate can be significant.
    assert MissingRate(min_effect=0.0).threshold_for(100, 50, 1, flagged_reference=100) == 51 / 50


# --- decisions --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", RATES)
def test_only_a_rise_is_flagged(cls: type[MissingRate]) -> None:
    stat = cls()
    up = stat.evaluate([9000, 1000], [500, 500])
    down = stat.evaluate([5000, 5000], [990, 10])
    assert up.is_drift and up.severity is Severity.CRITICAL
    assert not down.is_drift and down.p_value == pytest.approx(1.0)


def test_severity_is_critical_from_half_the_window() -> None:
    stat = MismatchRate()
    assert stat.evaluate([1000, 0], [700, 300]).severity is Severity.WARNING
    assert stat.evaluate([1000, 0], [500, 500]).severity is Severity.CRITICAL
    assert stat.evaluate([1000, 0], [990, 10]).severity is Severity.OK


def test_min_samples_counts_every_event() -> None:
    """A window whose every value is unusable still has its events: it is judged."""
    stat = MismatchRate()  # min_samples 100
    r = stat.evaluate([1000, 0], [0, 150])
    assert r.judged and r.is_drift and r.value == 1.0
    assert not stat.evaluate([1000, 0], [0, 99]).judged


# --- false alarms -----------------------------------------------------------------------------


def _clopper_pearson(x: int, n: int, level: float = 0.99) -> tuple[float, float]:
    lo = 0.0 if x == 0 else float(sps.beta.ppf((1 - level) / 2, x, n - x + 1))
    hi = 1.0 if x == n else float(sps.beta.ppf(1 - (1 - level) / 2, x + 1, n - x))
    return lo, hi


@pytest.mark.parametrize(
    ("m", "p", "n"),
    [
        (100_000, 0.02, 2000),
        (10_000, 0.2, 5000),  # window half the reference: a plain binomial test fails here
        (1000, 0.05, 1000),  # a warm-up sized reference
        (100_000, 0.0, 1000),
    ],
)
def test_false_alarm_rate_is_at_most_nominal(m: int, p: float, n: int) -> None:
    """No change: the reference and every window drawn from one population. The share of
    windows flagged stays at or below ``false_alarm_rate`` (within a 99 % interval)."""
    rate, trials = 0.01, 100_000
    rng = np.random.default_rng(7)
    flagged_ref = rng.binomial(m, p, size=trials)
    flagged_cur = rng.binomial(n, p, size=trials)
    stat = MissingRate(false_alarm_rate=rate, min_effect=0.0, min_samples=1)
    values, inverse = np.unique(flagged_ref, return_inverse=True)
    kstar = np.array([stat.threshold_for(m, n, 1, flagged_reference=int(k)) for k in values])
    alarms = int(np.count_nonzero(flagged_cur / n >= kstar[inverse]))
    lo, _ = _clopper_pearson(alarms, trials)
    assert lo <= rate, f"{alarms / trials:.4%} of no-change windows flagged, nominal {rate:.2%}"
    # The whole evaluate() path agrees with the vectorised decision on a sample of windows.
    for i in range(200):
        k, x = int(flagged_ref[i]), int(flagged_cur[i])
        r = stat.evaluate([m - k, k], [n - x, x])
        assert r.is_drift == bool(x / n >= kstar[inverse[i]])


def test_default_settings_raise_no_false_alarm_on_clean_windows() -> None:
    """Defaults (rate 0.0005, 5-point floor): 20,000 no-change windows, not one flag."""
    rng = np.random.default_rng(11)
    stat = MissingRate()
    m, p, n = 20_000, 0.03, 500
    k = int(rng.binomial(m, p))
    threshold = stat.threshold_for(m, n, 1, flagged_reference=k)
    assert threshold >= k / m + 0.05
    assert not np.any(rng.binomial(n, p, size=20_000) / n >= threshold)


def test_critical_count_cache_is_keyed_by_everything() -> None:
    a = _critical_count(0.01, 1000, 10.5, 990.5)
    assert a == _critical_count(0.01, 1000, 10.5, 990.5)
    assert _critical_count(0.001, 1000, 10.5, 990.5) > a
    assert _critical_count(0.01, 1000, 20.5, 980.5) > a


# --- from raw values --------------------------------------------------------------------------


def test_registered_and_run_on_every_kind() -> None:
    assert QUALITY_STATISTICS == {"missing_rate", "mismatch_rate"} <= set(STATISTICS)
    assert STATISTICS["missing_rate"] is MissingRate
    assert STATISTICS["mismatch_rate"] is MismatchRate
    rng = np.random.default_rng(3)
    ref_age = rng.normal(40, 10, 5000).tolist()
    num = NumericBinning.fit(ref_age)
    cat = CategoricalBinning.fit(["DE", "FR"] * 2500)
    window_age: list[object] = rng.normal(40, 10, 2000).tolist()
    window_age[:840] = ["forty"] * 840  # 42 %: an upstream type change
    refs = {"age": Histogram(num).add(ref_age), "country": Histogram(cat).add(["DE"] * 5000)}
    curs = {
        "age": Histogram(num).add(window_age),
        "country": Histogram(cat).add(["DE"] * 1500 + [None] * 500),
    }
    out = evaluate_window(
        refs, curs, default_statistics(), decisive=("psi", "missing_rate", "mismatch_rate")
    )
    age, country = out["age"], out["country"]
    # age: 42 % not numbers, judged a type mismatch, not missing; PSI sees the 1,160 numbers.
    assert age.results["mismatch_rate"].is_drift
    assert age.results["mismatch_rate"].value == pytest.approx(0.42)
    assert not age.results["missing_rate"].is_drift and age.missing_ratio == 0.0
    assert age.mismatch_ratio == pytest.approx(0.42)
    assert not age.results["psi"].is_drift
    assert age.data_quality and not age.drift and age.severity is Severity.OK
    # country: 25 % null, a categorical series: missing, no mismatch.
    assert country.results["missing_rate"].is_drift
    assert not country.results["mismatch_rate"].is_drift
    assert country.data_quality
    d = country.to_dict()
    assert d["missing_rate"] == pytest.approx(0.25) and d["data_quality"] is True
    assert d["results"]["missing_rate"]["reference_rate"] == 0.0


def test_benjamini_hochberg_applies_across_features() -> None:
    """Quality p-values are corrected across a model's features like the drift ones."""
    b = CategoricalBinning(["a"])
    ref = Histogram(b, [10_000, 0], missing=100)  # 1 % missing
    # 20 features; one at a borderline rise that survives alone but not among 20 tests.
    stat = MissingRate(false_alarm_rate=0.01, min_effect=0.0)
    border = Histogram(b, [980, 0], missing=20)  # 2 % of 1,000: p = 0.005
    alone = stat.evaluate(ref.grid_counts("missing"), border.grid_counts("missing"))
    assert alone.is_drift and alone.p_value is not None and alone.p_value > 0.01 / 20
    refs = {f"f{i}": ref for i in range(20)}
    curs = {f"f{i}": Histogram(b, [990, 0], missing=10) for i in range(20)}
    curs["f0"] = border
    out = evaluate_window(refs, curs, [stat])
    assert not out["f0"].results["missing_rate"].is_drift
    assert not math.isnan(out["f0"].results["missing_rate"].value)
