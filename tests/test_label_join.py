"""The delayed-label join: decoding, outcomes counted exactly, bounds, changelog restore."""

from __future__ import annotations

import gc
import json
import random
import tracemalloc
from collections import Counter

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_drift.pipeline.decode import EventDecoder
from stream_drift.pipeline.events import Event, Label, RawRecord, Rejection, RejectReason
from stream_drift.pipeline.labels import (
    WATERMARK_KEY,
    JoinStep,
    LabelJoin,
    LabelOutcomes,
    Pair,
    PredictionRecord,
    decode_predictions,
    join_key,
    outcome_messages,
)

KAFKA_MS = 1764213000000


def rec(body: object, offset: int = 0, ts_ms: int = KAFKA_MS) -> RawRecord:
    value = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    return RawRecord(value, "drift.events", 0, offset, ts_ms)  # type: ignore[arg-type]


def P(
    event_id: str, ts: float, prediction: float | str = 0.9, model: str = "m"
) -> PredictionRecord:
    return PredictionRecord(model, "1", event_id, ts, prediction)


def L(event_id: str, ts: float, label: float | str = "true", model: str = "m") -> Label:
    return Label(model, event_id, label, ts)


# --- decoding --------------------------------------------------------------------------------


def test_decode_predictions_reads_only_what_the_join_needs() -> None:
    records = [
        rec({"model": "m", "model_version": 3, "event_id": 17, "ts": 1764213001.5,
             "features": {"x": 1, "y": "a"}, "prediction": 0.75}),
        rec({"model": "m", "event_id": "a", "prediction": True}),  # ts: the record's
        rec({"model": "m", "event_id": "b", "prediction": "cat", "ts": 1764213002500}),  # ms
        rec({"model": "m", "event_id": "c", "prediction": {"p": 0.1},
             "ts": "2026-11-27T09:00:00Z"}),
        rec({"model": "m", "event_id": "n", "prediction": {"p": None}}),  # null: skipped
        rec({"model": "m", "event_id": "d", "prediction": {"p": 0.1, "q": 0.9}}),  # two outputs
        rec({"model": "m", "event_id": "e", "prediction": {}}),
        rec({"model": "m", "features": {"x": 1}, "prediction": 0.5}),  # no event_id
        rec({"model": "m", "event_id": "", "prediction": 0.5}),
        rec({"model": "m", "event_id": "f", "features": {"x": 1}}),  # no prediction
        rec({"model": " ", "event_id": "g", "prediction": 0.5}),
        rec({"model": "m", "event_id": "h", "prediction": 0.5, "ts": -5}),
        rec({"model": "m", "event_id": "i", "prediction": 0.5, "ts": "2026-11-27T09:00:00"}),
        rec({"model": "m", "event_id": "j", "prediction": 0.5}, ts_ms=-1),  # no time at all
        rec({"model": "m", "event_id": 1.5, "prediction": 0.5}),
        rec(b'{"model": "m", "event_id": "k", "prediction": NaN}'),
        rec(b"{not json"),
        rec(None),
        rec(b""),
    ]  # fmt: skip
    preds, skipped = decode_predictions(records)
    assert preds == [
        PredictionRecord("m", "3", "17", 1764213001.5, 0.75),
        PredictionRecord("m", "", "a", KAFKA_MS / 1000, "true"),
        PredictionRecord("m", "", "b", 1764213002.5, "cat"),
        PredictionRecord("m", "", "c", 1795770000.0, 0.1),
    ]
    assert skipped == len(records) - 4


def test_decode_predictions_size_and_known_models() -> None:
    body = {"model": "m", "event_id": "a", "prediction": 0.5}
    other = {"model": "o", "event_id": "a", "prediction": 0.5}
    preds, skipped = decode_predictions([rec(body), rec(other)], known_models={"m"})
    assert [p.model for p in preds] == ["m"] and skipped == 1
    preds, skipped = decode_predictions([rec(body)], max_message_bytes=10)
    assert preds == [] and skipped == 1


json_scalar = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(0, 1) | st.text(max_size=3)
wire = st.fixed_dictionaries(
    {"model": st.sampled_from(["m", "", " "])},
    optional={
        "model_version": st.none() | st.integers(0, 9) | st.text(max_size=2),
        "event_id": st.none() | st.integers(0, 99) | st.text(max_size=3),
        "ts": st.none() | st.floats(0, 2e9) | st.integers(-2, 10**13) | st.just("x"),
        "prediction": json_scalar | st.dictionaries(st.text(min_size=1, max_size=2), json_scalar),
    },
)


@given(st.lists(wire, max_size=20))
@settings(max_examples=80, deadline=None)
def test_decode_predictions_agrees_with_stage_one(bodies: list[dict[str, object]]) -> None:
    """Every record is a prediction or skipped; a prediction matches stage 1's event."""
    records = [rec(b, offset=i) for i, b in enumerate(bodies)]
    preds, skipped = decode_predictions(records)
    assert len(preds) + skipped == len(records)
    stage1 = EventDecoder().decode_batch(records)
    by_id = {}
    for ev in stage1.events:
        if ev.event_id:
            by_id.setdefault((ev.model, ev.event_id), []).append(ev)
    for p in preds:
        events: list[Event] = by_id[p.model, p.event_id]
        assert any(
            (e.model_version, e.ts) == (p.model_version, p.ts) and p.prediction in e.values.values()
            for e in events
        )
    # Stage 1's accepted events with an id and one prediction value are all predictions here.
    want = sum(
        1
        for e in stage1.events
        if e.event_id
        and sum(k == "prediction" or k.startswith("prediction.") for k in e.values) == 1
        and next(v for k, v in e.values.items() if k.startswith("prediction")) is not None
    )
    assert len(preds) == want


def test_label_model_version_is_decoded() -> None:
    dec = EventDecoder()
    body = {"model": "m", "model_version": 7, "event_id": "a", "label": 1, "ts": 5.0}
    out = dec.decode_label(RawRecord(json.dumps(body).encode(), "drift.labels", 0, 0, 0))
    assert out == Label("m", "a", 1.0, 5.0, "7")
    body["model_version"] = "v2"
    out = dec.decode_label(RawRecord(json.dumps(body).encode(), "drift.labels", 0, 0, 0))
    assert isinstance(out, Label) and out.model_version == "v2"
    del body["model_version"]
    out = dec.decode_label(RawRecord(json.dumps(body).encode(), "drift.labels", 0, 0, 0))
    assert isinstance(out, Label) and out.model_version is None
    body["model_version"] = 7.5
    out = dec.decode_label(RawRecord(json.dumps(body).encode(), "drift.labels", 0, 0, 0))
    assert isinstance(out, Rejection)
    assert out.reason is RejectReason.INVALID_TYPE
    assert out.detail == "model_version: expected string or integer, got number"


# --- join rules ------------------------------------------------------------------------------


def test_join_in_both_orders() -> None:
    join = LabelJoin(ttl_seconds=100.0, max_pending=100)
    assert join.add_predictions(0, [P("a", 10.0)]).pairs == []
    step = join.add_labels(0, [L("a", 20.0, "false")])
    assert step.pairs == [Pair("m", "1", "a", 0.9, "false", 10.0, 20.0)]
    assert step.outcomes == Counter({("m", "joined"): 1})
    assert join.add_labels(0, [L("b", 30.0, 1.0)]).pairs == []  # the label waits
    step = join.add_predictions(0, [P("b", 25.0, 0.1)])
    assert step.pairs == [Pair("m", "1", "b", 0.1, 1.0, 25.0, 30.0)]
    assert join.pending(0) == Counter({"joined": 2})


def test_duplicates_never_make_a_second_pair() -> None:
    join = LabelJoin(ttl_seconds=100.0, max_pending=100)
    step = JoinStep()
    step.extend(join.add_predictions(0, [P("a", 10.0), P("a", 11.0)]))  # replayed prediction
    step.extend(join.add_labels(0, [L("a", 12.0), L("a", 13.0)]))  # second label
    step.extend(join.add_predictions(0, [P("a", 14.0)]))  # prediction after the join
    step.extend(join.add_labels(0, [L("b", 15.0), L("b", 16.0)]))  # two waiting labels
    assert len(step.pairs) == 1 and step.pairs[0].prediction_ts == 10.0
    assert step.outcomes == Counter({("m", "joined"): 1, ("m", "duplicate"): 4})


def test_models_with_the_same_event_id_do_not_mix() -> None:
    join = LabelJoin(ttl_seconds=100.0, max_pending=100)
    join.add_predictions(0, [P("a", 1.0, model="m"), P("a", 1.0, 0.2, model="n")])
    step = join.add_labels(0, [L("a", 2.0, model="n")])
    assert [(p.model, p.prediction) for p in step.pairs] == [("n", 0.2)]


def test_expiry_by_event_time_is_exact() -> None:
    join = LabelJoin(ttl_seconds=10.0, max_pending=100)
    join.add_predictions(0, [P("a", 0.0), P("b", 5.0)])
    join.add_labels(0, [L("x", 6.0)])  # an orphan-to-be
    # Watermark 15: a (0 < 15 - 10) expires, b (5) does not: the boundary is strict.
    assert join.add_predictions(0, [P("c", 15.0)]).outcomes == Counter({("m", "expired"): 1})
    # A label exactly ttl after its prediction still joins.
    assert join.add_labels(0, [L("b", 15.0)]).outcomes == Counter({("m", "joined"): 1})
    step = join.expire(0, 16.5)  # x (6) expires; the join of b (15) is remembered
    assert step.outcomes == Counter({("m", "orphan_label"): 1})
    assert join.pending(0) == Counter({"prediction": 1, "joined": 1})
    assert join.expire(0, 100.0).outcomes == Counter({("m", "expired"): 1})  # c
    assert join.size == 0  # the join of b was forgotten, without an outcome
    # A record already older than the TTL does not wait.
    step = join.add_predictions(0, [P("old", 50.0)])
    step.extend(join.add_labels(0, [L("old2", 89.0)]))
    assert step.outcomes == Counter({("m", "expired"): 1, ("m", "orphan_label"): 1})
    assert join.size == 0
    # A late label still joins a prediction that has not expired.
    join.add_predictions(0, [P("d", 95.0), P("e", 100.0)])
    assert join.add_labels(0, [L("d", 80.0)]).outcomes == Counter({("m", "joined"): 1})


def test_partitions_have_their_own_watermarks() -> None:
    join = LabelJoin(ttl_seconds=10.0, max_pending=100)
    join.add_predictions(0, [P("a", 0.0)])
    assert join.add_predictions(1, [P("b", 1000.0)]).outcomes == Counter()
    assert join.watermark(0) == 0.0 and join.watermark(1) == 1000.0
    assert join.add_labels(0, [L("a", 5.0)]).pairs[0].event_id == "a"


def test_eviction_beyond_max_pending_is_counted_oldest_first() -> None:
    join = LabelJoin(ttl_seconds=1e9, max_pending=3)
    join.add_labels(1, [L("l1", 2.0)])
    step = join.add_predictions(0, [P("p1", 5.0), P("p0", 1.0)])
    assert step.outcomes == Counter()
    step = join.add_predictions(0, [P("p2", 6.0)])  # 4 entries: p0 (1), the oldest, goes
    assert step.outcomes == Counter({("m", "expired"): 1})
    step = join.add_predictions(0, [P("p3", 7.0), P("p4", 8.0)])
    # Over both partitions the oldest are now l1 (2) and p1 (5).
    assert step.outcomes == Counter({("m", "expired"): 1, ("m", "orphan_label"): 1})
    assert join.size == 3
    assert sorted(k for _, k, _ in join) == [join_key("m", f"p{i}") for i in (2, 3, 4)]
    step = join.add_labels(0, [L("p1", 9.0)])  # p1 was evicted: the label waits, p2 goes
    assert step.pairs == [] and step.outcomes == Counter({("m", "expired"): 1})


def test_outcome_versions_and_messages() -> None:
    join = LabelJoin(ttl_seconds=10.0, max_pending=100)
    step = join.add_predictions(0, [PredictionRecord("m", "2", "a", 3.0, 0.4)])
    step.extend(join.add_predictions(0, [PredictionRecord("m", "1", "b", 1.0, 0.8)]))
    step.extend(join.add_labels(0, [L("b", 4.0, 0.0), L("a", 5.0, 1.0)]))
    step.extend(join.add_labels(0, [Label("m", "z", 1.0, 5.0, "9"), L("y", 5.0)]))
    step.extend(join.expire(0, 100.0))
    msgs = outcome_messages(step, "drift.labels/0")
    assert [(m.model, m.model_version) for m in msgs] == [
        ("m", ""),
        ("m", "1"),
        ("m", "2"),
        ("m", "9"),
    ]
    assert msgs[1].pairs == [(1.0, 0.8, 0.0)] and msgs[1].outcomes == {"joined": 1}
    assert msgs[2].pairs == [(3.0, 0.4, 1.0)]
    assert msgs[0].outcomes == {"orphan_label": 1} and msgs[3].outcomes == {"orphan_label": 1}
    wire = msgspec.json.decode(msgs[1].to_bytes())
    assert wire["kind"] == "labels" and wire["source"] == "drift.labels/0"
    assert LabelOutcomes.from_bytes(msgs[2].to_bytes()) == msgs[2]


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        LabelJoin(ttl_seconds=0.0, max_pending=1)
    with pytest.raises(ValueError, match="max_pending"):
        LabelJoin(ttl_seconds=1.0, max_pending=0)


# --- exact counts on a generated stream ------------------------------------------------------


def test_generated_stream_outcomes_are_counted_exactly() -> None:
    """A time-ordered stream whose outcomes follow in closed form from the delays."""
    rng = random.Random(11)
    ttl = 60.0
    items: list[tuple[float, int, object]] = []  # (time, order, record)
    want: Counter[str] = Counter()
    for i in range(3000):
        t = i * 1.0 + rng.random() * 0.5
        eid = f"e{i}"
        items.append((t, 0, P(eid, t)))
        kind = rng.random()
        if kind < 0.5:  # labelled within the TTL, sometimes twice (within the TTL again)
            d = rng.uniform(0.0, ttl)
            items.append((t + d, 1, L(eid, t + d)))
            want["joined"] += 1
            if rng.random() < 0.2:
                items.append((t + d + rng.uniform(0.0, ttl - 1), 1, L(eid, t + d + 0.5)))
                want["duplicate"] += 1
        elif kind < 0.7:  # labelled too late: the prediction expires, the label is orphaned
            d = rng.uniform(ttl + 1, 3 * ttl)
            items.append((t + d, 1, L(eid, t + d)))
            want["expired"] += 1
            want["orphan_label"] += 1
        else:  # never labelled
            want["expired"] += 1
        if rng.random() < 0.05:  # a label for an id nobody predicted
            items.append((t + 0.1, 1, L(f"x{i}", t + 0.1)))
            want["orphan_label"] += 1
    items.sort(key=lambda it: (it[0], it[1]))
    join = LabelJoin(ttl_seconds=ttl, max_pending=10**6)
    got: Counter[str] = Counter()
    n_pairs = 0
    for _, kind, record in items:  # one record per call, as a worst-case batching
        step = (
            join.add_predictions(0, [record])  # type: ignore[list-item]
            if kind == 0
            else join.add_labels(0, [record])  # type: ignore[list-item]
        )
        got.update({o: n for (_, o), n in step.outcomes.items()})
        n_pairs += len(step.pairs)
    step = join.expire(0, items[-1][0] + 10 * ttl)
    got.update({o: n for (_, o), n in step.outcomes.items()})
    assert got == want
    assert n_pairs == want["joined"]
    assert join.size == 0


# --- an independent (naive) model of the rules, and the changelog ---------------------------


class NaiveJoin:
    """The rules written the slow obvious way: scans instead of heaps, one global dict."""

    def __init__(self, ttl: float, max_pending: int) -> None:
        self.ttl, self.max = ttl, max_pending
        self.state: dict[tuple[int, str], tuple] = {}  # (partition, key) -> (kind, ts, ...)
        self.wm: dict[int, float] = {}
        self.pairs: list[Pair] = []
        self.outcomes: Counter[tuple[str, str]] = Counter()

    def _drop(self, pk: tuple[int, str]) -> None:
        kind, _, model, *_ = (*self.state.pop(pk), None)
        if kind == "p":
            self.outcomes[model, "expired"] += 1
        elif kind == "l":
            self.outcomes[model, "orphan_label"] += 1

    def _time(self, part: int, ts: float) -> None:
        self.wm[part] = max(self.wm.get(part, float("-inf")), ts)
        cutoff = self.wm[part] - self.ttl
        for pk in [pk for pk, e in self.state.items() if pk[0] == part and e[1] < cutoff]:
            self._drop(pk)

    def _bound(self) -> None:
        while len(self.state) > self.max:
            self._drop(min(self.state, key=lambda pk: (self.state[pk][1], pk[1], pk[0])))

    def prediction(self, part: int, p: PredictionRecord) -> None:
        self._time(part, p.ts)
        pk = (part, p.model + "\x1f" + p.event_id)
        e = self.state.get(pk)
        if e is None:
            if p.ts < self.wm[part] - self.ttl:
                self.outcomes[p.model, "expired"] += 1
            else:
                self.state[pk] = ("p", p.ts, p.model, p.model_version, p.prediction)
                self._bound()
        elif e[0] == "l":
            self.pairs.append(
                Pair(p.model, p.model_version, p.event_id, p.prediction, e[4], p.ts, e[1])
            )
            self.outcomes[p.model, "joined"] += 1
            self.state[pk] = ("j", max(p.ts, e[1]))
        else:
            self.outcomes[p.model, "duplicate"] += 1

    def label(self, part: int, lab: Label) -> None:
        self._time(part, lab.ts)
        pk = (part, lab.model + "\x1f" + lab.event_id)
        e = self.state.get(pk)
        if e is None:
            if lab.ts < self.wm[part] - self.ttl:
                self.outcomes[lab.model, "orphan_label"] += 1
            else:
                self.state[pk] = ("l", lab.ts, lab.model, lab.model_version, lab.label)
                self._bound()
        elif e[0] == "p":
            self.pairs.append(Pair(lab.model, e[3], lab.event_id, e[4], lab.label, e[1], lab.ts))
            self.outcomes[lab.model, "joined"] += 1
            self.state[pk] = ("j", max(lab.ts, e[1]))
        else:
            self.outcomes[lab.model, "duplicate"] += 1

    def expire(self, part: int, wm: float) -> None:
        self._time(part, wm)


op = st.tuples(
    st.sampled_from(["p", "l", "x"]),  # prediction, label, expire
    st.integers(0, 1),  # partition
    st.sampled_from(["m", "n"]),
    st.integers(0, 12),  # event id
    st.integers(0, 60).map(float),  # time
)


def _apply(join: LabelJoin, ops: list[tuple], sink: tuple[list[Pair], Counter]) -> None:
    for kind, part, model, eid, ts in ops:
        if kind == "p":
            step = join.add_predictions(part, [PredictionRecord(model, "v", str(eid), ts, ts / 60)])
        elif kind == "l":
            step = join.add_labels(part, [Label(model, str(eid), float(eid % 2), ts)])
        else:
            step = join.expire(part, ts)
        sink[0].extend(step.pairs)
        sink[1].update(step.outcomes)


def _apply_naive(naive: NaiveJoin, ops: list[tuple]) -> None:
    for kind, part, model, eid, ts in ops:
        if kind == "p":
            naive.prediction(part, PredictionRecord(model, "v", str(eid), ts, ts / 60))
        elif kind == "l":
            naive.label(part, Label(model, str(eid), float(eid % 2), ts))
        else:
            naive.expire(part, ts)


def _state(join: LabelJoin) -> tuple:
    return sorted(join), {p: join.watermark(p) for p in join.partitions}


@given(
    st.lists(op, max_size=60),
    st.lists(op, max_size=60),
    st.sampled_from([5.0, 15.0, 1e9]),
    st.integers(1, 8),
    st.booleans(),
)
@settings(max_examples=150, deadline=None)
def test_restore_from_changelog_continues_as_if_nothing_happened(
    before: list[tuple], after: list[tuple], ttl: float, max_pending: int, compact: bool
) -> None:
    # Without a restart, compared with the naive model.
    whole = LabelJoin(ttl_seconds=ttl, max_pending=max_pending)
    sink_whole: tuple[list[Pair], Counter] = ([], Counter())
    _apply(whole, before + after, sink_whole)
    naive = NaiveJoin(ttl, max_pending)
    _apply_naive(naive, before + after)
    assert sink_whole[0] == naive.pairs
    assert +sink_whole[1] == +naive.outcomes
    assert whole.size == len(naive.state) <= max_pending

    # With a restart after `before`: changes taken along the way (several calls), restored.
    first = LabelJoin(ttl_seconds=ttl, max_pending=max_pending)
    sink: tuple[list[Pair], Counter] = ([], Counter())
    log: dict[int, list[tuple[str, bytes | None]]] = {}
    for i in range(0, len(before), 7):
        _apply(first, before[i : i + 7], sink)
        for part, key, value in first.take_changes():
            log.setdefault(part, []).append((key, value))
    if compact:  # what a compacted topic keeps: the last record per key
        log = {p: list(dict(records).items()) for p, records in log.items()}
    second = LabelJoin(ttl_seconds=ttl, max_pending=max_pending)
    for part, records in log.items():
        second.restore(part, records)
    assert _state(second) == _state(first)
    _apply(second, after, sink)
    assert sink[0] == sink_whole[0]
    assert sink[1] == sink_whole[1]
    assert _state(second) == _state(whole)


def test_take_changes_coalesces_and_tombstones() -> None:
    join = LabelJoin(ttl_seconds=10.0, max_pending=100)
    join.add_predictions(3, [P("a", 1.0)])
    join.add_labels(3, [L("a", 2.0)])
    changes = join.take_changes()
    assert [(p, k) for p, k, _ in changes] == [(3, WATERMARK_KEY), (3, join_key("m", "a"))]
    assert join.take_changes() == []
    join.expire(3, 100.0)
    assert join.take_changes() == [
        (3, WATERMARK_KEY, msgspec.msgpack.encode((100.0, 3))),
        (3, join_key("m", "a"), None),
    ]
    join.add_predictions(4, [P("b", 1.0)])
    join.drop_partition(4)
    assert join.take_changes() == [] and join.size == 0
    with pytest.raises(ValueError, match="bad entry"):
        join.restore(5, [("k", b"\xc1")])


# --- bounds ----------------------------------------------------------------------------------


def test_state_stays_bounded_over_a_long_run() -> None:
    ttl, bound = 50.0, 20_000
    join = LabelJoin(ttl_seconds=ttl, max_pending=bound)
    outcomes: Counter[str] = Counter()
    rng = random.Random(5)
    largest = 0
    n = 200_000
    for start in range(0, n, 1000):
        preds = [P(str(i), i * 0.01) for i in range(start, start + 1000)]
        step = join.add_predictions(0, preds)
        labels = [
            L(str(i), i * 0.01 + rng.uniform(0, 2 * ttl)) for i in range(start, start + 1000, 2)
        ]
        step.extend(join.add_labels(1 if start % 2000 else 0, labels))
        outcomes.update({o: c for (_, o), c in step.outcomes.items()})
        largest = max(largest, join.size)
        join.take_changes()
    assert largest <= bound
    heap_items = sum(len(join._parts[p].heap) for p in join.partitions)
    assert heap_items <= 2 * join.size + 2 * 1024
    # Everything is accounted for: each prediction joins, expires or is still waiting.
    step = join.expire(0, 1e9)
    step.extend(join.expire(1, 1e9))
    outcomes.update({o: c for (_, o), c in step.outcomes.items()})
    assert outcomes["joined"] + outcomes["expired"] == n
    assert outcomes["joined"] + outcomes["orphan_label"] == n // 2


def test_bytes_per_pending_prediction() -> None:
    """Measured with tracemalloc; the module docstring quotes the figure."""
    join = LabelJoin(ttl_seconds=1e9, max_pending=10**7)
    n = 50_000
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    # Built inside the measurement: the join keeps the decoded floats, not the records.
    preds = [
        PredictionRecord("fraud", "3", f"id-{i:07d}", 1.7e9 + i, 0.5 + i * 1e-9) for i in range(n)
    ]
    join.add_predictions(0, preds)
    del preds
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    per_entry = used / n
    print(f"label join: {per_entry:.0f} bytes per pending prediction")
    assert per_entry < 400
