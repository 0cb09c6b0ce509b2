"""The Kafka client helpers' offline parts: turning data sets into events to replay
(``stream_drift.tools.produce``), the one read loop, the partition lookup and the one-line
errors of the client commands, against stand-ins for aiokafka's clients."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import numpy as np
import pytest

from stream_drift.pipeline.decode import EventDecoder
from stream_drift.pipeline.events import Event, RawRecord
from stream_drift.pipeline.ingest import IngestAccumulator
from stream_drift.pipeline.registry import ReferenceRegistry
from stream_drift.tools.datasets import DataError, build_reference_from_file, read_columns
from stream_drift.tools.produce import load_events, rows_as_events


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
            total.merge_in(step[name].to_histogram(s.histogram.binning))
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


# --- the one read loop -------------------------------------------------------------------------


class _Consumer:
    """Stands in for a started consumer: each poll returns the next planned batch (``[]`` is
    an empty poll that takes ``poll_seconds``); ``assigned`` says whether the group has
    assigned partitions yet."""

    def __init__(self, batches: list[list[int]], *, assigned: bool = True) -> None:
        self.batches = list(batches)
        self.assigned = assigned
        self.polls: list[dict[str, Any]] = []

    async def getmany(self, *, timeout_ms: int, max_records: int | None) -> dict[str, Any]:
        self.polls.append({"timeout_ms": timeout_ms, "max_records": max_records})
        batch = self.batches.pop(0) if self.batches else []
        if not batch:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        return {"tp": [SimpleNamespace(offset=o) for o in batch]}

    def assignment(self) -> set[str]:
        return {"tp"} if self.assigned else set()


def _read(consumer: _Consumer, **kwargs: Any) -> tuple[list[int], float]:
    from stream_drift.app.kafka_io import read_records

    async def run() -> list[int]:
        return [r.offset async for r in read_records(consumer, poll_seconds=0.02, **kwargs)]

    start = time.monotonic()
    offsets = asyncio.run(run())
    return offsets, time.monotonic() - start


def test_read_records_stops_when_idle_and_not_while_records_come() -> None:
    consumer = _Consumer([[0, 1], [], [2], [], [3]])
    offsets, _ = _read(consumer, idle_timeout=0.03)
    # One empty poll (0.02 s) is not idle enough; two are.
    assert offsets == [0, 1, 2, 3]
    assert consumer.polls[0] == {"timeout_ms": 20, "max_records": None}


def test_read_records_stops_when_caught_up_or_at_max_seconds() -> None:
    checks: list[int] = []

    async def caught_up() -> bool:
        checks.append(1)
        return len(checks) == 2

    offsets, _ = _read(_Consumer([[0], [1], [2]]), caught_up=caught_up)
    assert offsets == [0, 1]
    offsets, took = _read(_Consumer([[0]] * 10_000), max_seconds=0.2, max_records=1)
    assert 0.2 <= took < 2.0
    assert offsets[:3] == [0, 0, 0]


def test_read_records_does_not_count_a_group_join_as_idle() -> None:
    joining = _Consumer([], assigned=False)
    _, took = _read(joining, idle_timeout=0.01, join_grace=0.3)
    assert took >= 0.3  # idle only counts after the grace
    _, took = _read(_Consumer([], assigned=True), idle_timeout=0.01, join_grace=0.3)
    assert took < 0.3


def test_read_records_without_idle_timeout_keeps_following() -> None:
    from stream_drift.app.kafka_io import read_records

    async def run() -> list[int]:
        out = []
        async for r in read_records(_Consumer([[0], [], [], [], [], [1]]), poll_seconds=0.01):
            out.append(r.offset)
            if r.offset == 1:
                break
        return out

    assert asyncio.run(run()) == [0, 1]


# --- partition lookup --------------------------------------------------------------------------


@pytest.fixture
def admin_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A stand-in admin client whose ``describe_topics`` lists ``state["topics"]`` (name ->
    partitions), after ``state["late"]`` calls that list nothing."""
    import aiokafka.admin

    state: dict[str, Any] = {"topics": {}, "late": 0, "asked": [], "closed": 0}

    class Admin:
        def __init__(self, **kwargs: Any) -> None:
            state["kwargs"] = kwargs

        async def start(self) -> None:
            pass

        async def close(self) -> None:
            state["closed"] += 1

        async def describe_topics(self, topics: list[str] | None = None) -> list[Any]:
            state["asked"].append(topics)
            if state["late"]:
                state["late"] -= 1
                return []
            return [
                {"topic": name, "error_code": 0, "partitions": [{"partition": p} for p in parts]}
                for name, parts in state["topics"].items()
            ]

    monkeypatch.setattr(aiokafka.admin, "AIOKafkaAdminClient", Admin)
    yield state


def test_partition_ids_waits_for_a_new_topic_and_never_names_it(
    admin_client: dict[str, Any],
) -> None:
    from stream_drift.app.admin import partition_ids

    admin_client["topics"] = {"other": [0], "alerts": [2, 0, 1]}
    admin_client["late"] = 2
    found = asyncio.run(partition_ids("k:1", "alerts", security={"security_protocol": "SSL"}))
    assert found == [0, 1, 2]
    # Naming the topic in a metadata request would make Tansu create it.
    assert admin_client["asked"] == [None, None, None]
    assert admin_client["kwargs"]["security_protocol"] == "SSL"
    assert admin_client["closed"] == 1


def test_partition_ids_of_a_missing_topic(admin_client: dict[str, Any]) -> None:
    from stream_drift.app.admin import TopicNotFoundError, partition_ids

    admin_client["topics"] = {"other": [0]}
    with pytest.raises(TopicNotFoundError, match="'alerts' not found"):
        asyncio.run(partition_ids("k:1", "alerts", wait=0.2))
    assert admin_client["closed"] == 1


# --- one-line errors ---------------------------------------------------------------------------


def test_run_client_turns_kafka_failures_into_one_line() -> None:
    from aiokafka.errors import KafkaError

    from stream_drift.app.kafka_io import BrokerUnreachableError, ClientCommandError, run_client

    async def answer() -> int:
        return 7

    async def fail(exc: Exception) -> None:
        raise exc

    assert run_client(answer(), "k:1") == 7
    with pytest.raises(ClientCommandError) as caught:
        run_client(fail(BrokerUnreachableError("k:1", 2.0, "refused")), "k:1")
    assert str(caught.value) == (
        "cannot reach Kafka at k:1 within 2 s (is the broker running? "
        "--bootstrap/kafka.bootstrap_servers; last error: refused)"
    )
    with pytest.raises(ClientCommandError, match=r"^Kafka at k:1: KafkaError: boom$"):
        run_client(fail(KafkaError("boom")), "k:1")
    with pytest.raises(ValueError):
        run_client(fail(ValueError("not ours")), "k:1")
