"""Reading training and current data: CSV, Parquet, JSON lines (rows and stream events)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stream_drift.pipeline.columns import infer_kind, n_rows
from stream_drift.pipeline.reference import ReferenceError
from stream_drift.tools.datasets import (
    DataError,
    build_reference_from_file,
    detect_format,
    flatten_row,
    read_columns,
)

N = 500


def _rows(seed: int = 0, n: int = N) -> list[dict[str, Any]]:
    """Rows with a float, an int, a string and a bool column, and missing values."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        rows.append(
            {
                "amount": None if i % 37 == 5 else round(float(rng.lognormal(3, 0.8)), 4),
                "age": None if i % 41 == 7 else int(rng.integers(18, 90)),
                "country": None if i % 43 == 3 else str(rng.choice(["DE", "FR", "US", "GB"])),
                "vip": bool(rng.random() < 0.2),
                "prediction": round(float(rng.uniform()), 5),
            }
        )
    return rows


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow(
                {
                    k: "" if v is None else ("true" if v is True else "false" if v is False else v)
                    for k, v in r.items()
                }
            )
    return path


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    table = pa.table(
        {
            "amount": pa.array([r["amount"] for r in rows], pa.float64()),
            "age": pa.array([r["age"] for r in rows], pa.int64()),
            "country": pa.array([r["country"] for r in rows], pa.string()),
            "vip": pa.array([r["vip"] for r in rows], pa.bool_()),
            "prediction": pa.array([r["prediction"] for r in rows], pa.float64()),
        }
    )
    pq.write_table(table, path)
    return path


def _write_jsonl(path: Path, objs: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


def _as_events(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "model": "fraud",
            "event_id": f"e{i}",
            "ts": 1764213000 + i,
            "features": {k: v for k, v in r.items() if k != "prediction"},
            "prediction": r["prediction"],
        }
        for i, r in enumerate(rows)
    ]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rows = _rows()
    return {
        "csv": _write_csv(tmp_path / "train.csv", rows),
        "parquet": _write_parquet(tmp_path / "train.parquet", rows),
        "rows": _write_jsonl(tmp_path / "rows.jsonl", rows),
        "events": _write_jsonl(tmp_path / "events.jsonl", _as_events(rows)),
    }


@pytest.mark.parametrize("prediction", [(), ("prediction",)])
def test_every_format_gives_the_same_profile(
    files: dict[str, Path], prediction: tuple[str, ...]
) -> None:
    profiles = {
        fmt: build_reference_from_file(path, model="fraud", prediction=prediction)
        for fmt, path in files.items()
    }
    ids = {fmt: p.id for fmt, p in profiles.items()}
    assert len(set(ids.values())) == 1, ids
    p = profiles["csv"]
    assert sorted(p.series) == ["age", "amount", "country", "prediction", "vip"]
    assert p.series["prediction"].role == "prediction"
    assert {n: s.kind for n, s in p.series.items()} == {
        "age": "numeric",
        "amount": "numeric",
        "country": "categorical",
        "vip": "categorical",
        "prediction": "numeric",
    }


def test_missing_values_are_counted_in_every_format(files: dict[str, Path]) -> None:
    rows = _rows()
    for fmt, path in files.items():
        p = build_reference_from_file(path, model="fraud")
        for name in ("amount", "age", "country"):
            h = p.series[name].histogram
            n_missing = sum(r[name] is None for r in rows)
            assert (h.missing, h.n) == (n_missing, N - n_missing), (fmt, name)


def test_csv_empty_cell_in_a_text_column_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("country,n\nDE,1\n,2\nFR,\n")
    cols = read_columns(path)
    assert cols["country"] == ["DE", None, "FR"]
    assert np.isnan(cols["n"][2])


def test_csv_columns_are_typed(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b,c,d\n1,1.5,x,true\n2,,y,false\n")
    cols = read_columns(path)
    assert cols["a"].dtype == np.float64 and cols["a"].tolist() == [1.0, 2.0]
    assert cols["b"][0] == 1.5 and math.isnan(cols["b"][1])
    assert cols["c"] == ["x", "y"]
    assert cols["d"] == [True, False]


def test_jsonl_events_are_flattened_like_the_stream(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "e.jsonl",
        [
            {"model": "m", "ts": 1, "features": {"a": 1, "c": "x"}, "prediction": {"p": 0.5}},
            {"model": "m", "ts": 2, "features": {"a": None}, "prediction": {"p": 0.7, "q": "y"}},
            {"model": "m", "ts": 3, "prediction": {"p": 0.1}},
        ],
    )
    cols = read_columns(path)
    assert set(cols) == {"a", "c", "prediction.p", "prediction.q"}
    assert np.allclose(cols["prediction.p"], [0.5, 0.7, 0.1])
    assert cols["prediction.q"] == [None, "y", None]
    assert cols["c"] == ["x", None, None]
    assert np.isnan(cols["a"][1])
    p = build_reference_from_file(path, model="m")
    assert p.series["prediction.p"].role == "prediction"
    assert p.series["prediction.q"].role == "prediction"
    assert p.series["a"].role == "feature"


def test_flatten_row() -> None:
    assert flatten_row({"a": 1, "b": "x"}) == {"a": 1, "b": "x"}
    assert flatten_row({"model": "m", "features": {"a": 1}, "prediction": 0.2}) == {
        "a": 1,
        "prediction": 0.2,
    }
    assert flatten_row({"model": "m", "prediction": {"p": 1, "q": 2}}) == {
        "prediction.p": 1,
        "prediction.q": 2,
    }
    assert flatten_row({"model": "m", "features": None, "prediction": None}) == {"prediction": None}


def test_jsonl_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n   \n{"a": 2}\n')
    assert read_columns(path)["a"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    ("text", "match"),
    [('{"a": 1}\n{"a": \n', r"x\.jsonl:2: not valid JSON"), ('{"a": 1}\n[1]\n', r":2: expected")],
)
def test_jsonl_errors_name_the_line(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(text)
    with pytest.raises(DataError, match=match):
        read_columns(path)


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_columns(tmp_path / "nope.csv")
    path = tmp_path / "x.xlsx"
    path.write_text("a")
    with pytest.raises(DataError, match="unknown format 'xlsx'"):
        read_columns(path)


def _empty_files(tmp_path: Path) -> dict[str, Path]:
    """Data sets with no rows in every format, and what :func:`read_columns` gives for them."""
    files = {
        "header-only.csv": "a,b,c\n",
        "empty.csv": "",
        "blank.csv": "\n  \n",
        "empty.jsonl": "",
        "blank.jsonl": "\n\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    table = pa.table({"a": pa.array([], pa.float64()), "b": pa.array([], pa.string())})
    pq.write_table(table, tmp_path / "empty.parquet")
    return {name: tmp_path / name for name in [*files, "empty.parquet"]}


def test_empty_data_sets_read_as_no_rows(tmp_path: Path) -> None:
    columns = {name: read_columns(path) for name, path in _empty_files(tmp_path).items()}
    assert {name: n_rows(c) for name, c in columns.items()} == dict.fromkeys(columns, 0)
    # A header or a schema names the columns, with no values in them.
    assert {n: len(v) for n, v in columns["header-only.csv"].items()} == {"a": 0, "b": 0, "c": 0}
    assert {n: len(v) for n, v in columns["empty.parquet"].items()} == {"a": 0, "b": 0}
    assert columns["empty.csv"] == columns["blank.csv"] == columns["empty.jsonl"] == {}


def test_a_reference_is_never_built_from_no_rows(tmp_path: Path) -> None:
    for name, path in _empty_files(tmp_path).items():
        with pytest.raises(ReferenceError, match=rf"{name}: no rows") as info:
            build_reference_from_file(path, model="m")
        assert isinstance(info.value, ValueError)


def test_unreadable_parquet(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(b"definitely not parquet")
    with pytest.raises(DataError, match="cannot read as parquet"):
        read_columns(path)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.csv", "csv"),
        ("a.TSV", "csv"),
        ("a.parquet", "parquet"),
        ("a.pq", "parquet"),
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.json", "jsonl"),
    ],
)
def test_detect_format(name: str, fmt: str) -> None:
    assert detect_format(Path(name)) == fmt


def test_infer_kind() -> None:
    assert infer_kind([1, 2.5, None]) == "numeric"
    assert infer_kind(np.array([1, 2])) == "numeric"
    assert infer_kind(np.array(["a"])) == "categorical"
    assert infer_kind(["a", 1]) == "categorical"
    assert infer_kind([True, False]) == "categorical"
    assert infer_kind([None, None]) == "categorical"
    assert infer_kind([]) == "categorical"
