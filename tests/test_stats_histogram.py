"""Histograms: counting, batch == incremental, merge algebra, subtraction, serialisation."""

from __future__ import annotations

import json
import math
from functools import reduce

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_drift.stats import MISMATCH, MISSING, CategoricalBinning, Histogram, NumericBinning

FAST = settings(max_examples=60, deadline=None)

EDGES = [-1.0, 0.0, 0.5, 2.0]
BINNING = NumericBinning(EDGES, [0.0])

raw_value = st.one_of(
    st.floats(-10, 10, allow_nan=False),
    st.sampled_from([None, math.nan, math.inf, -math.inf, -1.0, 0.0, 0.5, 2.0]),
    st.sampled_from(["12.5", "forty", True]),  # of the wrong kind: a type mismatch
)
raw_values = st.lists(raw_value, max_size=80)
counts_vec = st.lists(st.integers(0, 50), min_size=len(EDGES) + 1, max_size=len(EDGES) + 1)
histograms = st.builds(
    lambda c, m, w: Histogram(BINNING, c, m, w),
    counts_vec,
    st.integers(0, 20),
    st.integers(0, 20),
)


def _expected(values: list[object]) -> tuple[list[int], int, int]:
    """Independent count: interval membership over (-inf, e0), [e0, e1), ..., [e_last, +inf),
    then missing (None, NaN, ±inf) and mismatched (anything not a number) values."""
    bounds = [-math.inf, *EDGES, math.inf]
    counts = [0] * (len(EDGES) + 1)
    missing = mismatched = 0
    for v in values:
        if isinstance(v, str | bool):
            mismatched += 1
            continue
        if v is None or not math.isfinite(v):  # type: ignore[arg-type]
            missing += 1
            continue
        for i in range(len(counts)):
            if bounds[i] <= v < bounds[i + 1]:  # type: ignore[operator]
                counts[i] += 1
    return counts, missing, mismatched


@FAST
@given(values=raw_values)
def test_add_counts_every_value_in_its_interval(values: list[object]) -> None:
    h = Histogram(BINNING).add(values)
    counts, missing, mismatched = _expected(values)
    assert h.counts.tolist() == counts
    assert h.missing == missing
    assert h.mismatched == mismatched
    assert h.n == len(values) - missing - mismatched
    assert h.total == len(values)
    assert h.missing_ratio == (missing / len(values) if values else 0.0)
    assert h.mismatch_ratio == (mismatched / len(values) if values else 0.0)
    assert h.coarse_counts().tolist() == [sum(counts[:2]), sum(counts[2:])]
    assert h.grid_counts("missing").tolist() == [len(values) - missing, missing]
    assert h.grid_counts("mismatch").tolist() == [len(values) - mismatched, mismatched]


@FAST
@given(values=raw_values, data=st.data())
def test_batch_add_equals_many_small_adds(values: list[float | None], data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(values)), max_size=10)))
    pieces = [values[a:b] for a, b in zip([0, *cuts], [*cuts, len(values)], strict=True)]
    one = Histogram(BINNING).add(values)
    many = Histogram(BINNING)
    for piece in pieces:
        assert many.add(piece) is many
    assert many == one
    # Adding pre-assigned indices is the same as adding raw values.
    via_indices = Histogram(BINNING).add_indices(BINNING.assign(values))
    assert via_indices == one


@FAST
@given(a=histograms, b=histograms, c=histograms)
def test_merge_is_associative_and_commutative(a: Histogram, b: Histogram, c: Histogram) -> None:
    before = (a.copy(), b.copy(), c.copy())
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    assert a.merge(Histogram(BINNING)) == a
    # merge returns a new histogram and leaves its operands alone.
    assert (a, b, c) == before
    total = a.merge(b).merge(c)
    assert total.counts.tolist() == (a.counts + b.counts + c.counts).tolist()
    assert total.missing == a.missing + b.missing + c.missing
    assert total.mismatched == a.mismatched + b.mismatched + c.mismatched


@FAST
@given(parts=st.lists(raw_values, min_size=1, max_size=6))
def test_merging_partials_equals_one_histogram_of_everything(
    parts: list[list[float | None]],
) -> None:
    partials = [Histogram(BINNING).add(p) for p in parts]
    everything = Histogram(BINNING).add([v for p in parts for v in p])
    assert reduce(Histogram.merge, partials) == everything
    in_place = Histogram(BINNING)
    for p in partials:
        assert in_place.merge_in(p) is in_place
    assert in_place == everything


@FAST
@given(a=histograms, b=histograms)
def test_subtract_undoes_merge(a: Histogram, b: Histogram) -> None:
    merged = a.merge(b)
    assert merged.subtract(b) is merged
    assert merged == a
    a2 = a.copy()
    a2.merge_in(b).subtract(a)
    assert a2 == b


@FAST
@given(a=histograms, b=histograms)
def test_subtracting_counts_never_added_raises(a: Histogram, b: Histogram) -> None:
    exceeds = (
        bool(np.any(b.counts > a.counts)) or b.missing > a.missing or b.mismatched > a.mismatched
    )
    before = a.copy()
    if exceeds:
        with pytest.raises(ValueError, match="never added"):
            a.subtract(b)
        # A failed subtraction leaves the histogram untouched.
        assert a == before
    else:
        a.subtract(b)
        assert a.counts.tolist() == (before.counts - b.counts).tolist()
        assert np.all(a.counts >= 0) and a.missing >= 0 and a.mismatched >= 0
        assert a.mismatched == before.mismatched - b.mismatched


def test_subtract_one_missing_too_many_raises() -> None:
    h = Histogram(BINNING, [1, 1, 1, 1, 1], missing=0)
    with pytest.raises(ValueError):
        h.subtract(Histogram(BINNING, [0, 0, 0, 0, 0], missing=1))
    with pytest.raises(ValueError):
        h.subtract(Histogram(BINNING, [0, 0, 2, 0, 0]))
    with pytest.raises(ValueError):
        h.subtract(Histogram(BINNING, mismatched=1))


@FAST
@given(h=histograms)
def test_dict_round_trip(h: Histogram) -> None:
    data = json.loads(json.dumps(h.to_dict()))
    # Only non-empty bins are written.
    assert data["bins"] == [i for i, c in enumerate(h.counts.tolist()) if c]
    assert 0 not in data["counts"]
    # mismatched is written only when there are some: older readers see the old form.
    assert ("mismatched" in data) == bool(h.mismatched)
    back = Histogram.from_dict(data, BINNING)
    assert back == h
    assert back.counts.tolist() == h.counts.tolist() and back.missing == h.missing
    assert back.mismatched == h.mismatched
    # A rebuilt (equal, not identical) binning works too.
    assert Histogram.from_dict(data, NumericBinning(EDGES, [0.0])) == h


def test_copy_is_independent() -> None:
    h = Histogram(BINNING).add([0.1, 3.0])
    c = h.copy()
    c.add([0.1])
    assert h.counts.tolist() == [0, 0, 1, 0, 1]
    assert c.counts.tolist() == [0, 0, 2, 0, 1]
    # Constructor copies its counts too.
    src = np.array([1, 2, 3, 4, 5])
    h2 = Histogram(BINNING, src)
    src[0] = 100
    assert h2.counts[0] == 1


def test_equality_ignores_nothing_that_counts() -> None:
    assert Histogram(BINNING, [1, 0, 0, 0, 0]) != Histogram(BINNING, [0, 1, 0, 0, 0])
    assert Histogram(BINNING, missing=1) != Histogram(BINNING)
    assert Histogram(BINNING, mismatched=1) != Histogram(BINNING)
    assert Histogram(BINNING, missing=1) != Histogram(BINNING, mismatched=1)
    assert Histogram(BINNING) != "histogram"


def test_categorical_histogram() -> None:
    b = CategoricalBinning(["x", "y"])
    h = Histogram(b).add(["x", "y", "y", "z", None, True, math.nan])
    assert h.counts.tolist() == [1, 2, 2]
    assert h.missing == 2
    assert h.coarse_counts().tolist() == [1, 2, 2]


@pytest.mark.parametrize(
    "call",
    [
        lambda: Histogram(BINNING, [1, 2, 3]),
        lambda: Histogram(BINNING, [1, 2, 3, 4, -1]),
        lambda: Histogram(BINNING, missing=-1),
        lambda: Histogram(BINNING, mismatched=-1),
        lambda: Histogram(BINNING).add_indices(np.array([0, -3])),
        lambda: Histogram(BINNING).add_indices(np.array([5])),
        lambda: Histogram(BINNING).grid_counts("quality"),
        lambda: Histogram(BINNING).merge(Histogram(NumericBinning([0.0]))),
        lambda: Histogram(BINNING).merge(Histogram(NumericBinning(EDGES))),
        lambda: Histogram(BINNING).merge_in(Histogram(CategoricalBinning(["a", "b", "c", "d"]))),
        lambda: Histogram(BINNING).subtract(Histogram(NumericBinning([0.0]))),
        lambda: Histogram.from_dict({"n_bins": 3, "bins": [], "counts": []}, BINNING),
    ],
)
def test_invalid_histograms_are_rejected(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


def test_missing_index_is_counted_apart() -> None:
    h = Histogram(BINNING).add_indices(np.array([MISSING, 0, 4, MISSING]))
    assert h.counts.tolist() == [1, 0, 0, 0, 1] and h.missing == 2


def test_missing_and_mismatch_indices_are_counted_apart() -> None:
    h = Histogram(BINNING).add_indices(np.array([MISMATCH, 0, MISSING, MISMATCH]))
    assert h.counts.tolist() == [1, 0, 0, 0, 0] and (h.missing, h.mismatched) == (1, 2)
    # A failed add counts nothing at all.
    with pytest.raises(ValueError):
        h.add_indices(np.array([MISSING, MISMATCH, 1, -7]))
    assert h.counts.tolist() == [1, 0, 0, 0, 0] and (h.missing, h.mismatched) == (1, 2)


def test_a_string_where_numbers_are_expected_is_not_missing() -> None:
    """Issue 7: ``"amount": "12.5"`` and ``age: "forty"`` are mismatches, not missing."""
    h = Histogram(BINNING).add([0.1, "12.5", None, "forty", 3.0])
    assert (h.n, h.missing, h.mismatched, h.total) == (2, 1, 2, 5)
    assert h.missing_ratio == 0.2 and h.mismatch_ratio == 0.4


def test_dicts_written_before_mismatched_existed_still_load() -> None:
    old = {"n_bins": 5, "missing": 3, "bins": [1, 4], "counts": [2, 7]}
    h = Histogram.from_dict(old, BINNING)
    assert (h.counts.tolist(), h.missing, h.mismatched) == ([0, 2, 0, 0, 7], 3, 0)
    assert h.to_dict() == old  # and re-serialise byte for byte the same
    oldest = {"n_bins": 5, "bins": [], "counts": []}
    assert Histogram.from_dict(oldest, BINNING) == Histogram(BINNING)


@FAST
@given(h=histograms)
def test_copy_keeps_every_count(h: Histogram) -> None:
    c = h.copy()
    assert c == h and c is not h
    assert (c.missing, c.mismatched, c.total) == (h.missing, h.mismatched, h.total)
    c.add(["x"])
    assert c.mismatched == h.mismatched + 1 and h == h.copy()
