"""Columns: one array or list of values per series, the kind of its values, and the grouping
of accepted events (rows) into per-series columns for the binning step."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias, overload

import numpy as np
import numpy.typing as npt

from stream_drift.pipeline.events import Event, Value, is_prediction_series
from stream_drift.stats.binning import Kind

Column = npt.NDArray[np.float64] | list[Any]
"""Numeric columns are float arrays (NaN for missing); others are lists (None for missing)."""

Columns: TypeAlias = dict[str, list[Value]]
"""Series name -> values in event order (see :func:`group_values`)."""


def n_rows(columns: Mapping[str, Column]) -> int:
    """Rows of a data set read by :func:`read_columns`: its longest column's length.

    Examples
    --------
    >>> n_rows({"a": np.zeros(3), "b": ["x", None, "y"]}), n_rows({"a": []}), n_rows({})
    (3, 0, 0)
    """
    return max((len(column) for column in columns.values()), default=0)


def infer_kind(values: Iterable[Any]) -> Kind:
    """``numeric`` when every present value is a number (bools excluded), else ``categorical``.

    Examples
    --------
    >>> infer_kind([1, 2.5, None]), infer_kind(["a", 1]), infer_kind([True, False])
    ('numeric', 'categorical', 'categorical')
    """
    if isinstance(values, np.ndarray):
        return "numeric" if values.dtype.kind in "fiu" else "categorical"
    seen = False
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | float):
            return "categorical"
        seen = True
    return "numeric" if seen else "categorical"


class _Group:
    """Columns of one group under construction."""

    __slots__ = (
        "cols",
        "feature_cols",
        "n_feature_events",
        "n_prediction_events",
        "pred_cols_by_name",
    )

    def __init__(self) -> None:
        self.cols: Columns = {}  # the result: all series, first-seen order
        self.feature_cols: list[list[Value]] = []
        self.pred_cols_by_name: dict[str, list[Value]] = {}
        self.n_feature_events = 0  # events of the group that carry features
        self.n_prediction_events = 0  # ... that carry a prediction


@overload
def group_values(
    events: Iterable[Event], step_seconds: None = None
) -> dict[tuple[str, str], Columns]: ...


@overload
def group_values(
    events: Iterable[Event], step_seconds: float
) -> dict[tuple[str, str, float], Columns]: ...


def group_values(
    events: Iterable[Event], step_seconds: float | None = None
) -> dict[tuple[str, str], Columns] | dict[tuple[str, str, float], Columns]:
    """Column-oriented values for binning: group -> series name -> values.

    Groups are ``(model, model_version)``, or ``(model, model_version, step_start)``
    when ``step_seconds`` is given, with ``step_start = floor(ts / step) * step``
    (event time, float seconds).

    Missing semantics, so that missing counts are right per series:

    - A value that is ``None`` in an event is kept as ``None``.
    - An event carries a *kind* of payload, features and/or prediction, when it has at
      least one series of that kind. A series absent from an event counts as missing
      (``None``) for that event **only if the event carries that series' kind**, also
      when the series first appears in a later event of the group (earlier events are
      back-filled). A prediction-only event therefore adds nothing to feature series,
      and a feature-only event nothing to prediction series.
    - Hence, in one group, every feature series has one entry per feature-carrying
      event and every prediction series one per prediction-carrying event, in event
      order; ``len(col)`` is the series' denominator and ``col.count(None)`` its
      missing count.

    Parameters
    ----------
    events
        Accepted events, in any order (values keep the given order).
    step_seconds
        Window step in seconds, to group by event-time step as well; ``None`` (default)
        for no time grouping.

    Returns
    -------
    dict
        Group key -> series name -> list of values (``float``, ``str`` or ``None``).
        Series appear in first-seen order. ``step_start`` is a float; use integer
        steps (or binary fractions such as 0.5) so that keys are exact.

    Raises
    ------
    ValueError
        If ``step_seconds`` is not a positive finite number.

    Examples
    --------
    >>> evs = [
    ...     Event("fraud", "7", None, 100.0, {"amount": 1.0, "country": "DE"}),
    ...     Event("fraud", "7", None, 101.0, {"prediction": 0.9}),
    ...     Event("fraud", "7", None, 130.0, {"amount": None, "age": 40.0}),
    ... ]
    >>> group_values(evs)
    {('fraud', '7'): {'amount': [1.0, None], 'country': ['DE', None], 'prediction': [0.9],
                      'age': [None, 40.0]}}
    >>> sorted(group_values(evs, step_seconds=60))
    [('fraud', '7', 60.0), ('fraud', '7', 120.0)]
    """
    if step_seconds is not None and (
        isinstance(step_seconds, bool)
        or not isinstance(step_seconds, int | float)
        or not math.isfinite(step_seconds)
        or step_seconds <= 0
    ):
        raise ValueError(f"step_seconds must be a positive finite number, got {step_seconds!r}")
    groups: dict[tuple[str, str] | tuple[str, str, float], _Group] = {}
    step = step_seconds
    for ev in events:
        key: tuple[str, str] | tuple[str, str, float]
        if step is None:
            key = (ev.model, ev.model_version)
        else:
            key = (ev.model, ev.model_version, float(math.floor(ev.ts / step) * step))
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group()
        cols = group.cols
        pred_cols = group.pred_cols_by_name
        n_f = n_p = 0  # series of each kind this event carries
        for name, v in ev.values.items():
            col = cols.get(name)
            if col is None:  # a new series: back-fill the earlier events of its kind
                if is_prediction_series(name):
                    col = pred_cols[name] = [None] * group.n_prediction_events
                else:
                    col = [None] * group.n_feature_events
                    group.feature_cols.append(col)
                cols[name] = col
            col.append(v)
            if name in pred_cols:
                n_p += 1
            else:
                n_f += 1
        if n_f:
            n = group.n_feature_events = group.n_feature_events + 1
            if n_f != len(group.feature_cols):
                for col in group.feature_cols:
                    if len(col) < n:
                        col.append(None)
        if n_p:
            n = group.n_prediction_events = group.n_prediction_events + 1
            if n_p != len(pred_cols):
                for col in pred_cols.values():
                    if len(col) < n:
                        col.append(None)
    return {key: g.cols for key, g in groups.items()}  # type: ignore[return-value]
