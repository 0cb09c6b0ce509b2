"""Bin layouts: quantile edges on tied data, missing values, coarse grid, categorical top-K."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_drift.stats import (
    MISMATCH,
    MISSING,
    UNSEEN,
    Binning,
    CategoricalBinning,
    Histogram,
    NumericBinning,
    binning_from_dict,
)
from stream_drift.stats.psi import PSI

FAST = settings(max_examples=60, deadline=None)

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
# Numeric samples with many ties: small integers mixed with arbitrary floats.
tied_samples = st.lists(
    st.one_of(st.integers(-3, 3), st.sampled_from([0.0, 0.5, 1.0]), finite),
    min_size=1,
    max_size=300,
)


def _bin_of(x: float, edges: list[float]) -> int:
    """Independent fine-bin rule: the number of edges at or below ``x``."""
    return sum(1 for e in edges if e <= x)


def _check_layout(b: NumericBinning, sample: list[float]) -> None:
    edges = b.edges.tolist()
    coarse = b.coarse_edges.tolist()
    # No duplicate (or unsorted) edges, all finite.
    assert all(a < c for a, c in itertools.pairwise(edges))
    assert all(math.isfinite(e) for e in edges)
    # Coarse edges are a strictly increasing subset of the fine edges.
    assert set(coarse) <= set(edges)
    assert all(a < c for a, c in itertools.pairwise(coarse))
    # coarse_map: monotone, starts at 0, ends at the last coarse bin, never skips one.
    cmap = b.coarse_map.tolist()
    assert len(cmap) == b.n_bins
    assert cmap[0] == 0 and cmap[-1] == b.n_coarse - 1
    assert all(d in (0, 1) for d in np.diff(cmap).tolist())
    # Every fine bin of the reference histogram holds at least one reference value, except the
    # outer bins that keep values outside the reference range apart: (-inf, min) and
    # (max, +inf), which hold none.
    h = Histogram(b).add(sample)
    assert h.missing == 0
    assert h.n == len(sample)
    low, high = _separated(b, sample)
    inner = h.counts[int(low) : h.counts.size - int(high)]
    assert np.all(inner > 0), h.counts
    assert (not low or h.counts[0] == 0) and (not high or h.counts[-1] == 0), h.counts
    # Hence there are no more bins than distinct values, plus the two outer ones.
    assert b.n_bins <= len(set(sample)) + int(low) + int(high)
    # The outer edges are on the coarse grid too, so PSI sees what KS sees at the range's ends.
    assert low <= (min(sample) in coarse)
    assert high <= (math.nextafter(max(sample), math.inf) in coarse)


def _separated(b: NumericBinning, sample: list[float]) -> tuple[bool, bool]:
    """Whether the layout keeps values below (above) the reference range in a bin of their own."""
    edges = b.edges.tolist()
    low = bool(edges) and edges[0] == min(sample)
    high = bool(edges) and edges[-1] == math.nextafter(max(sample), math.inf)
    return low, high


def _outside(sample: list[float]) -> list[float]:
    """Finite values just and far outside the sample's range."""
    lo, hi = min(sample), max(sample)
    near = [math.nextafter(lo, -math.inf), lo - 1.0, -1e300, math.nextafter(hi, math.inf)]
    return [w for w in [*near, hi + 1.0, 1e300] if math.isfinite(w) and not lo <= w <= hi]


@FAST
@given(sample=tied_samples, n_bins=st.integers(1, 120), n_coarse=st.integers(1, 15))
def test_fit_on_tied_data_leaves_no_empty_reference_bin(
    sample: list[float], n_bins: int, n_coarse: int
) -> None:
    b = NumericBinning.fit(sample, n_bins=n_bins, n_coarse=n_coarse)
    _check_layout(b, [float(x) for x in sample])
    # At most the two outer bins more than asked for.
    assert b.n_bins <= n_bins + 2
    assert b.n_coarse <= min(n_coarse + 2, b.n_bins)


@FAST
@given(sample=tied_samples, n_bins=st.integers(1, 120), n_coarse=st.integers(1, 15))
def test_repeated_reference_values_never_share_a_bin_with_values_outside_the_range(
    sample: list[float], n_bins: int, n_coarse: int
) -> None:
    """A point mass of the reference (a value seen twice or more, or a constant column's only
    value) that moves outside the reference range changes the fine histogram; on the coarse grid
    it can only share a bin with outside values through the coarse grid's own merging of inner
    bins, never through an outer bin."""
    xs = [float(x) for x in sample]
    b = NumericBinning.fit(xs, n_bins=n_bins, n_coarse=n_coarse)
    counts = Counter(xs)
    held = [v for v, k in counts.items() if k >= 2 or len(counts) == 1]
    outside = _outside(xs)
    fine_in, fine_out = b.assign(held).tolist(), b.assign(outside).tolist()
    assert not set(fine_in) & set(fine_out), (b.edges.tolist(), held, outside)
    # The bin a repeated value would have shared with outside values without the separating
    # edges is the plain layout's outermost one; there, the coarse grid keeps them apart too.
    plain = NumericBinning(b.edges[(b.edges > min(xs)) & (b.edges <= max(xs))])
    cmap = b.coarse_map
    for v, fv in zip(held, fine_in, strict=True):
        for w, fw in zip(outside, fine_out, strict=True):
            if plain.assign([v])[0] == plain.assign([w])[0]:
                assert cmap[fv] != cmap[fw], (v, w, b.edges.tolist(), b.coarse_edges.tolist())
    # Tails stay open: the most extreme finite values land in the first and last bins.
    assert b.assign([-1.7e308, 1.7e308]).tolist() == [0, b.n_bins - 1]


def test_separating_edges_leave_continuous_layouts_alone() -> None:
    """Without ties at the ends of the range, the layout is the plain quantile one."""
    rng = np.random.default_rng(11)
    sample = rng.normal(size=5000)
    b = NumericBinning.fit(sample, n_bins=100, n_coarse=10)
    x = np.sort(sample)
    expected = np.unique(np.quantile(x, np.arange(1, 100) / 100, method="higher"))
    assert b.edges.tolist() == expected[expected > x[0]].tolist()
    assert _separated(b, sample.tolist()) == (False, False)


@pytest.mark.parametrize(
    "make",
    [
        # 90 % zeros, the rest continuous.
        lambda rng: np.where(rng.random(5000) < 0.9, 0.0, rng.exponential(size=5000)),
        # Integers 0..3.
        lambda rng: rng.integers(0, 4, size=5000).astype(float),
        # One rare value in a sea of ties.
        lambda rng: np.r_[np.zeros(9999), 1.0],
        # Continuous.
        lambda rng: rng.normal(size=5000),
    ],
    ids=["90pct-zeros", "ints-0-3", "one-rare", "normal"],
)
def test_fit_on_discrete_data(make: object) -> None:
    rng = np.random.default_rng(7)
    sample = make(rng)  # type: ignore[operator]
    b = NumericBinning.fit(sample, n_bins=100, n_coarse=10)
    _check_layout(b, sample.tolist())


def test_integer_data_gets_one_bin_per_value() -> None:
    b = NumericBinning.fit([0, 1, 2, 3] * 250, n_bins=100, n_coarse=10)
    # One bin per code, and values outside 0..3 in bins of their own: (-inf, 0), (3, +inf).
    assert b.edges.tolist() == [0.0, 1.0, 2.0, 3.0, math.nextafter(3.0, math.inf)]
    assert b.coarse_edges.tolist() == b.edges.tolist()
    assert b.assign([0, 1, 2, 3, -7, 9, 3.5, -0.5]).tolist() == [1, 2, 3, 4, 0, 5, 5, 0]
    assert b.labels() == ["(-inf, 0)", "[0, 1)", "[1, 2)", "[2, 3)", "[3, 3]", "(3, +inf)"]


def test_ninety_percent_zeros_keeps_zero_in_one_bin() -> None:
    rng = np.random.default_rng(1)
    sample = np.where(rng.random(10_000) < 0.9, 0.0, rng.uniform(1, 2, size=10_000))
    b = NumericBinning.fit(sample, n_bins=100, n_coarse=10)
    h = Histogram(b).add(sample)
    zeros = int(np.count_nonzero(sample == 0.0))
    # All the zeros share bin 1, which then holds little else: the edges above it are 1 %
    # quantiles of the reference. Bin 0, (-inf, 0), is empty: a zero that turns negative shows.
    assert b.edges[0] == 0.0 and b.edges[1] > 0.0
    assert h.counts[0] == 0
    assert zeros <= h.counts[1] <= zeros + sample.size // 100 + 1
    assert np.all(h.counts[2:] <= sample.size // 100 + 1)
    assert b.assign([-1e-9, 0.0]).tolist() == [0, 1]
    assert b.coarse_edges[0] == 0.0


@pytest.mark.parametrize("sample", [[math.nan, None, math.inf], []])
def test_empty_sample_gives_a_single_bin(sample: list[object]) -> None:
    b = NumericBinning.fit(sample, n_bins=100, n_coarse=10)
    assert b.n_bins == 1 and b.n_coarse == 1
    assert b.edges.size == 0 and b.coarse_edges.size == 0
    assert b.labels() == ["(-inf, +inf)"]
    assert b.assign([-1e300, 0.0, 7.0, 1e300]).tolist() == [0, 0, 0, 0]
    assert b.coarsen([5]).tolist() == [5]


@pytest.mark.parametrize(
    ("sample", "v"), [([7.0] * 50, 7.0), ([3], 3.0), ([-2.5, -2.5, math.nan], -2.5), ([0] * 9, 0.0)]
)
@pytest.mark.parametrize(("n_bins", "n_coarse"), [(100, 10), (1, 1), (2, 2)])
def test_constant_sample_keeps_other_values_apart(
    sample: list[object], v: float, n_bins: int, n_coarse: int
) -> None:
    """A constant column gets (-inf, v), [v, v] and (v, +inf): any other value shows."""
    b = NumericBinning.fit(sample, n_bins=n_bins, n_coarse=n_coarse)
    above = math.nextafter(v, math.inf)
    assert b.edges.tolist() == b.coarse_edges.tolist() == [v, above]
    assert b.n_bins == b.n_coarse == 3
    assert (
        b.labels() == b.coarse_labels() == [f"(-inf, {v:g})", f"[{v:g}, {v:g}]", f"({v:g}, +inf)"]
    )
    got = b.assign([-1e300, math.nextafter(v, -math.inf), v, above, v + 1, 500.0, 1e300])
    assert got.tolist() == [0, 0, 1, 2, 2, 2, 2]
    assert binning_from_dict(json.loads(json.dumps(b.to_dict()))) == b


def test_constant_reference_to_another_constant_is_a_critical_psi_drift() -> None:
    """5.0 everywhere in the reference, 500.0 everywhere now: PSI is large, not 0."""
    b = NumericBinning.fit(np.full(20_000, 5.0))
    ref = Histogram(b).add(np.full(20_000, 5.0))
    cur = Histogram(b).add(np.full(2000, 500.0))
    assert ref.coarse_counts().tolist() == [0, 20_000, 0]
    assert cur.coarse_counts().tolist() == [0, 0, 2000]
    r = PSI().evaluate(ref.coarse_counts(), cur.coarse_counts())
    # Independently: the bin empty on both sides is dropped, the others get 0.5 each side.
    rp = np.array([20_000.5, 0.5]) / 20_001
    cp = np.array([0.5, 2000.5]) / 2001
    assert r.value == pytest.approx(float(np.sum((cp - rp) * np.log(cp / rp))), rel=1e-12)
    assert r.value > 18
    assert r.is_drift and r.judged and r.severity.label == "critical"
    # The same window from the reference's own value is no drift.
    same = Histogram(b).add(np.full(2000, 5.0))
    assert not PSI().evaluate(ref.coarse_counts(), same.coarse_counts()).is_drift


@pytest.mark.parametrize(("old", "new"), [(1.0, 5.0), (0.0, -1.0), (1.0, 1.5)])
def test_a_flag_value_moving_out_of_range_is_a_drift(old: float, new: float) -> None:
    """A 0/1 column whose 1s become 5 (or 0s become -1, ...) drifts, on the coarse grid."""
    rng = np.random.default_rng(4)
    reference = (rng.random(10_000) < 0.5).astype(float)
    b = NumericBinning.fit(reference)
    current = (rng.random(2000) < 0.5).astype(float)
    current[current == old] = new
    r = PSI().evaluate(
        Histogram(b).add(reference).coarse_counts(), Histogram(b).add(current).coarse_counts()
    )
    assert r.is_drift and r.value > 1.0


def test_n_coarse_one_gives_a_single_coarse_bin() -> None:
    b = NumericBinning.fit(np.arange(1000.0), n_bins=20, n_coarse=1)
    assert b.n_bins == 20 and b.n_coarse == 1
    assert b.coarsen(np.arange(20)).tolist() == [190]


@FAST
@given(
    edges=st.lists(finite, min_size=0, max_size=12, unique=True).map(sorted),
    values=st.lists(finite, max_size=60),
)
def test_assign_matches_the_interval_rule(edges: list[float], values: list[float]) -> None:
    b = NumericBinning(edges)
    assert b.assign(values).tolist() == [_bin_of(x, edges) for x in values]
    # Bins are half open: an edge value belongs to the bin on its right.
    assert b.assign(edges).tolist() == list(range(1, len(edges) + 1))


def test_missing_values_are_counted_never_binned() -> None:
    b = NumericBinning([0.0, 1.0])
    values = [0.5, math.nan, math.inf, -math.inf, None, np.nan, 2.0, np.float64("inf")]
    assert b.assign(values).tolist() == [1, MISSING, MISSING, MISSING, MISSING, MISSING, 2, MISSING]
    h = Histogram(b).add(values)
    assert h.counts.tolist() == [0, 1, 1]
    assert h.missing == 6
    assert h.total == 8
    assert h.missing_ratio == pytest.approx(6 / 8)


@pytest.mark.parametrize(
    "batch",
    [
        ["abc"],
        ["1.5"],
        ["1.5", "abc"],
        ["1.5", 0.5],
        [True],
        [False, 0.5],
        [True, "abc"],
        [{"a": 1}],
    ],
)
def test_strings_and_bools_in_a_numeric_feature_are_type_mismatches(batch: list[object]) -> None:
    """Not missing: ``"1.5"`` where numbers are expected is an upstream type change."""
    b = NumericBinning([0.0, 1.0])
    got = b.assign(batch).tolist()
    want = [
        MISMATCH if isinstance(v, str | bool | dict) else _bin_of(float(v), [0.0, 1.0])  # type: ignore[arg-type]
        for v in batch
    ]
    assert got == want
    h = Histogram(b).add(batch)
    assert h.mismatched == got.count(MISMATCH) and h.missing == 0
    assert h.total == len(batch)
    assert h.mismatch_ratio == got.count(MISMATCH) / len(batch) and h.missing_ratio == 0.0


@FAST
@given(
    batch=st.lists(
        st.one_of(
            finite,
            st.integers(-5, 5),
            st.none(),
            st.booleans(),
            st.sampled_from(["x", "1.5", "nan", "", math.nan, math.inf, -math.inf]),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_a_value_bin_does_not_depend_on_its_batch(batch: list[object]) -> None:
    """The same raw value lands in the same bin whatever else is in the batch."""
    b = NumericBinning([-1.0, 0.0, 1.0])
    together = b.assign(batch).tolist()
    alone = [int(b.assign([v])[0]) for v in batch]
    assert together == alone


@pytest.mark.parametrize(
    "junk",
    [[None, math.nan, math.inf, -math.inf], ["9", "x", True], ["9"] * 30, [True] * 30],
)
def test_fit_ignores_missing_and_non_numeric_values(junk: list[object]) -> None:
    clean = [1.0, 2.0, 3.0, 4.0] * 10
    dirty = [*clean, *junk]
    assert NumericBinning.fit(dirty, n_bins=4, n_coarse=2) == NumericBinning.fit(
        clean, n_bins=4, n_coarse=2
    )


@FAST
@given(sample=tied_samples, n_bins=st.integers(1, 60), n_coarse=st.integers(1, 12))
def test_coarse_grid_is_the_fine_grid_merged(
    sample: list[float], n_bins: int, n_coarse: int
) -> None:
    b = NumericBinning.fit(sample, n_bins=n_bins, n_coarse=n_coarse)
    values = [float(x) for x in sample] + [-1e7, 1e7]
    fine = Histogram(b).add(values).counts
    coarse = b.coarsen(fine)
    # Totals are preserved.
    assert coarse.sum() == fine.sum()
    # Coarse counts equal counts taken directly on the coarse intervals.
    direct = Counter(_bin_of(x, b.coarse_edges.tolist()) for x in values)
    assert coarse.tolist() == [direct.get(i, 0) for i in range(b.n_coarse)]
    # The coarse map agrees with the coarse interval rule on every value.
    fine_idx = b.assign(values)
    assert [int(b.coarse_map[i]) for i in fine_idx] == [
        _bin_of(x, b.coarse_edges.tolist()) for x in values
    ]


def test_coarse_edges_split_reference_mass_evenly() -> None:
    rng = np.random.default_rng(3)
    sample = rng.normal(size=20_000)
    b = NumericBinning.fit(sample, n_bins=100, n_coarse=10)
    assert b.n_bins == 100 and b.n_coarse == 10
    shares = b.coarsen(Histogram(b).add(sample).counts) / sample.size
    np.testing.assert_allclose(shares, 0.1, atol=0.011)


@FAST
@given(
    edges=st.lists(finite, max_size=15, unique=True).map(sorted),
    data=st.data(),
)
def test_numeric_round_trip(edges: list[float], data: st.DataObject) -> None:
    coarse = sorted(data.draw(st.sets(st.sampled_from(edges)) if edges else st.just(set())))
    b = NumericBinning(edges, coarse)
    back = binning_from_dict(json.loads(json.dumps(b.to_dict())))
    assert isinstance(back, NumericBinning)
    assert back == b
    assert back.edges.tolist() == edges and back.coarse_edges.tolist() == coarse
    assert back.coarse_map.tolist() == b.coarse_map.tolist()
    assert back.labels() == b.labels() and back.coarse_labels() == b.coarse_labels()


@FAST
@given(categories=st.lists(st.text(max_size=6), max_size=12, unique=True))
def test_categorical_round_trip(categories: list[str]) -> None:
    b = CategoricalBinning(categories)
    back = binning_from_dict(json.loads(json.dumps(b.to_dict())))
    assert isinstance(back, CategoricalBinning)
    assert back == b
    assert back.labels() == [*categories, UNSEEN]


def test_equality_distinguishes_layouts() -> None:
    assert NumericBinning([1.0, 2.0]) != NumericBinning([1.0, 2.0], [1.0])
    assert NumericBinning([1.0, 2.0]) != NumericBinning([1.0, 3.0])
    assert CategoricalBinning(["a", "b"]) != CategoricalBinning(["b", "a"])
    assert NumericBinning([]) != CategoricalBinning([])


def test_both_layouts_satisfy_the_protocol() -> None:
    assert isinstance(NumericBinning([1.0]), Binning)
    assert isinstance(CategoricalBinning(["a"]), Binning)


@pytest.mark.parametrize(
    "call",
    [
        lambda: NumericBinning([2.0, 1.0]),
        lambda: NumericBinning([1.0, 1.0]),
        lambda: NumericBinning([1.0, math.inf]),
        lambda: NumericBinning([math.nan]),
        lambda: NumericBinning([[1.0, 2.0]]),
        lambda: NumericBinning([1.0, 2.0], [1.5]),
        lambda: NumericBinning([1.0, 2.0], [2.0, 1.0]),
        lambda: NumericBinning.fit([1.0], n_bins=0),
        lambda: NumericBinning.fit([1.0], n_coarse=0),
        lambda: CategoricalBinning(["a", "a"]),
        lambda: CategoricalBinning.fit(["a"], top_k=0),
        lambda: binning_from_dict({"kind": "ordinal"}),
        lambda: binning_from_dict({}),
    ],
)
def test_invalid_layouts_are_rejected(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


# --- categorical ---------------------------------------------------------------------------


@FAST
@given(
    sample=st.lists(st.sampled_from("abcdefghij"), min_size=1, max_size=200),
    top_k=st.integers(1, 12),
)
def test_top_k_keeps_the_most_frequent(sample: list[str], top_k: int) -> None:
    b = CategoricalBinning.fit(sample, top_k=top_k)
    counts = Counter(sample)
    kept = list(b.categories)
    dropped = [c for c in counts if c not in kept]
    assert len(kept) == min(top_k, len(counts))
    assert set(kept) <= set(counts)
    # Every kept category is at least as frequent as every dropped one; ties go by name.
    for k in kept:
        for d in dropped:
            assert (counts[k], d) > (counts[d], k)
    # Bin order: most frequent first, ties by name.
    assert kept == sorted(kept, key=lambda c: (-counts[c], c))
    # The histogram counts each kept category exactly; the unseen bucket catches the rest.
    h = Histogram(b).add(sample)
    assert h.counts.tolist() == [counts[c] for c in kept] + [sum(counts[d] for d in dropped)]
    assert h.missing == 0


def test_unseen_bucket_catches_new_categories() -> None:
    b = CategoricalBinning.fit(["DE", "DE", "FR"], top_k=5)
    assert b.unseen_index == 2
    assert b.assign(["US", "JP", "DE", "FR", "de"]).tolist() == [2, 2, 0, 1, 2]
    assert b.labels()[b.unseen_index] == UNSEEN


def test_categorical_missing_values() -> None:
    b = CategoricalBinning(["a", "nan", "None"])
    got = b.assign([None, math.nan, np.nan, math.inf, np.float64("nan"), "a", "nan", "None"])
    assert got.tolist() == [MISSING] * 5 + [0, 1, 2]
    h = Histogram(b).add([None, "a", "zzz"])
    assert h.counts.tolist() == [1, 0, 0, 1] and h.missing == 1


def test_bool_normalisation() -> None:
    n = CategoricalBinning.normalise
    assert n(True) == "true" and n(False) == "false"
    assert n(np.bool_(True)) == "true" and n(np.bool_(False)) == "false"
    assert n(None) is None and n(math.nan) is None
    assert n("True") == "True"
    b = CategoricalBinning.fit([True, np.True_, "true", False], top_k=10)
    assert b.categories == ("true", "false")
    assert b.assign([np.True_, False, "true", "false"]).tolist() == [0, 1, 0, 1]


def test_integer_codes_and_their_float_form_are_one_category() -> None:
    b = CategoricalBinning.fit([3, 3.0, np.int64(3), np.float64(3.0), "3", 4.5], top_k=10)
    assert b.categories == ("3", "4.5")
    assert b.assign([3, 3.0, np.float32(3.0), 4.5, 4]).tolist() == [0, 0, 0, 1, 2]


def test_categorical_coarse_grid_is_the_fine_grid() -> None:
    b = CategoricalBinning(["a", "b"])
    assert b.n_coarse == b.n_bins == 3
    assert b.coarse_map.tolist() == [0, 1, 2]
    assert b.coarsen([1, 2, 3]).tolist() == [1, 2, 3]
    assert b.coarse_labels() == b.labels()


# --- missing vs. type mismatch --------------------------------------------------------------

numeric_or_not = st.one_of(
    finite,
    st.integers(-(10**6), 10**6),
    st.none(),
    st.booleans(),
    st.text(max_size=4),
    st.sampled_from(
        [
            math.nan,
            math.inf,
            -math.inf,
            "12.5",
            "forty",
            "",
            np.float64(2.5),
            np.int64(-3),
            np.float32("nan"),
            np.bool_(True),
            b"1",
            [1.0],
            {"a": 1},
            (1,),
            10**400,
            -(10**400),
        ]
    ),
)


def _expected_kind(v: object) -> str:
    """Independent rule for a numeric series: a value, missing, or of the wrong kind."""
    if v is None:
        return "missing"
    if type(v) in (int, float) or type(v) in (np.float64, np.int64, np.float32):
        try:
            x = float(v)  # type: ignore[arg-type]
        except OverflowError:
            return "missing"  # an int beyond the float range: a number with no finite value
        return "value" if math.isfinite(x) else "missing"
    return "mismatch"


@FAST
@given(batch=st.lists(numeric_or_not, max_size=40))
def test_numeric_assign_tells_missing_from_mismatch(batch: list[object]) -> None:
    edges = [-1.0, 0.0, 1.0]
    b = NumericBinning(edges)
    got = b.assign(batch).tolist()
    kinds = [_expected_kind(v) for v in batch]
    want = [
        MISSING if k == "missing" else MISMATCH if k == "mismatch" else _bin_of(float(v), edges)  # type: ignore[arg-type]
        for v, k in zip(batch, kinds, strict=True)
    ]
    assert got == want
    h = Histogram(b).add(batch)
    assert (h.missing, h.mismatched, h.n) == (
        kinds.count("missing"),
        kinds.count("mismatch"),
        kinds.count("value"),
    )
    assert h.total == len(batch)
    # Each value alone lands where it lands in its batch (no fast-path dependence).
    assert [int(b.assign([v])[0]) for v in batch] == got


def test_numeric_arrays_of_the_wrong_dtype_are_mismatches() -> None:
    b = NumericBinning([0.0])
    assert b.assign(np.array(["1.5", "x"])).tolist() == [MISMATCH, MISMATCH]
    assert b.assign(np.array([True, False])).tolist() == [MISMATCH, MISMATCH]
    assert b.assign(np.array([-1.0, np.nan, 2.0])).tolist() == [0, MISSING, 1]
    assert b.assign(np.array([3, -3], dtype=np.int32)).tolist() == [1, 0]


def test_categorical_scalars_are_categories_containers_are_mismatches() -> None:
    b = CategoricalBinning(["DE", "FR", "1"])
    got = b.assign(["DE", 1, 1.0, True, 2.5, None, math.nan, [1], {"k": "DE"}, ("DE",), {"DE"}])
    #                DE  "1" "1"  unseen unseen missing missing then four containers
    assert got.tolist() == [0, 2, 2, 3, 3, MISSING, MISSING] + [MISMATCH] * 4
    h = Histogram(b).add(["DE", ["DE"], None])
    assert (h.counts.tolist(), h.missing, h.mismatched) == ([1, 0, 0, 0], 1, 1)
    # A container never becomes a category of the reference either.
    fitted = CategoricalBinning.fit([["x"], ["x"], ["x"], "a", {"b": 1}], top_k=5)
    assert fitted.categories == ("a",)
