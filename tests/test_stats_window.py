"""Sliding windows: add/evict equals recomputation from the last ``size`` steps."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_drift.stats import CategoricalBinning, Histogram, NumericBinning, SlidingWindow

FAST = settings(max_examples=60, deadline=None)

BINNING = NumericBinning([-1.0, 0.0, 1.0], [0.0])

step_values = st.lists(
    st.one_of(
        st.floats(-3, 3, allow_nan=False),
        st.sampled_from([None, math.nan, 0.0, 1.0]),
        st.sampled_from(["forty", "1.5"]),  # type mismatches slide like everything else
    ),
    max_size=20,
)


@FAST
@given(steps=st.lists(step_values, max_size=15), size=st.integers(1, 6))
def test_add_evict_equals_recomputation(steps: list[list[float | None]], size: int) -> None:
    w = SlidingWindow(BINNING, size)
    pushed: list[Histogram] = []
    for i, values in enumerate(steps):
        step = Histogram(BINNING).add(values)
        evicted = w.push(step)
        pushed.append(step)
        # The evicted step is exactly the one pushed ``size`` steps ago.
        if i >= size:
            assert evicted is pushed[i - size]
        else:
            assert evicted is None
        # The running total equals a histogram recomputed from the raw values of the last steps.
        recent = [v for vs in steps[max(0, i + 1 - size) : i + 1] for v in vs]
        assert w.total == Histogram(BINNING).add(recent)
        assert len(w) == min(i + 1, size)
        assert w.is_full == (i + 1 >= size)
        assert list(w) == pushed[max(0, i + 1 - size) :]


@FAST
@given(steps=st.lists(step_values, max_size=10), more=st.lists(step_values, max_size=5))
def test_dict_round_trip(steps: list[list[float | None]], more: list[list[float | None]]) -> None:
    w = SlidingWindow(BINNING, size=3)
    for values in steps:
        w.push(Histogram(BINNING).add(values))
    data = json.loads(json.dumps(w.to_dict()))
    back = SlidingWindow.from_dict(data, BINNING)
    assert back.size == w.size
    assert back.total == w.total
    assert list(back) == list(w)
    assert back.to_dict() == w.to_dict()
    # The restored window keeps sliding exactly like the original.
    for values in more:
        assert back.push(Histogram(BINNING).add(values)) == w.push(Histogram(BINNING).add(values))
        assert back.total == w.total


def test_tumbling_window_holds_one_step() -> None:
    b = CategoricalBinning(["a"])
    w = SlidingWindow(b, size=1)
    w.push(Histogram(b).add(["a", "a"]))
    first = w.total.copy()
    evicted = w.push(Histogram(b).add(["b"]))
    assert evicted == first
    assert w.total.counts.tolist() == [0, 1]


def test_reset_forgets_every_step() -> None:
    w = SlidingWindow(BINNING, size=2)
    w.push(Histogram(BINNING).add([0.5, None]))
    w.reset()
    assert len(w) == 0 and not w.is_full
    assert w.total == Histogram(BINNING)
    assert w.to_dict() == {"size": 2, "steps": []}


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SlidingWindow(BINNING, size=0)


def test_missing_and_mismatched_counts_slide_out() -> None:
    w = SlidingWindow(BINNING, size=2)
    w.push(Histogram(BINNING).add(["forty", None, 0.5]))
    w.push(Histogram(BINNING).add(["forty", 0.5]))
    assert (w.total.missing, w.total.mismatched, w.total.n) == (1, 2, 2)
    assert w.total.mismatch_ratio == 2 / 5
    w.push(Histogram(BINNING).add([0.5, 0.5]))
    assert (w.total.missing, w.total.mismatched, w.total.n) == (0, 1, 3)
    back = SlidingWindow.from_dict(json.loads(json.dumps(w.to_dict())), BINNING)
    assert back.total == w.total and back.total.mismatched == 1
