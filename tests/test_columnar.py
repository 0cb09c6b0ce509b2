"""The columnar stage 1 gives what the per-record path gives, record for record."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_drift.pipeline import columnar
from stream_drift.pipeline.columnar import FastDecoders, RecordBatch
from stream_drift.pipeline.decode import EventDecoder
from stream_drift.pipeline.events import RawRecord
from stream_drift.pipeline.ingest import BatchOutcome, IngestAccumulator
from stream_drift.pipeline.reference import ReferenceProfile, build_reference
from stream_drift.pipeline.registry import ReferenceRegistry, WarmupCollector

STEP = 60.0
NOW = 1_764_213_600.0  # the accumulators' clock
T0 = NOW - 600.0


def _fraud(version: str) -> ReferenceProfile:
    """Numeric + categorical features, a scalar numeric prediction."""
    rng = np.random.default_rng(0)
    return build_reference(
        {
            "amount": rng.normal(50, 10, 500),
            "age": rng.integers(18, 90, 500).astype(float),
            "country": rng.choice(["DE", "FR", "US"], 500).tolist(),
            "score": rng.uniform(0, 1, 500),
        },
        model="fraud",
        model_version=version,
        prediction=["score"],
        sample_rows=50,  # stage 1 samples the events of a reference with a row sample
    )


def _churn() -> ReferenceProfile:
    """Named outputs (one numeric, one categorical) and a categorical feature only."""
    rng = np.random.default_rng(1)
    return build_reference(
        {
            "plan": rng.choice(["a", "b"], 300).tolist(),
            "p": rng.uniform(0, 1, 300),
            "label": rng.choice(["yes", "no"], 300).tolist(),
        },
        model="churn",
        prediction=["p", "label"],
        sample_rows=50,
    )


def _other_fraud() -> ReferenceProfile:
    """Version 2 of fraud with another shape: its rows cannot use version 1's struct."""
    rng = np.random.default_rng(2)
    return build_reference(
        {"amount": rng.normal(0, 1, 300).astype(str).tolist(), "score": rng.uniform(0, 1, 300)},
        model="fraud",
        model_version="2",
        prediction=["score"],
    )


ABSENT: Any = object()

numbers = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.integers(-(10**6), 10**6),
    st.just(10**400),  # beyond float range
    st.sampled_from([0.0, 50.0, 1e-300]),
)
values = st.one_of(
    numbers,
    st.none(),
    st.sampled_from(["DE", "FR", "US", "x", "", "12.5", True, False]),
    st.just([1]),
    st.just({"a": 1}),
)
feature_names = st.sampled_from(
    ["amount", "age", "country", "plan", "unknown", "prediction", "prediction.x", ""]
)
features = st.one_of(
    st.just(ABSENT),
    st.none(),
    st.just({}),
    st.just([1, 2]),
    st.dictionaries(feature_names, values, max_size=5),
    # the common, full shape
    st.builds(
        lambda a, g, c: {"amount": a, "age": g, "country": c},
        st.floats(0, 100, allow_nan=False),
        st.one_of(st.none(), st.floats(18, 90, allow_nan=False)),
        st.sampled_from(["DE", "FR", "US", "BR"]),
    ),
)
predictions = st.one_of(
    st.just(ABSENT),
    st.none(),
    values,
    st.just({}),
    st.dictionaries(st.sampled_from(["p", "label", "other", ""]), values, max_size=3),
    st.floats(0, 1, allow_nan=False),
)
timestamps = st.one_of(
    st.just(ABSENT),
    st.none(),
    st.floats(T0 - 300, NOW + 100, allow_nan=False),  # some late, some in the future
    st.just((T0 + 5) * 1000.0),  # milliseconds
    st.just("2025-11-27T03:10:00Z"),
    st.sampled_from(["yesterday", -5.0, 1e20, NOW + 10_000.0]),
    st.integers(int(T0), int(NOW)),
)
models = st.sampled_from(["fraud", "fraud", "fraud", "churn", "nobody", "", " ", None, 5])
versions = st.sampled_from([ABSENT, ABSENT, "1", "2", 1, None, [1], "9"])


@st.composite
def event_bytes(draw: st.DrawFn) -> bytes | None:
    kind = draw(st.integers(0, 20))
    if kind == 0:
        return draw(
            st.sampled_from(
                [
                    None,
                    b"",
                    b"   ",
                    b"not json",
                    b"[1, 2]",
                    b"null",
                    b'{"model": "fraud"',
                    b'{"model": "fraud", "ts": NaN, "prediction": 1}',
                    b"\xff\xfe",
                    b'{"model":"fraud","prediction":1},{"model":"fraud","prediction":2}',
                ]
            )
        )
    obj: dict[str, Any] = {}
    for key, strategy in [
        ("model", models),
        ("model_version", versions),
        ("event_id", st.sampled_from([ABSENT, "e1", 7, None, [1]])),
        ("ts", timestamps),
        ("features", features),
        ("prediction", predictions),
        ("extra", st.sampled_from([ABSENT, ABSENT, 1, "x"])),
    ]:
        value = draw(strategy)
        if value is not ABSENT:
            obj[key] = value
    return json.dumps(obj).encode()


@st.composite
def batches(draw: st.DrawFn) -> list[list[RawRecord]]:
    next_offset = [0, 0, 0]
    out = []
    for _ in range(draw(st.integers(1, 3))):
        batch = []
        for value in draw(st.lists(event_bytes(), max_size=40)):
            partition = draw(st.integers(0, 2))
            offset = next_offset[partition]
            next_offset[partition] += draw(st.integers(1, 3))  # gaps, as compaction leaves
            kafka_ts = draw(st.sampled_from([int(T0 * 1000), -1]))
            batch.append(RawRecord(value, "ev", partition, offset, kafka_ts, b"k"))
        out.append(batch)
    return out


def _accumulator(columnar: bool, warmup: bool) -> IngestAccumulator:
    registry = ReferenceRegistry()
    for profile in (_fraud("1"), _churn(), _other_fraud()):
        registry.add(profile)
    return IngestAccumulator(
        registry,
        step_seconds=STEP,
        decoder=EventDecoder(max_message_bytes=300),
        warmup=WarmupCollector(5, max_models=1) if warmup else None,
        chunk_records=7,
        max_future_seconds=60.0,
        clock=lambda: NOW,
        columnar=columnar,
        sample_per_step=2,  # the row sample (Partial.sample) is compared with the rest
    )


def _outcome(out: BatchOutcome) -> tuple[Any, ...]:
    return (
        dict(out.accepted),
        dict(out.mismatched),
        [
            (r.record, r.reason, r.detail, r.model)  # in record order, records themselves
            for r in out.rejections
        ],
        [p.id for p in out.learned],
        out.warming_up,
    )


def _state(acc: IngestAccumulator) -> tuple[Any, ...]:
    partials = sorted(
        acc.flush(), key=lambda p: (p.model, p.model_version, p.source, p.offset_start)
    )
    return (
        partials,
        acc.positions,
        acc.offsets,
        acc.watermarks,
        {s: acc.commit_offset("ev", int(s.split("/")[1])) for s in acc.positions},
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.booleans())
def test_columnar_path_equals_per_record_path(data: list[list[RawRecord]], warmup: bool) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(columnar, "MIN_COLUMNAR_ROWS", 1)  # the small batches here take columns too
        _compare(data, warmup)


def _compare(data: list[list[RawRecord]], warmup: bool) -> None:
    fast = _accumulator(True, warmup)
    slow = _accumulator(False, warmup)
    for i, batch in enumerate(data):
        assert _outcome(fast.add_records(batch)) == _outcome(slow.add_records(batch))
        if i % 2:  # flushes between some batches: the cumulative chunks must agree too
            assert _state(fast) == _state(slow)
    assert _state(fast) == _state(slow)


def test_common_batch_takes_the_columnar_path() -> None:
    """A clean batch is judged without the per-record path (which would be ~5x slower)."""
    acc = _accumulator(True, False)
    recs = [
        RawRecord(
            json.dumps(
                {
                    "model": "fraud",
                    "model_version": "1",
                    "ts": T0 + i,
                    "prediction": 0.5,
                    "features": {"amount": 50.0 + i, "age": 30, "country": "FR"},
                }
            ).encode(),
            "ev",
            i % 2,
            i,
            0,
        )
        for i in range(50)
    ]
    acc.add_records(recs[:1])  # fraud's newest is version 2: the struct follows version 1
    acc.flush()
    acc.prepare()
    computed = acc.compute(RecordBatch.of_records(recs[1:]))
    assert computed.slow == []
    assert sum(g.events for g in computed.groups) == 49
    out = acc.apply(computed)
    assert dict(out.accepted) == {"fraud": 49}
    # Independent count: the ages (all 30) sit in one bin of the reference.
    ref = acc.registry.lookup("fraud", "1")
    assert ref is not None
    age_bin = int(np.searchsorted(ref.series["age"].binning.edges, 30.0, side="right"))  # type: ignore[union-attr]
    total = sum(
        p.steps[s]["age"].counts[p.steps[s]["age"].bins.index(age_bin)]
        for p in acc.flush()
        for s in p.steps
    )
    assert total == 50


def test_a_reference_replaced_during_compute_is_judged_anew(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(columnar, "MIN_COLUMNAR_ROWS", 1)
    acc = _accumulator(True, False)
    rec = RawRecord(
        b'{"model": "churn", "features": {"plan": "a"}, "prediction": {"p": 0.5}}', "ev", 0, 0, 0
    )
    acc.prepare()
    computed = acc.compute(RecordBatch.of_records([rec]))
    assert computed.groups
    rng = np.random.default_rng(5)
    acc.registry.add(build_reference({"plan": rng.choice(["z"], 100).tolist()}, model="churn"))
    out = acc.apply(computed)
    assert dict(out.accepted) == {"churn": 1}
    [partial] = acc.flush()
    assert partial.reference_id == acc.registry.lookup("churn", "").id  # type: ignore[union-attr]


def test_rows_of_a_model_without_reference_go_to_the_per_record_path() -> None:
    fast = FastDecoders(ReferenceRegistry())
    fast.refresh()
    batch = RecordBatch.of_records([RawRecord(b'{"model": "m", "prediction": 1}', "ev", 0, 0, 0)])
    out = fast.compute(
        batch, step_seconds=STEP, chunk_records=10, horizon=math.inf, max_message_bytes=100
    )
    assert out.slow == [0] and not out.groups


@pytest.mark.parametrize(
    "value",
    [
        b'{"model": "fraud", "model_version": "1", "features": {}}',
        b'{"model": "fraud", "model_version": "1", "features": {"amount": null}}',
        b'{"model": "churn", "prediction": {}}',
        b'{"model": "churn", "prediction": {"p": null}}',
    ],
)
def test_empty_and_all_null_payloads_agree(value: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(columnar, "MIN_COLUMNAR_ROWS", 1)
    rec = RawRecord(value, "ev", 0, 0, int(T0 * 1000))
    fast, slow = _accumulator(True, False), _accumulator(False, False)
    assert _outcome(fast.add_records([rec])) == _outcome(slow.add_records([rec]))
    assert _state(fast) == _state(slow)


def test_a_batch_from_consumer_messages_counts_like_its_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker builds batches from aiokafka's messages (value, offset, timestamp, key)."""
    monkeypatch.setattr(columnar, "MIN_COLUMNAR_ROWS", 1)

    class Message:
        def __init__(self, record: RawRecord) -> None:
            self.value, self.offset = record.value, record.offset
            self.timestamp, self.key = record.timestamp_ms, record.key

    records = [
        RawRecord(
            json.dumps(
                {
                    "model": "churn",
                    "ts": T0 + i,
                    "features": {"plan": "ab"[i % 2]},
                    "prediction": {"p": i / 10, "label": "yes"},
                }
            ).encode()
            if i != 3
            else b"oops",
            "ev",
            p,
            i,
            int(T0 * 1000),
            b"k",
        )
        for p in (0, 1)
        for i in range(6)
    ]
    batch = RecordBatch([], [], [], [], [])
    for p in (0, 1):
        batch.add_partition("ev", p, [Message(r) for r in records if r.partition == p])
    assert [batch.record(i) for i in range(len(batch))] == records
    fast, slow = _accumulator(True, False), _accumulator(False, False)
    assert _outcome(fast.add_batch(batch)) == _outcome(slow.add_records(records))
    assert _state(fast) == _state(slow)


def test_a_model_with_few_rows_in_a_batch_takes_the_per_record_path() -> None:
    records = [
        RawRecord(
            json.dumps({"model": "churn", "ts": T0, "features": {"plan": "a"}}).encode(),
            "ev",
            0,
            i,
            0,
        )
        for i in range(columnar.MIN_COLUMNAR_ROWS + 1)
    ]
    acc = _accumulator(True, False)
    acc.prepare()
    assert acc.compute(RecordBatch.of_records(records[:-2])).slow == list(range(len(records) - 2))
    assert acc.compute(RecordBatch.of_records(records)).slow == []
