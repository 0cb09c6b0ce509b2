"""The service-side emitter against a real broker (embedded Tansu), and against none.

- events and labels arrive, decode with the worker's :class:`EventDecoder`, keyed by
  ``event_id`` (else the model);
- a broker that is down (a free port nobody listens on) never makes ``emit`` wait longer than
  ``max_block_ms`` (a bound with generous slack, not a benchmark), and what could not be sent
  is counted;
- ``close(timeout)`` returns within its timeout even with records stuck in the buffer (a broker
  that went away after the first record), and those records are counted as dropped.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka_helpers import read_topic
from prometheus_client import CollectorRegistry

from stream_drift.client import DriftEmitter
from stream_drift.pipeline.decode import EventDecoder
from stream_drift.pipeline.events import Event, Label, RawRecord
from stream_drift.tools.embedded import EmbeddedBroker, find_free_port

pytestmark = pytest.mark.kafka

SLACK_S = 0.5  # scheduling noise on a shared machine; the bound itself is max_block_ms


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_events_and_labels_arrive_valid_and_keyed(
    kafka_broker: EmbeddedBroker, unique_topic: object, compression: str | None
) -> None:
    events_topic, labels_topic = unique_topic("events"), unique_topic("labels")  # type: ignore[operator]
    registry = CollectorRegistry()
    with DriftEmitter(
        kafka_broker.bootstrap_servers,
        model="fraud",
        model_version=7,
        events_topic=events_topic,
        labels_topic=labels_topic,
        compression_type=compression,
        registry=registry,
        strict=True,
    ) as emitter:
        assert emitter.wait_for_metadata(timeout=15)  # new topics: auto-created by the broker
        for i in range(40):
            assert emitter.emit(
                features={"amount": float(i), "country": "DE", "age": float("nan")},
                prediction=i / 40,
                event_id=f"req-{i}",
            )
        for _ in range(5):
            assert emitter.emit(features={"amount": 1.0}, prediction=0.5)  # no id: model key
        for i in range(0, 40, 4):
            assert emitter.emit_label(event_id=f"req-{i}", label=i % 2)
        assert emitter.flush(timeout=15), emitter.stats()
        assert emitter.stats() == {"sent": 55, "pending": 0, "pending_bytes": 0, "dropped": {}}
    assert registry.get_sample_value("stream_drift_emitter_sent_total", {"model": "fraud"}) == 55

    decoder = EventDecoder()
    events = read_topic(kafka_broker.bootstrap_servers, events_topic, min_records=45)
    assert len(events) == 45
    decoded = [
        decoder.decode(RawRecord(r.value, r.topic, r.partition, r.offset, r.timestamp, r.key))
        for r in events
    ]
    assert all(isinstance(e, Event) for e in decoded), decoded
    by_id = {e.event_id: (e, r.key) for e, r in zip(decoded, events, strict=True)}  # type: ignore[union-attr]
    for i in range(40):
        ev, key = by_id[f"req-{i}"]
        assert key == f"req-{i}".encode()
        assert (ev.model, ev.model_version) == ("fraud", "7")
        assert ev.values == {"amount": float(i), "country": "DE", "age": None, "prediction": i / 40}
        assert abs(ev.ts - time.time()) < 120
    assert [r.key for r, e in zip(events, decoded, strict=True) if e.event_id is None] == [  # type: ignore[union-attr]
        b"fraud"
    ] * 5

    labels = read_topic(kafka_broker.bootstrap_servers, labels_topic, min_records=10)
    decoded_labels = [
        decoder.decode_label(RawRecord(r.value, r.topic, r.partition, r.offset, r.timestamp))
        for r in labels
    ]
    assert all(isinstance(lb, Label) for lb in decoded_labels), decoded_labels
    assert sorted((lb.event_id, lb.label) for lb in decoded_labels) == sorted(  # type: ignore[union-attr]
        (f"req-{i}", float(i % 2)) for i in range(0, 40, 4)
    )
    assert all(
        r.key == f"{lb.event_id}".encode() for r, lb in zip(labels, decoded_labels, strict=True)
    )  # type: ignore[union-attr]


@pytest.mark.parametrize("backoff_s", [1.0, 0.0])
def test_down_broker_never_blocks_beyond_the_bound(backoff_s: float) -> None:
    max_block_ms = 50
    emitter = DriftEmitter(
        f"127.0.0.1:{find_free_port()}",
        model="fraud",
        max_block_ms=max_block_ms,
        unavailable_backoff_s=backoff_s,
    )
    n = 200 if backoff_s else 40  # without back-off every call waits max_block_ms
    durations = []
    try:
        for i in range(n):
            start = time.perf_counter()
            ok = emitter.emit(features={"amount": 1.0}, prediction=0.5, event_id=str(i))
            durations.append(time.perf_counter() - start)
            assert ok is False
        assert emitter.flush(timeout=1.0)
    finally:
        start = time.perf_counter()
        emitter.close(timeout=1.0)
        closed_in = time.perf_counter() - start
    assert max(durations) <= max_block_ms / 1000 + SLACK_S, max(durations)
    assert closed_in <= 1.0 + SLACK_S
    assert emitter.stats()["dropped"] == {"broker_unavailable": n}
    if backoff_s:  # one wait per back-off period, the other calls drop at once
        assert sorted(durations)[n // 2] < 0.01, sorted(durations)[n // 2]


def test_close_returns_in_time_and_counts_what_is_stuck(
    tmp_path: Path, unique_topic: object
) -> None:
    topic = unique_topic("events")  # type: ignore[operator]
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    broker.start()
    try:
        emitter = DriftEmitter(
            broker.bootstrap_servers,
            model="fraud",
            events_topic=topic,
            request_timeout_ms=2_000,
            max_block_ms=50,
        )
        assert emitter.wait_for_metadata(timeout=15)
        assert emitter.emit(prediction=0.5, event_id="first")
        assert emitter.flush(timeout=15) and emitter.sent == 1
    finally:
        broker.stop()
    # metadata is known: records are buffered, never acknowledged
    durations = []
    for i in range(100):
        start = time.perf_counter()
        emitter.emit(prediction=0.5, event_id=str(i))
        durations.append(time.perf_counter() - start)
    assert max(durations) <= 0.05 + SLACK_S
    assert emitter.flush(timeout=0.5) is False
    start = time.perf_counter()
    emitter.close(timeout=1.0)
    assert time.perf_counter() - start <= 1.0 + SLACK_S
    deadline = time.monotonic() + 5  # the aborted batches' errbacks run as the sender stops
    while emitter.pending and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = emitter.stats()
    assert stats["sent"] == 1 and stats["pending"] == 0
    assert sum(stats["dropped"].values()) == 100, stats
    assert set(stats["dropped"]) <= {"delivery_failed", "broker_unavailable"}, stats
