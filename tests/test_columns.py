"""Tests of grouping events into per-series columns (stream_drift.pipeline.columns)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_drift.pipeline.columns import group_values
from stream_drift.pipeline.events import Event, is_prediction_series


def ev(ts: float, values: dict[str, float | str | None], model: str = "m", v: str = "1") -> Event:
    return Event(model, v, None, ts, values)


def test_group_values_missing_semantics() -> None:
    events = [
        ev(0, {"amount": 1.0, "country": "DE"}),  # feature event
        ev(1, {"prediction": 0.9}),  # prediction-only event: no feature is missing
        ev(2, {"amount": None}),  # null kept; country absent -> missing
        ev(3, {"amount": 3.0, "country": "FR", "age": 40.0}),  # age new: back-filled
        ev(4, {"prediction.score": 0.5, "prediction": 0.1}),  # output new: back-filled
        ev(5, {"amount": 5.0, "country": "US", "age": 41.0}),  # prediction not missing
    ]
    cols = group_values(events)[("m", "1")]
    assert cols == {
        "amount": [1.0, None, 3.0, 5.0],
        "country": ["DE", None, "FR", "US"],
        "prediction": [0.9, 0.1],
        "age": [None, None, 40.0, 41.0],
        "prediction.score": [None, 0.5],
    }
    # per kind, every series has one entry per event carrying that kind
    assert {len(cols[n]) for n in cols if not is_prediction_series(n)} == {4}
    assert {len(cols[n]) for n in cols if is_prediction_series(n)} == {2}


def test_group_values_by_model_version_and_step() -> None:
    events = [
        ev(119.9, {"x": 1.0}),
        ev(120.0, {"x": 2.0}),
        ev(60.5, {"x": 3.0}),
        ev(121.0, {"x": 4.0}, v="2"),
        ev(125.0, {"y": "a"}, model="other"),
        ev(179.0, {"x": None, "z": 1.0}),
    ]
    assert group_values(events) == {
        ("m", "1"): {"x": [1.0, 2.0, 3.0, None], "z": [None, None, None, 1.0]},
        ("m", "2"): {"x": [4.0]},
        ("other", "1"): {"y": ["a"]},
    }
    by_step = group_values(events, step_seconds=60)
    assert by_step == {
        ("m", "1", 60.0): {"x": [1.0, 3.0]},
        ("m", "1", 120.0): {"x": [2.0, None], "z": [None, 1.0]},
        ("m", "2", 120.0): {"x": [4.0]},
        ("other", "1", 120.0): {"y": ["a"]},
    }
    assert all(type(k[2]) is float for k in by_step)
    assert next(iter(group_values(events, step_seconds=0.5))) == ("m", "1", 119.5)
    assert group_values([]) == {}


@pytest.mark.parametrize("step", [0, -60, math.inf, math.nan, True])
def test_group_values_rejects_bad_step(step: float) -> None:
    with pytest.raises(ValueError, match="step_seconds"):
        group_values([ev(0, {"x": 1.0})], step_seconds=step)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["a", "b", "c", "prediction", "prediction.p", "prediction.q"]),
            st.none() | st.floats(allow_nan=False) | st.text(max_size=2),
            min_size=1,
        ),
        max_size=30,
    )
)
def test_group_values_counts_property(rows: list[dict[str, float | str | None]]) -> None:
    cols = group_values([ev(float(i), r) for i, r in enumerate(rows)]).get(("m", "1"), {})
    for kind in (False, True):
        carrying = [r for r in rows if any(is_prediction_series(n) == kind for n in r)]
        for name, col in cols.items():
            if is_prediction_series(name) != kind:
                continue
            assert col == [r.get(name) for r in carrying]
