"""The Kafka client helpers' offline parts: turning data sets into events to replay."""

from __future__ import annotations

import json
import math
from pathlib import Path

import msgspec
import numpy as np
import pytest

from stream_drift.app.kafka_io import load_events, rows_as_events
from stream_drift.pipeline.events import Event, EventDecoder, RawRecord
from stream_drift.pipeline.ingest import IngestAccumulator
from stream_drift.pipeline.registry import ReferenceRegistry
from stream_drift.stats.histogram import Histogram
from stream_drift.tools.datasets import DataError, build_reference_from_file, read_columns


def _decode(values: list[bytes]) -> list[Event]:
    dec = EventDecoder()
    out = []
    for i, v in enumerate(values):
        ev = dec.decode(RawRecord(v, "drift.events", 0, i, 1_764_213_000_000))
        assert isinstance(ev, Event), ev
        out.append(ev)
    return out


def test_rows_as_events_single_and_named_predictions() -> None:
    cols = {"a": [1.5, 2.5], "c": ["x", None], "p": [0.1, 0.2], "q": ["yes", "no"]}
    single = list(rows_as_events(cols, model="m", prediction=["p"]))
    assert single == [
        {"model": "m", "features": {"a": 1.5, "c": "x", "q": "yes"}, "prediction": 0.1},
        {"model": "m", "features": {"a": 2.5, "c": None, "q": "no"}, "prediction": 0.2},
    ]
    named = list(rows_as_events(cols, model="m", model_version="3", prediction=["p", "q"]))
    assert named[0] == {
        "model": "m",
        "model_version": "3",
        "features": {"a": 1.5, "c": "x"},
        "prediction": {"p": 0.1, "q": "yes"},
    }


def test_rows_as_events_ts_column_and_cleaning() -> None:
    cols = {
        "t": np.array([1764213000.0, 1764213060.0]),
        "a": np.array([np.nan, 3.0]),
        "n": np.array([1, 2], dtype=np.int64),
        "inf": np.array([np.inf, -np.inf]),
    }
    events = list(rows_as_events(cols, model="m", ts_column="t"))
    assert [e["ts"] for e in events] == [1764213000.0, 1764213060.0]
    assert events[0]["features"] == {"a": None, "n": 1, "inf": None}
    assert "t" not in events[0]["features"]
    # Plain Python types only: the result encodes as JSON.
    assert all(type(v) in (int, float, type(None)) for v in events[1]["features"].values())
    json.dumps(events)
    assert list(rows_as_events({}, model="m")) == []


def test_rows_as_events_without_ts_leaves_it_to_the_send_time() -> None:
    [event] = rows_as_events({"a": [1.0]}, model="m")
    assert "ts" not in event


def test_load_events_from_csv_round_trips_through_the_decoder(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("amount,country,score\n1.5,DE,0.1\n,FR,0.2\n3.5,,0.3\n")
    values = load_events(path, model="fraud", model_version="7", prediction=["score"])
    events = _decode(values)
    assert [(e.model, e.model_version) for e in events] == [("fraud", "7")] * 3
    assert [e.values for e in events] == [
        {"amount": 1.5, "country": "DE", "prediction": 0.1},
        {"amount": None, "country": "FR", "prediction": 0.2},
        {"amount": 3.5, "country": None, "prediction": 0.3},
    ]


def test_load_events_of_table_rows_needs_a_model(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("a\n1\n")
    with pytest.raises(ValueError, match="--model"):
        load_events(path, model=None)


def test_load_events_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_events(tmp_path / "nope.parquet", model="m")


def test_load_events_jsonl_is_sent_as_is_without_model(tmp_path: Path) -> None:
    lines = [
        b'{"model": "fraud", "ts": 1764213000, "features": {"a": 1}}',
        b'{"model": "fraud", "prediction": {"p": 0.5}}',
        b"not even json",  # sent unchanged: the worker dead-letters it
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join([lines[0], b"", lines[1], b"  ", lines[2]]) + b"\n")
    assert load_events(path, model=None) == lines


def test_load_events_jsonl_with_model_fills_missing_models_and_converts_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mixed.jsonl"
    objs = [
        {"ts": 5, "features": {"a": 1}},  # an event without a model
        {"model": "other", "prediction": 0.4},  # an event with its own model
        {"a": 2.5, "c": "x", "s": 0.9},  # a plain row
    ]
    path.write_text("\n".join(json.dumps(o) for o in objs))
    out = [msgspec.json.decode(v) for v in load_events(path, model="m", prediction=["s"])]
    assert out == [
        {"ts": 5, "features": {"a": 1}, "model": "m"},
        {"model": "other", "prediction": 0.4},
        {"model": "m", "features": {"a": 2.5, "c": "x"}, "prediction": 0.9},
    ]


def test_table_rows_with_a_prediction_column_replay_as_valid_events(tmp_path: Path) -> None:
    # A column named ``prediction`` is the model's prediction (as `reference build` reads
    # it), not a feature: sent as a feature, every event would be refused (reserved name).
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("amount,prediction\n1.5,0.1\n2.5,0.2\n")
    events = _decode(load_events(csv_path, model="m"))
    assert [e.values for e in events] == [
        {"amount": 1.5, "prediction": 0.1},
        {"amount": 2.5, "prediction": 0.2},
    ]
    jsonl_path = tmp_path / "rows.jsonl"
    jsonl_path.write_text('{"amount": 1.5, "prediction": 0.1}\n')
    [event] = _decode(load_events(jsonl_path, model="m"))
    assert event.values == {"amount": 1.5, "prediction": 0.1}


def test_replaying_the_training_set_reproduces_the_reference(tmp_path: Path) -> None:
    """CSV -> events -> stage 1 gives exactly the reference's histograms (same maths)."""
    rng = np.random.default_rng(0)
    n = 400
    path = tmp_path / "train.csv"
    lines = ["ts,amount,country,score"]
    for i in range(n):
        amount = "" if i % 17 == 0 else f"{rng.lognormal(3, 0.8):.3f}"
        country = rng.choice(["DE", "FR", "US"])
        lines.append(f"{1764213000 + i * 0.1:.1f},{amount},{country},{rng.uniform():.4f}")
    path.write_text("\n".join(lines) + "\n")
    ref = build_reference_from_file(path, model="m", prediction=["score"])
    assert "ts" not in ref.series
    reg = ReferenceRegistry()
    reg.add(ref)
    values = load_events(path, model="m", prediction=["score"], ts_column="ts")
    acc = IngestAccumulator(reg, step_seconds=3600)
    records = [RawRecord(v, "drift.events", 0, i, 0) for i, v in enumerate(values)]
    out = acc.add_records(records)
    assert (out.accepted["m"], out.rejections) == (n, [])
    [partial] = acc.flush()
    for name, s in ref.series.items():
        total = s.empty()
        for step in partial.steps.values():
            total.merge_in(Histogram.from_dict(step[name], s.histogram.binning))
        assert total == s.histogram, name
    cols = read_columns(path)
    assert math.isnan(cols["amount"][0])


def test_prediction_named_columns_become_named_outputs() -> None:
    cols = {"a": [1.0], "prediction.p": [0.2], "prediction.label": ["yes"]}
    [event] = rows_as_events(cols, model="m")
    assert event == {
        "model": "m",
        "features": {"a": 1.0},
        "prediction": {"p": 0.2, "label": "yes"},
    }
    [decoded] = _decode([msgspec.json.encode(event)])
    assert decoded.values == {"a": 1.0, "prediction.p": 0.2, "prediction.label": "yes"}
    with pytest.raises(ValueError, match="--prediction"):
        list(rows_as_events({"prediction": [1], "prediction.p": [2]}, model="m"))
