"""Turn a data file into the events ``stream-drift produce`` replays: JSON lines as they are,
table rows (CSV, Parquet, JSON lines without the event shape) as one event each."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from stream_drift.pipeline.events import PREDICTION_SERIES, is_prediction_series
from stream_drift.tools.datasets import detect_format, is_event, read_columns

_encode = msgspec.json.Encoder().encode


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def rows_as_events(
    columns: Mapping[str, Any],
    *,
    model: str,
    model_version: str = "",
    prediction: Sequence[str] = (),
    ts_column: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Turn table rows into events; ``ts`` is left out (send time) unless ``ts_column``.

    A column named ``event_id`` becomes the event's id (for the label join), not a feature.
    Without ``prediction``, columns named like prediction series (``prediction``,
    ``prediction.X``) are the prediction, as ``reference build`` reads them.

    Raises
    ------
    ValueError
        When columns ``prediction`` and ``prediction.X`` would both be the prediction.

    Examples
    --------
    >>> next(rows_as_events({"a": [1.5], "p": [0.2]}, model="m", prediction=["p"]))
    {'model': 'm', 'features': {'a': 1.5}, 'prediction': 0.2}
    >>> next(rows_as_events({"a": [1.5], "prediction.p": [0.2]}, model="m"))
    {'model': 'm', 'features': {'a': 1.5}, 'prediction': {'p': 0.2}}
    """
    named: dict[str, str] = {}  # column -> output name, for prediction-named columns
    if not prediction:
        auto = [c for c in columns if c != ts_column and is_prediction_series(c)]
        if PREDICTION_SERIES in auto and len(auto) > 1:
            raise ValueError(
                f"columns {', '.join(auto)}: a scalar prediction and named outputs cannot "
                "both be sent; pick the prediction with --prediction"
            )
        named = {c: c.removeprefix(PREDICTION_SERIES + ".") for c in auto}
    names = [
        c
        for c in columns
        if c not in prediction and c not in (ts_column, "event_id") and c not in named
    ]
    ids = columns.get("event_id")
    n = len(next(iter(columns.values()))) if columns else 0
    for i in range(n):
        event: dict[str, Any] = {"model": model}
        if model_version:
            event["model_version"] = model_version
        if ids is not None and ids[i] is not None:
            event["event_id"] = str(ids[i])
        if ts_column is not None:
            event["ts"] = _clean(columns[ts_column][i])
        event["features"] = {c: _clean(columns[c][i]) for c in names}
        if len(prediction) == 1:
            event["prediction"] = _clean(columns[prediction[0]][i])
        elif prediction:
            event["prediction"] = {c: _clean(columns[c][i]) for c in prediction}
        elif PREDICTION_SERIES in named:
            event["prediction"] = _clean(columns[PREDICTION_SERIES][i])
        elif named:
            event["prediction"] = {out: _clean(columns[c][i]) for c, out in named.items()}
        yield event


def load_events(
    path: Path,
    *,
    model: str | None,
    model_version: str = "",
    prediction: Sequence[str] = (),
    ts_column: str | None = None,
) -> list[bytes]:
    """Events to replay from a file: JSON lines are sent as they are (with ``--model``
    filling in a missing ``model``); CSV / Parquet rows become events of ``model``."""
    if detect_format(path) == "jsonl":
        out = []
        decoder = msgspec.json.Decoder()
        for line in path.read_bytes().splitlines():
            if not line.strip():
                continue
            if model is None:
                out.append(line)
                continue
            obj = decoder.decode(line)
            if isinstance(obj, dict) and not is_event(obj):
                obj = next(
                    rows_as_events(
                        {k: [v] for k, v in obj.items()},
                        model=model,
                        model_version=model_version,
                        prediction=prediction,
                        ts_column=ts_column,
                    )
                )
            elif isinstance(obj, dict):
                obj.setdefault("model", model)
            out.append(_encode(obj))
        return out
    if model is None:
        raise ValueError(f"{path}: --model is needed to turn table rows into events")
    columns = read_columns(path)
    return [
        _encode(e)
        for e in rows_as_events(
            columns,
            model=model,
            model_version=model_version,
            prediction=prediction,
            ts_column=ts_column,
        )
    ]
