"""Columns of a data set: one array or list per series, and the kind of its values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_drift.stats.binning import Kind

Column = npt.NDArray[np.float64] | list[Any]
"""Numeric columns are float arrays (NaN for missing); others are lists (None for missing)."""


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
