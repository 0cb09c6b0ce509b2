"""Read a tabular data set (CSV, Parquet, JSON lines) into columns, and infer column kinds.

JSON lines may hold plain rows (``{"amount": 1.5, "country": "DE"}``) or stream events in the
event contract (``{"model": ..., "features": {...}, "prediction": ...}``); events are flattened
so their series carry the names the stream uses: feature names, ``prediction`` for a scalar
prediction and ``prediction.NAME`` for named outputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from stream_drift.pipeline.columns import Column, infer_kind, n_rows
from stream_drift.pipeline.reference import ReferenceError, ReferenceProfile, build_reference

EVENT_FIELDS = frozenset({"model", "model_version", "event_id", "ts", "features", "prediction"})
"""Top-level fields of a stream event (DESIGN §3.1)."""


class DataError(ValueError):
    """A data set that cannot be read, with the reason."""


def detect_format(path: Path) -> str:
    """The format implied by a file name.

    Examples
    --------
    >>> detect_format(Path("train.parquet")), detect_format(Path("x.ndjson"))
    ('parquet', 'jsonl')
    """
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("csv", "tsv"):
        return "csv"
    if suffix in ("parquet", "pq"):
        return "parquet"
    if suffix in ("jsonl", "ndjson", "json"):
        return "jsonl"
    raise DataError(f"{path}: unknown format {suffix!r}; expected .csv, .parquet or .jsonl")


def is_event(row: Mapping[str, Any]) -> bool:
    """Whether a JSON object is a stream event rather than a plain table row.

    An event has a ``features`` object, or ``features`` / ``prediction`` and no field outside
    the event contract; a row that merely has a ``prediction`` column next to its features is
    a row.

    Examples
    --------
    >>> is_event({"model": "m", "features": {"a": 1}}), is_event({"model": "m", "prediction": 1})
    (True, True)
    >>> is_event({"amount": 3.5, "prediction": 0.2})
    False
    """
    if isinstance(row.get("features"), dict):
        return True
    return ("prediction" in row or "features" in row) and set(row) <= EVENT_FIELDS


def flatten_row(row: Mapping[str, Any], keep: Iterable[str] = ()) -> dict[str, Any]:
    """One JSON-lines row as flat series; stream events are flattened as the stream does.

    ``keep`` names top-level fields of an event kept as columns too (a ``label`` next to the
    event's features); other fields outside ``features`` and ``prediction`` are dropped.

    Examples
    --------
    >>> flatten_row({"features": {"a": 1}, "prediction": 0.2, "y": 1}, keep=["y"])
    {'a': 1, 'prediction': 0.2, 'y': 1}
    >>> flatten_row({"model": "m", "features": {"a": 1}, "prediction": {"p": 0.9}})
    {'a': 1, 'prediction.p': 0.9}
    >>> flatten_row({"a": 1, "b": "x"})
    {'a': 1, 'b': 'x'}
    >>> flatten_row({"a": 1, "prediction": 0.2})
    {'a': 1, 'prediction': 0.2}
    """
    if not is_event(row):
        return dict(row)
    out: dict[str, Any] = dict(row.get("features") or {})
    prediction = row.get("prediction")
    if isinstance(prediction, dict):
        out.update({f"prediction.{k}": v for k, v in prediction.items()})
    elif "prediction" in row:
        out["prediction"] = prediction
    out.update({k: row[k] for k in keep if k in row})
    return out


def json_objects(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON object of each non-blank line of a JSON-lines file, in order.

    Raises
    ------
    DataError
        When the file is missing, or a line is not JSON or not an object (naming the line).
    """
    decoder = msgspec.json.Decoder()
    try:
        fh = path.open("rb")
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file") from exc
    with fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = decoder.decode(line)
            except msgspec.DecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc})") from exc
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object per line")
            yield obj


def _read_jsonl(path: Path, keep: Iterable[str] = ()) -> dict[str, Column]:
    rows = [flatten_row(obj, keep) for obj in json_objects(path)]
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return {name: _as_column([row.get(name) for row in rows]) for name in names}


def _as_column(values: list[Any]) -> Column:
    if infer_kind(values) == "numeric":
        return np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    return values


def _is_blank(path: Path) -> bool:
    """A file with nothing but whitespace: an empty data set, not an unreadable one."""
    size = path.stat().st_size
    return size == 0 or (size <= 4096 and not path.read_bytes().strip())


def _read_arrow(path: Path, fmt: str) -> dict[str, Column]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if fmt == "csv" and _is_blank(path):
        return {}
    try:
        if fmt == "csv":
            from pyarrow import csv as pacsv

            table = pacsv.read_csv(path)
        else:
            from pyarrow import parquet as pq

            table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: cannot read as {fmt}: {exc}") from exc
    columns: dict[str, Column] = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            columns[name] = np.asarray(
                pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
            )
        else:
            values = col.to_pylist()
            if fmt == "csv":  # an empty cell is a missing value, not the category ""
                values = [None if v == "" else v for v in values]
            columns[name] = values
    return columns


def read_columns(path: str | Path, keep: Iterable[str] = ()) -> dict[str, Column]:
    """Every column of a CSV, Parquet or JSON-lines file, by name.

    ``keep``: top-level fields of JSON-lines stream events to read as columns too
    (:func:`flatten_row`), e.g. the label column.

    An empty data set is not an error: a header-only CSV gives empty columns, an empty (or
    blank) CSV or JSON-lines file no columns at all; :func:`n_rows` tells them apart from data.

    Raises
    ------
    DataError
        When the file is missing, of an unknown format or unreadable.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    fmt = detect_format(p)
    return _read_jsonl(p, keep) if fmt == "jsonl" else _read_arrow(p, fmt)


def build_reference_from_file(path: str | Path, **kwargs: Any) -> ReferenceProfile:
    """:func:`build_reference` on a CSV, Parquet or JSON-lines file.

    A ``label`` column is read from plain rows, or from a top-level field of stream events.

    Raises
    ------
    DataError
        When the file cannot be read.
    ReferenceError
        When it holds no rows (an empty file, a CSV header only, an empty Parquet table), or
        as :func:`build_reference` does.
    """
    label = kwargs.get("label")
    columns = read_columns(path, keep=() if label is None else (label,))
    if n_rows(columns) == 0:
        raise ReferenceError(
            f"{path}: no rows (the file is empty, or holds only a header or schema): "
            "a reference needs at least one row"
        )
    return build_reference(columns, source=Path(path).name, **kwargs)
