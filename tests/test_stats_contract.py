"""One contract suite run over every statistic in ``STATISTICS`` (River style).

The drift statistics (divergences) and the data-quality ones (rates of missing or mismatched
values, :class:`~stream_drift.stats.RateStatistic`) share every property once two notions are
read generically: the value of a window identical to the reference is ``stat.baseline(ref)``
(0 for a divergence, the reference's own rate for a rate), from which ``min_effect`` is
measured; and a "shift" moves mass into the last bin, since a rate statistic is one-sided
(it tests for a rise of the last bin's share, the flagged values).
"""

from __future__ import annotations

import itertools
import json
import math
import random

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from stream_drift.stats import (
    STATISTICS,
    CategoricalBinning,
    DriftResult,
    Histogram,
    NumericBinning,
    RateStatistic,
    Severity,
    Statistic,
)
from stream_drift.stats.histogram import GRIDS

CLASSES = list(STATISTICS.values())
FAST = settings(max_examples=50, deadline=None)

pytestmark = pytest.mark.parametrize("cls", CLASSES, ids=[c.name for c in CLASSES])


def test_registry_is_complete(cls: type[Statistic]) -> None:
    assert STATISTICS[cls.name] is cls
    assert set(STATISTICS) == {"psi", "kl", "js", "ks", "chi2", "missing_rate", "mismatch_rate"}
    assert cls.grid in GRIDS
    assert cls.kinds and cls.kinds <= {"numeric", "categorical"}


# --- helpers ---------------------------------------------------------------------------------

CATEGORIES = list("abcdefgh")


def _kind(cls: type[Statistic]) -> str:
    return "numeric" if "numeric" in cls.kinds else "categorical"


def _sample(cls: type[Statistic], rng: np.random.Generator, n: int, shift: float) -> list:
    """Raw values of the statistic's kind; ``shift`` moves the distribution.

    For a rate statistic ``shift`` moves the shares of missing (None) and mismatched
    ("n/a" in a numeric series) values instead: 5 % each with no shift, up to 45 %.
    """
    if issubclass(cls, RateStatistic):
        share = min(0.05 + 0.2 * shift, 0.45)
        kind = rng.choice(3, size=n, p=[1 - 2 * share, share, share])
        values = rng.normal(0.0, 1.0, size=n).tolist()
        pick = zip(values, kind, strict=True)
        return [v if k == 0 else None if k == 1 else "n/a" for v, k in pick]
    if _kind(cls) == "numeric":
        return rng.normal(shift, 1.0, size=n).tolist()
    w = np.exp(-np.arange(len(CATEGORIES)) * (0.5 - shift))
    return rng.choice(CATEGORIES, size=n, p=w / w.sum()).tolist()


def _binning(cls: type[Statistic], reference: list) -> NumericBinning | CategoricalBinning:
    if _kind(cls) == "numeric":
        return NumericBinning.fit(reference, n_bins=50, n_coarse=8)
    return CategoricalBinning.fit(reference, top_k=5)


def _grid(stat: Statistic, h: Histogram) -> np.ndarray:
    return h.grid_counts(stat.grid)


def _evaluate(stat: Statistic, ref: Histogram, cur: Histogram) -> DriftResult:
    return stat.evaluate(_grid(stat, ref), _grid(stat, cur))


@st.composite
def count_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Two count vectors over the same bins; sometimes nearly identical (rounding stress)."""
    k = draw(st.integers(1, 12))
    vec = st.lists(st.integers(0, 1000), min_size=k, max_size=k)
    ref = np.array(draw(vec))
    if draw(st.booleans()):
        cur = np.array(draw(vec))
    else:
        scale = draw(st.sampled_from([1, 3, 100]))
        nudge = np.array(draw(st.lists(st.integers(-1, 1), min_size=k, max_size=k)))
        cur = np.maximum(ref * scale + nudge, 0)
    assume(ref.sum() > 0 and cur.sum() > 0)
    return ref, cur


def _shifted_pair(cls: type[Statistic], n_ref: int, n_cur: int, shift: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    ref_raw = _sample(cls, rng, n_ref, 0.0)
    b = _binning(cls, ref_raw)
    return Histogram(b).add(ref_raw), Histogram(b).add(_sample(cls, rng, n_cur, shift))


# --- value properties ------------------------------------------------------------------------


@FAST
@given(pair=count_pairs())
def test_identical_inputs_give_the_baseline(cls: type[Statistic], pair: tuple) -> None:
    """Zero for a divergence; the reference's own rate for a rate statistic. Never a drift."""
    counts, _ = pair
    stat = cls(min_samples=1)
    baseline = stat.baseline(counts)
    assert baseline == 0.0 or issubclass(cls, RateStatistic)
    assert 0.0 <= stat.value(counts, counts) - baseline <= 1e-9
    r = stat.evaluate(counts, counts)
    assert r.value - baseline <= 1e-9
    assert not r.is_drift and r.severity is Severity.OK


@FAST
@given(pair=count_pairs())
def test_value_is_non_negative_and_p_value_a_probability(cls: type[Statistic], pair: tuple) -> None:
    ref, cur = pair
    stat = cls(min_samples=1)
    value = stat.value(ref, cur)
    assert math.isfinite(value) and value >= 0.0
    r = stat.evaluate(ref, cur)
    assert r.p_value is not None and 0.0 <= r.p_value <= 1.0
    assert r.threshold >= 0.0
    assert r.value == value


@FAST
@given(pair=count_pairs(), rate=st.sampled_from([0.05, 0.01, 0.001]))
def test_drift_decision_agrees_with_the_p_value(
    cls: type[Statistic], pair: tuple, rate: float
) -> None:
    """With no floor, ``value >= null quantile`` is the same event as ``p <= rate``.

    ``min_effect=0`` leaves the baseline as the only floor: a rate statistic never flags a
    window below the reference's own rate (0 for a divergence: no floor at all)."""
    ref, cur = pair
    stat = cls(false_alarm_rate=rate, min_effect=0.0, min_samples=1)
    r = stat.evaluate(ref, cur)
    assert r.p_value is not None
    assume(abs(r.p_value - rate) > 1e-4 * rate)
    assert r.is_drift == (r.p_value <= rate and r.value >= stat.baseline(ref))


def test_the_baseline_floor_holds_on_a_tiny_reference(cls: type[Statistic]) -> None:
    """The case that needs it: a one-value reference, all in the last bin. A rate statistic
    finds a window at 1,999 of 2,000 in the last bin significant (p = 0.04: one reference
    value leaves its rate very uncertain) but below the reference's 100 %: no drift."""
    stat = cls(false_alarm_rate=0.05, min_effect=0.0, min_samples=1)
    r = stat.evaluate([0, 1], [1, 1999])
    assert r.p_value is not None
    assert not r.is_drift or (r.p_value <= 0.05 and r.value >= stat.baseline([0, 1]))
    if issubclass(cls, RateStatistic):
        assert r.p_value < 0.05 and r.threshold == 1.0 and not r.is_drift


# --- state: batch, incremental, merged -------------------------------------------------------


@FAST
@given(seed=st.integers(0, 2**32 - 1), data=st.data())
def test_batch_incremental_and_merged_histograms_give_the_same_result(
    cls: type[Statistic], seed: int, data: st.DataObject
) -> None:
    rng = np.random.default_rng(seed)
    ref_raw = _sample(cls, rng, 400, 0.0)
    cur_raw = _sample(cls, rng, 300, data.draw(st.floats(0.0, 0.5)))
    b = _binning(cls, ref_raw)
    ref = Histogram(b).add(ref_raw)
    stat = cls(min_samples=50)
    expected = _evaluate(stat, ref, Histogram(b).add(cur_raw))

    cuts = sorted(data.draw(st.lists(st.integers(0, len(cur_raw)), max_size=8)))
    pieces = [cur_raw[a:c] for a, c in zip([0, *cuts], [*cuts, len(cur_raw)], strict=True)]
    incremental = Histogram(b)
    for piece in pieces:
        incremental.add(piece)
    assert _evaluate(stat, ref, incremental) == expected

    # Partial histograms merged in any order and grouping.
    partials = [Histogram(b).add(p) for p in pieces]
    shuffler = random.Random(data.draw(st.integers(0, 2**32 - 1)))
    while len(partials) > 1:
        i, j = shuffler.sample(range(len(partials)), 2)
        merged = partials[i].merge(partials[j])
        partials = [p for k, p in enumerate(partials) if k not in (i, j)] + [merged]
    assert _evaluate(stat, ref, partials[0]) == expected


def test_params_round_trip(cls: type[Statistic]) -> None:
    variants = [
        cls(false_alarm_rate=0.02, min_effect=0.001, min_samples=37, critical=0.3),
        cls(threshold=0.07, false_alarm_rate=None, min_effect=0.0, min_samples=5),
        cls(),
    ]
    ref, cur = _shifted_pair(cls, 2000, 500, 0.1)
    small_ref, small_cur = _shifted_pair(cls, 60, 40, 0.3, seed=1)
    for s in variants:
        clone = type(s)(**s.get_params())
        assert clone.get_params() == s.get_params()
        assert repr(clone) == repr(s)
        assert repr(s).startswith(f"{cls.__name__}(")
        assert _evaluate(clone, ref, cur) == _evaluate(s, ref, cur)
        assert _evaluate(clone, small_ref, small_cur) == _evaluate(s, small_ref, small_cur)


def test_constructor_arguments_are_stored_as_given(cls: type[Statistic]) -> None:
    s = cls(threshold=0.5, false_alarm_rate=0.01, min_effect=0.2, min_samples=7, critical=0.9)
    assert s.get_params() == {
        "threshold": 0.5,
        "false_alarm_rate": 0.01,
        "min_effect": 0.2,
        "min_samples": 7,
        "critical": 0.9,
    }


# --- the result ------------------------------------------------------------------------------


def test_result_is_a_typed_drift_result(cls: type[Statistic]) -> None:
    ref, cur = _shifted_pair(cls, 3000, 800, 0.5)
    r = _evaluate(cls(), ref, cur)
    assert isinstance(r, DriftResult)
    assert r.statistic == cls.name
    assert type(r.value) is float and math.isfinite(r.value)
    assert type(r.threshold) is float and math.isfinite(r.threshold)
    assert type(r.p_value) is float
    assert type(r.is_drift) is bool
    assert type(r.severity) is Severity
    assert type(r.n_reference) is int and r.n_reference == _grid(cls(), ref).sum() == 3000
    assert type(r.n_current) is int and r.n_current == _grid(cls(), cur).sum() == 800
    assert type(r.judged) is bool and r.judged
    d = json.loads(json.dumps(r.to_dict()))
    assert d["statistic"] == cls.name
    assert d["severity"] == r.severity.label


# --- decisions -------------------------------------------------------------------------------


def test_obvious_shift_is_detected(cls: type[Statistic]) -> None:
    ref, cur = _shifted_pair(cls, 5000, 2000, 2.0)
    r = _evaluate(cls(), ref, cur)
    assert r.judged and r.is_drift
    assert r.severity is not Severity.OK
    assert r.p_value is not None and r.p_value < 1e-6
    assert r.value >= r.threshold


def test_no_shift_is_not_flagged(cls: type[Statistic]) -> None:
    ref, cur = _shifted_pair(cls, 20_000, 2000, 0.0, seed=5)
    r = _evaluate(cls(), ref, cur)
    assert r.judged and not r.is_drift and r.severity is Severity.OK


@pytest.mark.parametrize("short_side", ["current", "reference"])
def test_below_min_samples_is_not_judged(cls: type[Statistic], short_side: str) -> None:
    n_ref, n_cur = (5000, 99) if short_side == "current" else (99, 5000)
    ref, cur = _shifted_pair(cls, n_ref, n_cur, 2.0)
    stat = cls(min_samples=100)
    r = _evaluate(stat, ref, cur)
    assert not r.judged
    assert not r.is_drift
    assert r.severity is Severity.OK
    # The value is still computed and reported.
    assert r.value > 0.0 and r.p_value is not None
    # One more value on the short side and the same shift is judged (and flagged).
    assert _evaluate(cls(min_samples=99), ref, cur).is_drift


def test_empty_side_gives_no_value(cls: type[Statistic]) -> None:
    stat = cls(min_samples=1)
    for ref, cur in (([0, 0, 0], [5, 1, 2]), ([5, 1, 2], [0, 0, 0])):
        r = stat.evaluate(ref, cur)
        assert r.value == 0.0 and r.p_value is None
        assert not r.judged and not r.is_drift


def test_bins_must_match(cls: type[Statistic]) -> None:
    with pytest.raises(ValueError):
        cls().evaluate([1, 2, 3], [1, 2])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": None, "false_alarm_rate": None},
        {"false_alarm_rate": 0.0},
        {"false_alarm_rate": 1.0},
        {"threshold": -0.1},
        {"min_samples": 0},
    ],
)
def test_invalid_parameters_are_rejected(cls: type[Statistic], kwargs: dict) -> None:
    with pytest.raises(ValueError, match=cls.name):
        cls(**kwargs)


def test_threshold_from_false_alarm_rate_shrinks_as_n_grows(cls: type[Statistic]) -> None:
    stat = cls(false_alarm_rate=0.001, min_effect=0.0)
    sizes = [100, 1_000, 10_000, 100_000]
    thresholds = [stat.threshold_for(1_000_000, n, 9) for n in sizes]
    assert all(t > 0 for t in thresholds)
    assert all(a >= b for a, b in itertools.pairwise(thresholds))
    if cls.name != "chi2":
        # Effect-size statistics: strictly smaller thresholds for larger windows.
        # (Pearson's chi-square grows with n instead, so its threshold is fixed; the
        # next test checks that for it too the smallest flagged shift shrinks.)
        assert all(a > b for a, b in itertools.pairwise(thresholds))
        assert thresholds[-1] < thresholds[0] / 10
    # A lower false-alarm rate means a higher threshold.
    assert cls(false_alarm_rate=0.05, min_effect=0.0).threshold_for(1_000_000, 1000, 9) < cls(
        false_alarm_rate=0.0001, min_effect=0.0
    ).threshold_for(1_000_000, 1000, 9)


def test_small_shift_is_flagged_only_with_enough_samples(cls: type[Statistic]) -> None:
    stat = cls(false_alarm_rate=0.001, min_effect=0.0, min_samples=10)

    def shifted(n: int) -> DriftResult:
        return stat.evaluate([n // 2, n // 2], [n * 47 // 100, n * 53 // 100])

    small, large = shifted(200), shifted(200_000)
    assert small.judged and not small.is_drift
    assert large.judged and large.is_drift


def test_fixed_threshold_overrides_the_false_alarm_rate(cls: type[Statistic]) -> None:
    ref, cur = _shifted_pair(cls, 5000, 2000, 2.0)
    obvious = _evaluate(cls(), ref, cur)
    above = cls(threshold=obvious.value * 2, min_effect=0.0)
    below = cls(threshold=obvious.value / 2, false_alarm_rate=None, min_effect=0.0)
    r_above, r_below = _evaluate(above, ref, cur), _evaluate(below, ref, cur)
    assert r_above.threshold == obvious.value * 2 and not r_above.is_drift
    assert r_below.threshold == obvious.value / 2 and r_below.is_drift
    # The fixed threshold does not move with the sample sizes.
    for n in (100, 10_000, 1_000_000):
        assert above.threshold_for(10**6, n, 9) == obvious.value * 2


def test_min_effect_floors_the_threshold(cls: type[Statistic]) -> None:
    # A small shift with huge samples: significant, but below a chosen effect floor.
    counts_ref, counts_cur = [500_000, 500_000], [470_000, 530_000]
    free = cls(false_alarm_rate=0.001, min_effect=0.0, min_samples=10)
    r_free = free.evaluate(counts_ref, counts_cur)
    assert r_free.is_drift and r_free.p_value is not None and r_free.p_value < 1e-6
    floor = 2 * r_free.value
    floored = cls(false_alarm_rate=0.001, min_effect=floor, min_samples=10)
    r = floored.evaluate(counts_ref, counts_cur)
    # min_effect is measured from the value of an unchanged window (0, or the reference rate).
    assert r.threshold == floored.baseline(counts_ref) + floor
    assert not r.is_drift and r.severity is Severity.OK
    # The floor only ever raises a threshold, fixed or from the false-alarm rate.
    assert cls(threshold=5.0, min_effect=1.0).threshold_for(10, 10, 1) == 5.0
    assert cls(threshold=0.5, min_effect=1.0).threshold_for(10, 10, 1) == 1.0
    for n in (10, 1_000, 1_000_000):
        q = free.threshold_for(1_000_000, n, 1)
        assert floored.threshold_for(1_000_000, n, 1) == max(q, floor)


def test_severity_follows_the_critical_level(cls: type[Statistic]) -> None:
    ref, cur = _shifted_pair(cls, 5000, 2000, 2.0)
    value = _evaluate(cls(), ref, cur).value
    assert _evaluate(cls(critical=value * 1.5), ref, cur).severity is Severity.WARNING
    assert _evaluate(cls(critical=value), ref, cur).severity is Severity.CRITICAL
    default = _evaluate(cls(), ref, cur).severity
    if cls.critical_value is None:
        assert default is Severity.CRITICAL
    else:
        assert default is (Severity.CRITICAL if value >= cls.critical_value else Severity.WARNING)
        s = cls(threshold=0.0, false_alarm_rate=None, min_effect=0.0)
        assert s.severity_of(cls.critical_value * 0.99, True) is Severity.WARNING
        assert s.severity_of(cls.critical_value, True) is Severity.CRITICAL
    assert cls().severity_of(1e9, False) is Severity.OK
