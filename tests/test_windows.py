"""The saved form of a version's window state: rows saved by earlier versions read unchanged."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import numpy as np
import pytest

from stream_drift.config.policies import WindowPolicy
from stream_drift.pipeline.reference import build_reference
from stream_drift.pipeline.windows import VersionWindow, VersionWindowState
from stream_drift.stats.histogram import Histogram

REF = build_reference(
    {"x": np.arange(200.0), "c": ["a", "b", "c", "d"] * 50}, model="m", model_version="1"
)
NX = REF.series["x"].histogram.binning.n_bins
NC = REF.series["c"].histogram.binning.n_bins
POLICY = WindowPolicy(size_seconds=120, step_seconds=60)  # two steps
T = 1_764_213_000.0


def _h(n_bins: int, bins: list[int], counts: list[int], **extra: int) -> dict[str, Any]:
    """A histogram as ``Histogram.to_dict`` writes it (``mismatched`` only when non-zero)."""
    return {"n_bins": n_bins, "missing": extra.get("missing", 0), "bins": bins, "counts": counts}


def _today() -> dict[str, Any]:
    """A row in the exact shape the hand-written ``to_dict`` of the previous release saved."""
    mismatched = _h(NC, [0], [2], missing=1) | {"mismatched": 2}
    return {
        "reference_id": REF.id,
        "pending": {"1764213120.0": {"x": _h(NX, [1, 2], [3, 4]), "c": mismatched}},
        "pending_events": {"1764213120.0": 7},
        "windows": {
            "x": {"size": 2, "steps": [_h(NX, [0], [5])]},
            "c": {"size": 2, "steps": [_h(NC, [1], [4], missing=1)]},
        },
        "step_starts": [1764213060.0],
        "step_events": [5],
        "last_closed_end": 1764213120.0,
        "sources": {"ev/0": [1764213179.5, 1000.0], "ev/1": [1764213150.0, 990.0]},
        "expected_sources": ["ev/0", "ev/1"],
        "first_seen": 900.0,
        "applied": {
            "ev/0": {
                "start": 0,
                "end": 12,
                "events": {"1764213060.0": 5, "1764213120.0": 7},
                "steps": {"1764213120.0": {"x": _h(NX, [1], [3])}},
            }
        },
        "applied_offsets": {"ev/1": 40},
        "duplicate_events": 3,
        "inconsistent_events": 1,
        "future_events": 2,
        "late_events": 4,
        "max_event_time": 1764213179.5,
        "count_first": None,
    }


def test_a_row_in_todays_shape_round_trips_exactly() -> None:
    row = _today()
    w = VersionWindow.from_dict(row, REF, POLICY)
    saved = w.to_dict()
    assert list(saved) == list(row)  # same keys, same order
    assert json.loads(json.dumps(saved, allow_nan=False)) == row
    # ...and it was read into the window's own types, not carried along as dicts.
    step = T + 120
    assert w.pending[step]["c"].missing == 1 and w.pending[step]["c"].mismatched == 2
    assert w.pending[step]["x"] == Histogram.from_dict(row["pending"]["1764213120.0"]["x"], _b("x"))
    assert w.pending_events == {step: 7}
    assert w.windows["c"].total == Histogram.from_dict(_h(NC, [1], [4], missing=1), _b("c"))
    assert list(w.step_starts) == [T + 60] and list(w.step_events) == [5]
    assert w.sources["ev/0"] == (1764213179.5, 1000.0)
    assert w.expected_sources == {"ev/0", "ev/1"}
    assert w.applied["ev/0"].events == {T + 60: 5, step: 7}
    assert w.applied["ev/0"].steps[step]["x"].n == 3
    assert (w.duplicate_events, w.inconsistent_events, w.future_events) == (3, 1, 2)
    assert w.max_event_time == 1764213179.5 and w.count_first is None


def test_a_row_of_the_first_release_reads_with_defaults() -> None:
    """The fields the old ``from_dict`` read with ``.get`` shims are absent from such a row."""
    row = {
        "reference_id": REF.id,
        # A series the reference no longer has is dropped; whole numbers may come as ints.
        "pending": {"1764213120.0": {"x": _h(NX, [1], [2]), "gone": _h(3, [0], [1])}},
        "pending_events": {"1764213120.0": 2},
        "windows": {"x": {"size": 2, "steps": []}},
        "step_starts": [1764213060],
        "step_events": [0],
        "last_closed_end": 1764213120,
        "sources": {"ev/0": [1764213130.5, 12]},
        "late_events": 0,
    }
    w = VersionWindow.from_dict(row, REF, POLICY)
    assert set(w.pending[T + 120]) == {"x"}
    assert w.last_closed_end == T + 120 and w.sources == {"ev/0": (1764213130.5, 12.0)}
    assert w.expected_sources == set() and w.first_seen is None
    assert w.applied == {} and w.applied_offsets == {}
    assert (w.duplicate_events, w.inconsistent_events, w.future_events) == (0, 0, 0)
    assert w.max_event_time == -np.inf and w.count_first is None
    saved = json.loads(json.dumps(w.to_dict(), allow_nan=False))
    assert saved["expected_sources"] == [] and saved["applied"] == {}
    assert saved["max_event_time"] is None and saved["duplicate_events"] == 0
    assert VersionWindow.from_dict(saved, REF, POLICY).to_dict() == w.to_dict()


def test_windows_saved_under_another_size_start_empty() -> None:
    w = VersionWindow.from_dict(_today(), REF, WindowPolicy(size_seconds=180, step_seconds=60))
    assert all(len(window) == 0 for window in w.windows.values())
    assert w.pending_events == {T + 120: 7}  # the rest is kept


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (("pending_events", "1764213120.0"), "seven", "$.pending_events"),
        (("sources", "ev/0"), [1.0], "$.sources"),
        (("late_events",), None, "$.late_events"),
    ],
)
def test_a_misshapen_row_is_refused_with_its_path(
    path: tuple[str, ...], value: object, where: str
) -> None:
    row = _today()
    target = row
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(msgspec.ValidationError, match=rf"at `\{where}"):
        VersionWindow.from_dict(row, REF, POLICY)


def test_the_state_record_is_the_saved_form() -> None:
    w = VersionWindow.from_dict(_today(), REF, POLICY)
    state = w.state()
    assert isinstance(state, VersionWindowState)
    assert msgspec.to_builtins(state, str_keys=True) == w.to_dict()
    assert VersionWindow.from_state(state, REF, POLICY).to_dict() == w.to_dict()


def _b(name: str) -> Any:
    return REF.series[name].histogram.binning
