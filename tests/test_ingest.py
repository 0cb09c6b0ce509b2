"""Stage 1 without Kafka: decode, validate, bin and accumulate partial histograms."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_drift.pipeline.decode import EventDecoder
from stream_drift.pipeline.events import RawRecord, RejectReason
from stream_drift.pipeline.ingest import IngestAccumulator
from stream_drift.pipeline.partials import Partial
from stream_drift.pipeline.reference import ReferenceProfile, build_reference
from stream_drift.pipeline.registry import ReferenceRegistry, WarmupCollector
from stream_drift.stats.histogram import Histogram

STEP = 60.0
T0 = 1_764_213_000.0  # a multiple of 60


def _reference(model: str = "fraud", version: str = "") -> ReferenceProfile:
    rng = np.random.default_rng(0)
    n = 1000
    return build_reference(
        {
            "amount": rng.normal(50, 10, n),
            "country": rng.choice(["DE", "FR", "US"], n).tolist(),
            "score": rng.uniform(0, 1, n),
        },
        model=model,
        model_version=version,
        prediction=["score"],
    )


def _registry(*profiles: ReferenceProfile) -> ReferenceRegistry:
    reg = ReferenceRegistry()
    for p in profiles or (_reference(),):
        reg.add(p)
    return reg


def _rec(
    obj: Any, offset: int, *, topic: str = "drift.events", partition: int = 0, ts_ms: int = 0
) -> RawRecord:
    value = obj if isinstance(obj, bytes) or obj is None else json.dumps(obj).encode()
    return RawRecord(value, topic, partition, offset, ts_ms)


def _event(ts: float, amount: Any = 50.0, country: Any = "DE", score: Any = 0.5) -> dict[str, Any]:
    return {
        "model": "fraud",
        "ts": ts,
        "features": {"amount": amount, "country": country},
        "prediction": score,
    }


def _one(partials: list[Partial], **match: str) -> Partial:
    found = [p for p in partials if all(getattr(p, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, partials)
    return found[0]


def _hist(p: Partial, step: float, series: str, ref: ReferenceProfile) -> Histogram:
    return p.steps[step][series].to_histogram(ref.series[series].histogram.binning)


def test_step_must_be_positive() -> None:
    with pytest.raises(ValueError, match="step_seconds"):
        IngestAccumulator(_registry(), step_seconds=0)


def test_accepted_counts_are_exact_per_model() -> None:
    reg = _registry(_reference("fraud"), _reference("churn"))
    acc = IngestAccumulator(reg, step_seconds=STEP)
    recs = [_rec(_event(T0 + i), i) for i in range(7)]
    recs += [_rec({**_event(T0 + i), "model": "churn"}, 7 + i) for i in range(3)]
    out = acc.add_records(recs)
    assert dict(out.accepted) == {"fraud": 7, "churn": 3}
    assert out.rejections == []
    assert acc.pending_events == 10
    partials = acc.flush()
    assert {p.model: p.n_events for p in partials} == {"fraud": 7, "churn": 3}


def test_every_rejection_keeps_its_record_and_nothing_is_lost() -> None:
    acc = IngestAccumulator(_registry(), step_seconds=STEP)
    bad = [
        b"not json",
        b"[1, 2]",
        None,  # tombstone
        b"   ",
        json.dumps({"features": {"amount": 1}}).encode(),  # no model
        json.dumps({"model": "fraud"}).encode(),  # no payload
        json.dumps({"model": "fraud", "ts": "yesterday", "prediction": 1}).encode(),
        json.dumps({"model": "fraud", "ts": T0, "features": {"amount": [1]}}).encode(),
        json.dumps({"model": "nobody", "ts": T0, "prediction": 1}).encode(),
        json.dumps({"model": "fraud", "ts": T0, "features": {"prediction": 1}}).encode(),
    ]
    good = [_event(T0 + i) for i in range(5)]
    recs = [_rec(bad[i], 2 * i) for i in range(len(bad))]
    recs += [_rec(good[i], 2 * i + 1) for i in range(len(good))]
    out = acc.add_records(recs)
    assert sum(out.accepted.values()) + len(out.rejections) == len(recs)
    assert sum(out.accepted.values()) == len(good)
    # Each rejection carries the very record it refused, bytes unchanged.
    assert [r.record for r in out.rejections] == [_rec(b, 2 * i) for i, b in enumerate(bad)]
    reasons = [r.reason for r in out.rejections]
    assert reasons == [
        RejectReason.MALFORMED_JSON,
        RejectReason.NOT_AN_OBJECT,
        RejectReason.EMPTY,
        RejectReason.EMPTY,
        RejectReason.MISSING_MODEL,
        RejectReason.NO_PAYLOAD,
        RejectReason.BAD_TIMESTAMP,
        RejectReason.INVALID_TYPE,
        RejectReason.UNKNOWN_MODEL,
        RejectReason.INVALID_NAME,
    ]
    assert all(r.detail for r in out.rejections)


def test_unknown_model_is_rejected_when_warmup_is_off() -> None:
    acc = IngestAccumulator(_registry(), step_seconds=STEP)
    rec = _rec({**_event(T0), "model": "churn"}, 0)
    out = acc.add_records([rec])
    assert not out.accepted
    [rej] = out.rejections
    assert rej.reason is RejectReason.UNKNOWN_MODEL
    assert rej.model == "churn"
    assert "churn" in rej.detail
    assert rej.record is rec
    assert acc.flush() == []


def test_decoder_known_models_also_rejects() -> None:
    reg = _registry(_reference("fraud"), _reference("churn"))
    acc = IngestAccumulator(reg, step_seconds=STEP, decoder=EventDecoder(known_models={"fraud"}))
    out = acc.add_records([_rec({**_event(T0), "model": "churn"}, 0), _rec(_event(T0), 1)])
    assert dict(out.accepted) == {"fraud": 1}
    assert [r.reason for r in out.rejections] == [RejectReason.UNKNOWN_MODEL]


def test_version_falls_back_to_the_models_newest_reference() -> None:
    v1 = _reference("fraud", "1")
    acc = IngestAccumulator(_registry(v1), step_seconds=STEP)
    out = acc.add_records([_rec({**_event(T0), "model_version": 2}, 0)])
    assert dict(out.accepted) == {"fraud": 1}
    [p] = acc.flush()
    assert (p.model_version, p.reference_id) == ("2", v1.id)


def test_versions_and_sources_make_separate_partials() -> None:
    ref = _reference()
    acc = IngestAccumulator(_registry(ref), step_seconds=STEP)
    recs = [
        _rec({**_event(T0 + 1), "model_version": "1"}, 0, partition=0),
        _rec({**_event(T0 + 2), "model_version": "2"}, 1, partition=0),
        _rec({**_event(T0 + 3), "model_version": "1"}, 0, partition=1),
        _rec({**_event(T0 + 4), "model_version": "1"}, 5, topic="other", partition=0),
    ]
    acc.add_records(recs)
    partials = acc.flush()
    keys = sorted((p.model_version, p.source, p.n_events) for p in partials)
    assert keys == [
        ("1", "drift.events/0", 1),
        ("1", "drift.events/1", 1),
        ("1", "other/0", 1),
        ("2", "drift.events/0", 1),
    ]


def test_events_are_split_into_the_right_steps() -> None:
    ref = _reference()
    acc = IngestAccumulator(_registry(ref), step_seconds=STEP)
    times = [T0, T0 + 59.999, T0 + 60, T0 + 119.5, T0 + 300, T0 - 0.001]
    acc.add_records([_rec(_event(t, amount=float(i)), i) for i, t in enumerate(times)])
    [p] = acc.flush()
    assert p.events == {T0 - 60: 1, T0: 2, T0 + 60: 2, T0 + 300: 1}
    assert set(p.steps) == set(p.events)
    for step, n in p.events.items():
        assert _hist(p, step, "amount", ref).total == n
        assert _hist(p, step, "prediction", ref).total == n
    amounts = [float(i) for i, t in enumerate(times) if T0 <= t < T0 + 60]
    assert _hist(p, T0, "amount", ref) == ref.series["amount"].empty().add(amounts)


def test_timestamps_in_every_accepted_form_and_record_time_fallback() -> None:
    ref = _reference()
    acc = IngestAccumulator(_registry(ref), step_seconds=STEP)
    no_ts = {k: v for k, v in _event(0).items() if k != "ts"}
    recs = [
        _rec(_event(T0 + 5), 0),
        _rec(_event((T0 + 65) * 1000), 1),  # epoch milliseconds
        _rec(_event("2025-11-27T03:12:05Z"), 2),  # RFC 3339
        _rec(no_ts, 3, ts_ms=int((T0 + 200) * 1000)),  # Kafka record timestamp
    ]
    out = acc.add_records(recs)
    assert out.rejections == []
    [p] = acc.flush()
    rfc_step = math.floor(1764213125.0 / STEP) * STEP
    expected: dict[float, int] = defaultdict(int)
    for step in (T0, T0 + 60, rfc_step, T0 + 180):
        expected[step] += 1
    assert p.events == dict(expected)
    assert p.watermark == T0 + 200


def _random_events(rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        ev: dict[str, Any] = {"model": "fraud", "ts": T0 + float(rng.uniform(0, 240))}
        kind = rng.integers(0, 3)  # 0: both, 1: features only, 2: prediction only
        if kind in (0, 1):
            feats: dict[str, Any] = {}
            if rng.random() < 0.9:
                feats["amount"] = None if rng.random() < 0.1 else float(rng.normal(50, 15))
            if rng.random() < 0.9:
                feats["country"] = (
                    None if rng.random() < 0.1 else str(rng.choice(["DE", "FR", "US", "IT"]))
                )
            if not feats:
                feats["unrelated"] = 1.0
            ev["features"] = feats
        if kind == 0 and rng.random() < 0.05:
            ev["prediction"] = None  # a null payload counts as absent (DESIGN §3.1)
        elif kind in (0, 2):
            ev["prediction"] = float(rng.uniform())
        out.append(ev)
    return out


def _expected_columns(events: list[dict[str, Any]]) -> dict[float, dict[str, list[Any]]]:
    """Per step, per series, the values the stream should count (missing as None)."""
    cols: dict[float, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for ev in events:
        step = math.floor(ev["ts"] / STEP) * STEP
        if "features" in ev:
            for name in ("amount", "country"):
                cols[step][name].append(ev["features"].get(name))
        if ev.get("prediction") is not None:
            cols[step]["prediction"].append(ev["prediction"])
    return cols


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 120), batches=st.integers(1, 4))
def test_partial_histograms_equal_direct_histograms(seed: int, n: int, batches: int) -> None:
    ref = _reference()
    rng = np.random.default_rng(seed)
    events = _random_events(rng, n)
    acc = IngestAccumulator(_registry(ref), step_seconds=STEP)
    recs = [_rec(ev, i) for i, ev in enumerate(events)]
    cut = np.array_split(np.arange(len(recs)), batches)
    for idx in cut:  # several batches before one flush accumulate into the same partial
        acc.add_records([recs[i] for i in idx])
    [p] = acc.flush()
    expected = _expected_columns(events)
    assert set(p.steps) == set(expected)
    assert p.events == {
        s: sum(1 for ev in events if math.floor(ev["ts"] / STEP) * STEP == s) for s in expected
    }
    for step, series in expected.items():
        for name in ("amount", "country", "prediction"):
            direct = ref.series[name].empty().add(series.get(name, []))
            got = _hist(p, step, name, ref) if name in p.steps[step] else ref.series[name].empty()
            assert got == direct, (step, name)


def test_prediction_only_events_do_not_count_features_as_missing() -> None:
    ref = _reference()
    acc = IngestAccumulator(_registry(ref), step_seconds=STEP)
    recs = [_rec({"model": "fraud", "ts": T0 + i, "prediction": 0.1 * i}, i) for i in range(5)]
    recs += [_rec({"model": "fraud", "ts": T0, "features": {"amount": 3.0}}, 5)]
    acc.add_records(recs)
    [p] = acc.flush()
    amount = _hist(p, T0, "amount", ref)
    assert (amount.n, amount.missing) == (1, 0)
    prediction = _hist(p, T0, "prediction", ref)
    assert (prediction.n, prediction.missing) == (5, 0)
    # country: one feature-carrying event without it -> one missing, nothing from predictions
    country = _hist(p, T0, "country", ref)
    assert (country.n, country.missing) == (0, 1)


def test_a_feature_absent_from_every_event_is_counted_missing() -> None:
    # A service that stops sending a feature must show a 100 % missing rate, not silence.
    ref = _reference()
    acc = IngestAccumulator(_registry(ref), step_seconds=STEP)
    recs = [
        _rec({"model": "fraud", "ts": T0 + i, "features": {"amount": 1.0}}, i) for i in range(4)
    ]
    recs.append(_rec({"model": "fraud", "ts": T0, "prediction": 0.5}, 4))
    acc.add_records(recs)
    [p] = acc.flush()
    country = _hist(p, T0, "country", ref)
    assert (country.n, country.missing) == (0, 4)
    # Feature-only events leave the prediction alone.
    prediction = _hist(p, T0, "prediction", ref)
    assert (prediction.n, prediction.missing) == (1, 0)


def test_watermark_is_the_largest_event_time_per_source() -> None:
    acc = IngestAccumulator(_registry(), step_seconds=STEP)
    acc.add_records(
        [
            _rec(_event(T0 + 50), 0, partition=0),
            _rec(_event(T0 + 10), 1, partition=0),  # out of order: watermark stays
            _rec(_event(T0 + 20), 0, partition=1),
            _rec(b"garbage", 2, partition=0),
        ]
    )
    assert acc.watermarks == {
        ("drift.events/0", "fraud"): T0 + 50,
        ("drift.events/1", "fraud"): T0 + 20,
    }
    partials = acc.flush()
    assert _one(partials, source="drift.events/0").watermark == T0 + 50
    assert _one(partials, source="drift.events/1").watermark == T0 + 20
    # The watermark persists across flushes and only moves forward.
    acc.add_records([_rec(_event(T0 + 5), 3, partition=0)])
    [p] = acc.flush()
    assert p.watermark == T0 + 50


def test_offset_end_is_last_offset_plus_one() -> None:
    acc = IngestAccumulator(_registry(), step_seconds=STEP)
    acc.add_records([_rec(_event(T0), off) for off in (10, 11, 12)])
    acc.add_records([_rec(_event(T0), 7, partition=1)])
    partials = acc.flush()
    assert _one(partials, source="drift.events/0").offset_end == 13
    assert _one(partials, source="drift.events/1").offset_end == 8
    acc.add_records([_rec(_event(T0), 13), _rec(_event(T0), 14)])
    [p] = acc.flush()
    assert p.offset_end == 15


def test_flush_resends_an_incomplete_chunk_cumulatively_and_only_when_it_grew() -> None:
    acc = IngestAccumulator(_registry(), step_seconds=STEP, chunk_records=5)
    acc.add_records([_rec(_event(T0 + i), i) for i in range(3)])
    assert acc.pending_events == 3
    [p] = acc.flush()
    assert (p.offset_start, p.offset_end, p.events) == (0, 3, {T0: 3})
    assert acc.pending_events == 0
    assert acc.flush() == []  # nothing new in the chunk: nothing resent
    assert acc.commit_offset("drift.events", 0) == 0  # chunk [0, 5) incomplete
    # Offsets 3..6: the chunk [0, 5) completes (sent whole, then forgotten), [5, 10) starts.
    acc.add_records([_rec(_event(T0 + 61), off) for off in (3, 4, 5, 6)])
    first, second = sorted(acc.flush(), key=lambda q: q.offset_start)
    assert (first.offset_start, first.offset_end, first.events) == (0, 5, {T0: 3, T0 + 60: 2})
    assert (second.offset_start, second.offset_end, second.events) == (5, 7, {T0 + 60: 2})
    assert acc.commit_offset("drift.events", 0) == 5
    acc.add_records([_rec(_event(T0 + 62), 7)])
    [p] = acc.flush()
    assert (p.offset_start, p.offset_end, p.events) == (5, 8, {T0 + 60: 3})


def test_a_chunk_ends_at_its_boundary_even_when_its_last_records_are_bad() -> None:
    acc = IngestAccumulator(_registry(), step_seconds=STEP, chunk_records=4)
    acc.add_records([_rec(_event(T0), 0), _rec(b"junk", 1), _rec(b"junk", 2), _rec(b"junk", 3)])
    [p] = acc.flush()
    assert (p.offset_start, p.offset_end, p.n_events) == (0, 4, 1)
    assert acc.commit_offset("drift.events", 0) == 4
    assert acc.flush() == []


def test_forget_drops_a_revoked_partition() -> None:
    acc = IngestAccumulator(_registry(), step_seconds=STEP, chunk_records=100)
    acc.add_records([_rec(_event(T0), off) for off in range(3)])
    acc.flush()
    acc.forget("drift.events", 0)
    assert acc.commit_offset("drift.events", 0) is None
    # It comes back and is replayed from the chunk start: counted from scratch, not twice.
    acc.add_records([_rec(_event(T0), off) for off in range(4)])
    [p] = acc.flush()
    assert (p.offset_start, p.offset_end, p.n_events) == (0, 4, 4)


def test_chunk_records_is_validated() -> None:
    with pytest.raises(ValueError, match="chunk_records"):
        IngestAccumulator(_registry(), step_seconds=STEP, chunk_records=0)


def test_warmup_learns_from_the_first_n_events_then_bins_later_ones() -> None:
    reg = ReferenceRegistry()
    acc = IngestAccumulator(reg, step_seconds=STEP, warmup=WarmupCollector(n_events=100))
    rng = np.random.default_rng(1)
    events = [_event(T0 + i, float(rng.normal()), "DE", float(rng.uniform())) for i in range(150)]
    out1 = acc.add_records([_rec(ev, i) for i, ev in enumerate(events[:60])])
    assert (out1.warming_up, out1.learned, dict(out1.accepted)) == (60, [], {})
    assert acc.flush() == []
    out2 = acc.add_records([_rec(ev, 60 + i) for i, ev in enumerate(events[60:100])])
    assert out2.warming_up == 40
    [learned] = out2.learned
    assert reg.lookup("fraud", "") is learned
    assert learned.series["amount"].histogram.n == 100
    assert learned.series["prediction"].role == "prediction"
    assert acc.flush() == []  # warm-up events are the reference, not judged
    out3 = acc.add_records([_rec(ev, 100 + i) for i, ev in enumerate(events[100:])])
    assert dict(out3.accepted) == {"fraud": 50}
    assert out3.warming_up == 0
    [p] = acc.flush()
    assert p.reference_id == learned.id
    assert p.n_events == 50
    got = Histogram(learned.series["amount"].histogram.binning)
    for step in p.steps:
        got.merge_in(_hist(p, step, "amount", learned))
    direct = learned.series["amount"].empty().add([ev["features"]["amount"] for ev in events[100:]])
    assert got == direct


def test_warmup_completing_mid_batch_accepts_the_rest_of_the_batch() -> None:
    # Nothing is dropped silently: events after the N-th in the batch that completes the
    # warm-up are binned against the new reference, not thrown away.
    reg = ReferenceRegistry()
    acc = IngestAccumulator(reg, step_seconds=STEP, warmup=WarmupCollector(n_events=100))
    recs = [_rec(_event(T0 + i, float(i)), i) for i in range(130)]
    out = acc.add_records(recs)
    assert len(out.learned) == 1
    assert out.warming_up == 100
    assert dict(out.accepted) == {"fraud": 30}
    assert out.warming_up + sum(out.accepted.values()) + len(out.rejections) == len(recs)
    [p] = acc.flush()
    assert p.n_events == 30
    assert p.offset_end == 130
    assert p.watermark == T0 + 129
    ref = out.learned[0]
    got = Histogram(ref.series["amount"].histogram.binning)
    for step in p.steps:
        got.merge_in(_hist(p, step, "amount", ref))
    assert got == ref.series["amount"].empty().add([float(i) for i in range(100, 130)])


def test_an_event_ahead_of_the_clock_is_dead_lettered_and_moves_no_watermark() -> None:
    now = T0 + 1000
    acc = IngestAccumulator(
        _registry(), step_seconds=STEP, max_future_seconds=300, clock=lambda: now
    )
    out = acc.add_records(
        [
            _rec(_event(now + 299), 0),  # within the bound: accepted
            _rec(_event(32_503_680_000.0), 1),  # the year 3000
            _rec(_event(now + 301), 2),  # an hour-ahead clock is refused too, from 300 s on
        ]
    )
    assert dict(out.accepted) == {"fraud": 1}
    assert [r.reason for r in out.rejections] == [RejectReason.FUTURE_TIMESTAMP] * 2
    assert "ahead of the worker's clock" in out.rejections[0].detail
    assert out.rejections[0].model == "fraud"
    [p] = acc.flush()
    assert p.watermark == now + 299


def test_max_future_seconds_is_validated() -> None:
    with pytest.raises(ValueError, match="max_future_seconds"):
        IngestAccumulator(_registry(), step_seconds=STEP, max_future_seconds=-1)


# --- values of the wrong kind (issue 7) ------------------------------------------------------


def test_wrong_kind_values_are_counted_apart_from_missing_ones() -> None:
    """``"amount": "12.5"`` where the reference is numeric: accepted, not missing, counted."""
    ref = _reference()
    acc = IngestAccumulator(_registry(ref), step_seconds=STEP)
    amounts: list[Any] = ["12.5", None, 40.0, "forty", True, 7.5]
    out = acc.add_records([_rec(_event(T0 + i, amount=a), i) for i, a in enumerate(amounts)])
    assert dict(out.accepted) == {"fraud": 6} and out.rejections == []
    # A bool arrives as "true" (the decoder's category form): the wrong kind too.
    assert out.mismatched == {("fraud", "amount"): 3}
    [p] = acc.flush()
    amount = _hist(p, T0, "amount", ref)
    assert (amount.n, amount.missing, amount.mismatched) == (2, 1, 3)
    assert amount.missing_ratio == pytest.approx(1 / 6)
    assert amount.mismatch_ratio == pytest.approx(3 / 6)
    # The serialised partial carries the count (stage 2 slides it like any other).
    assert p.steps[T0]["amount"].mismatched == 3
    # A number where the reference has categories is a category, not a mismatch.
    out = acc.add_records([_rec(_event(T0, country=49.0), 10)])
    assert out.mismatched == {}


@settings(max_examples=30, deadline=None)
@given(
    amounts=st.lists(
        st.one_of(st.floats(0, 100), st.none(), st.sampled_from(["12.5", "x", "", True])),
        min_size=1,
        max_size=40,
    ),
    batches=st.integers(1, 4),
)
def test_batch_outcomes_count_exactly_the_mismatches_in_the_histograms(
    amounts: list[Any], batches: int
) -> None:
    ref = _reference()
    acc = IngestAccumulator(_registry(ref), step_seconds=STEP)
    recs = [_rec(_event(T0 + i % 120, amount=a), i) for i, a in enumerate(amounts)]
    counted = 0
    for idx in np.array_split(np.arange(len(recs)), batches):
        out = acc.add_records([recs[i] for i in idx])
        assert set(out.mismatched) <= {("fraud", "amount")}
        counted += out.mismatched[("fraud", "amount")]
    want = sum(1 for a in amounts if isinstance(a, str | bool))
    assert counted == want
    [p] = acc.flush()
    in_partial = sum(
        _hist(p, s, "amount", ref).mismatched for s in p.steps if "amount" in p.steps[s]
    )
    assert in_partial == want


def test_a_resent_chunk_carries_only_the_histograms_of_the_steps_that_changed() -> None:
    acc = IngestAccumulator(_registry(), step_seconds=STEP, chunk_records=1000)
    acc.add_records([_rec(_event(T0 + i), i) for i in range(3)])
    [first] = acc.flush()
    assert set(first.steps) == {T0}
    acc.add_records([_rec(_event(T0 + 61), 3)])
    [second] = acc.flush()
    # Counts are cumulative over the chunk, histograms only for the step that got events.
    assert (second.offset_start, second.events) == (0, {T0: 3, T0 + 60: 1})
    assert set(second.steps) == {T0 + 60}


def test_a_flood_of_new_model_names_is_bounded_during_warm_up() -> None:
    """5,000 new model names with warm-up on: at most warmup max_models are learned, the
    others dead-lettered as unknown_model."""
    reg = ReferenceRegistry()
    acc = IngestAccumulator(
        reg, step_seconds=STEP, warmup=WarmupCollector(n_events=100, max_models=50)
    )
    records = [
        _rec({"model": f"m{i}", "ts": T0, "features": {"x": float(i)}}, i) for i in range(5000)
    ]
    out = acc.add_records(records)
    assert out.warming_up == 50
    assert len(out.rejections) == 4950
    assert {r.reason for r in out.rejections} == {RejectReason.UNKNOWN_MODEL}
    assert "references.warmup_max_models" in out.rejections[0].detail
    assert acc.warmup is not None and len(acc.warmup.pending()) == 50
    # A model already being learned keeps being fed.
    out = acc.add_records([_rec({"model": "m0", "ts": T0, "features": {"x": 1.0}}, 5000)])
    assert out.warming_up == 1 and not out.rejections
