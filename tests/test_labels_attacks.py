"""The delayed-label join attacked as a careless or hostile user would: bad labels, odd
predictions, skewed clocks, oversized values, a broker that stops acknowledging, a missing
changelog topic.

Every bad record must end in the dead-letter topic with its reason or in a counted outcome;
nothing may crash the join, stick a partition or vanish silently. Most attacks drive the
service's own record handling (:meth:`LabelJoinService._take`, ``flush``) without a broker;
the ``kafka``-marked ones at the end run a worker on the embedded broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import tracemalloc
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiokafka import TopicPartition
from test_poison_records import FakeConsumer

from stream_drift.app.labels import LabelJoinService
from stream_drift.app.runtime import Runtime
from stream_drift.config import Settings
from stream_drift.pipeline.events import Label, RawRecord
from stream_drift.pipeline.labels import (
    MAX_TEXT_CHARS,
    LabelJoin,
    LabelOutcomes,
    PredictionRecord,
    compact_text,
)
from stream_drift.pipeline.reference import build_reference

MODEL = "scoring"
EVENTS = "drift.events"
LABELS = "drift.labels"
TTL = 3600.0


def _service(**labels: Any) -> LabelJoinService:
    settings = Settings().override(
        {
            "labels": {"enabled": True, "ttl_seconds": TTL, **labels},
            "topics": {"partitions": {"events": 4, "labels": 4}},
        }
    )
    runtime = Runtime(settings)
    rng = np.random.default_rng(5)
    runtime.registry.add(
        build_reference(
            {"x": rng.normal(size=500), "score": rng.random(500)},
            model=MODEL,
            model_version="1",
            prediction=["score"],
        )
    )
    return LabelJoinService(runtime)


def _records(topic: str, values: list[bytes | None], partition: int = 0) -> list[RawRecord]:
    now_ms = int(time.time() * 1000)
    return [RawRecord(v, topic, partition, i, now_ms) for i, v in enumerate(values)]


def _take(service: LabelJoinService, topic: str, docs: list[Any], partition: int = 0) -> None:
    values = [d if d is None or isinstance(d, bytes) else json.dumps(d).encode() for d in docs]
    service._take(TopicPartition(topic, partition), _records(topic, values, partition))


def _sent(service: LabelJoinService, topic: str) -> list[Any]:
    return [item for item in service._outgoing if item.topic == topic]


def _dead_letters(service: LabelJoinService) -> list[dict[str, Any]]:
    topic = service.runtime.settings.topics.deadletter
    return [json.loads(item.value) for item in _sent(service, topic)]


def _partials(service: LabelJoinService) -> list[LabelOutcomes]:
    topic = service.runtime.settings.topics.partials
    return [LabelOutcomes.from_bytes(item.value) for item in _sent(service, topic)]


def _outcomes(service: LabelJoinService) -> Counter[str]:
    total: Counter[str] = Counter()
    for message in _partials(service):
        total.update(message.outcomes)
    return total


def _counted(service: LabelJoinService, model: str = MODEL) -> dict[str, float]:
    registry = service.runtime.prometheus
    out = {}
    for outcome in ("joined", "orphan_label", "expired", "duplicate"):
        v = registry.get_sample_value(
            "stream_drift_label_join_total", {"model": model, "outcome": outcome}
        )
        if v:
            out[outcome] = v
    return out


def _prediction(event_id: Any, prediction: Any = 0.9, ts: float | None = None, **kw: Any) -> Any:
    doc = {"model": MODEL, "model_version": "1", "event_id": event_id, "prediction": prediction}
    doc["ts"] = time.time() - 60 if ts is None else ts
    doc["features"] = {"x": 0.5}
    return {**doc, **kw}


def _label(event_id: Any, label: Any = 1, ts: float | None = None, **kw: Any) -> Any:
    doc = {"model": MODEL, "event_id": event_id, "label": label}
    doc["ts"] = time.time() if ts is None else ts
    return {**doc, **kw}


# ------------------------------------------------------------------------ bad labels


def test_every_bad_label_is_dead_lettered_with_its_reason() -> None:
    service = _service()
    limit = service.runtime.settings.ingest.max_message_bytes
    big = json.dumps(_label("big", "x" * limit)).encode()
    bad: list[tuple[Any, str]] = [
        (big, "oversize"),
        (b'{"model": "scoring", "event_id": "t", "label": 1', "malformed_json"),
        (_label("l1", [1]), "invalid_type"),
        (_label("l2", {"a": 1}), "invalid_type"),
        (b'{"model": "scoring", "event_id": "n", "label": NaN}', "malformed_json"),
        (b'{"model": "scoring", "event_id": "n", "label": 1e999}', "invalid_type"),
        (_label(1.5), "invalid_type"),
        (_label(True), "invalid_type"),
        (_label({"id": 1}), "invalid_type"),
        (_label("g", ts="garbage"), "bad_timestamp"),
        (_label("f", ts=time.time() + 10 * 365 * 86400), "future_timestamp"),
        ({"event_id": "m", "label": 1}, "missing_model"),
        (_label("nl", None), "missing_label"),
        ({"model": MODEL, "label": 1}, "missing_event_id"),
        (None, "empty"),
    ]
    _take(service, LABELS, [doc for doc, _ in bad])
    letters = _dead_letters(service)
    assert [d["reason"] for d in letters] == [reason for _, reason in bad]
    assert all(d["detail"] for d in letters)
    assert service.join.size == 0 and not _partials(service)


def test_a_label_from_the_far_future_does_not_expire_waiting_predictions() -> None:
    """Without the horizon, a label ten years ahead raised the partition's watermark and
    expired every waiting prediction at once (and the changelog kept that watermark)."""
    service = _service()
    _take(service, EVENTS, [_prediction(f"e{i}") for i in range(50)])
    _take(service, LABELS, [_label("ghost", ts=time.time() + 10 * 365 * 86400)])
    assert [d["reason"] for d in _dead_letters(service)] == ["future_timestamp"]
    assert service.join.pending(0) == Counter(prediction=50)
    assert service.join.watermark(0) < time.time() + 1
    _take(service, LABELS, [_label(f"e{i}") for i in range(50)])
    assert _counted(service) == {"joined": 50}


def test_a_prediction_from_the_far_future_is_skipped_like_stage_1_refuses_it() -> None:
    service = _service()
    _take(service, EVENTS, [_prediction("old", ts=time.time() - 100)])
    _take(service, EVENTS, [_prediction("future", ts=time.time() + 10 * 365 * 86400)])
    assert service.skipped_events == 1
    assert service.join.pending(0) == Counter(prediction=1)


def test_labels_of_models_without_a_reference_are_counted_but_not_sent() -> None:
    """A flood of made-up model names must not reach stage 2 (one evaluator per name)."""
    service = _service()
    _take(service, EVENTS, [_prediction("a", model="nobody")])
    _take(service, LABELS, [_label("a", model="nobody")])
    old = time.time() - 2 * TTL
    _take(service, LABELS, [_label(f"x{i}", model=f"m{i}", ts=old) for i in range(100)])
    assert _partials(service) == []
    assert _counted(service, "_unknown") == {"joined": 1, "orphan_label": 100}


def test_a_label_with_another_version_scores_its_predictions_version() -> None:
    service = _service()
    _take(service, EVENTS, [_prediction("v", 0.2)])
    _take(service, LABELS, [_label("v", 0, model_version="7")])
    (message,) = _partials(service)
    assert (message.model_version, message.outcomes) == ("1", {"joined": 1})
    assert [p[1:] for p in message.pairs] == [(0.2, 0.0)]


# ------------------------------------------------------------------------ predictions


def test_replayed_predictions_and_int_or_string_ids_join_once() -> None:
    service = _service()
    _take(service, EVENTS, [_prediction(17), _prediction("18"), _prediction(17)])
    _take(service, LABELS, [_label("17"), _label(18), _label(17)])
    assert _counted(service) == {"joined": 2, "duplicate": 2}
    assert sum(len(m.pairs) for m in _partials(service)) == 2


def test_predictions_with_several_outputs_are_skipped_and_their_labels_counted() -> None:
    service = _service()
    _take(service, EVENTS, [_prediction("multi", {"a": 0.1, "b": 0.9})])
    assert service.skipped_events == 1 and service.join.size == 0
    # Its label waits, then expires as an orphan once a later label moves event time on.
    _take(service, LABELS, [_label("multi", ts=time.time() - 2 * TTL), _label("later")])
    assert _counted(service) == {"orphan_label": 1}


def test_huge_ids_and_values_join_and_stay_small() -> None:
    """A 200 kB event id, class name and label: they still join (equal strings stay equal),
    the join holds a few hundred bytes for them and the pair fits a Kafka record."""
    service = _service()
    eid, cls = "e" * 200_000, "c" * 200_000
    _take(service, EVENTS, [_prediction(eid, cls)])
    ((_, key, entry),) = list(service.join)
    assert len(key) < 2 * MAX_TEXT_CHARS and len(entry[4]) < 2 * MAX_TEXT_CHARS
    changes = service.join.take_changes()
    assert max(len(k) + len(v or b"") for _, k, v in changes) < 1024
    _take(service, LABELS, [_label(eid, cls)])
    (message,) = _partials(service)
    assert message.pairs == [
        (pytest.approx(message.pairs[0][0]), compact_text(cls), compact_text(cls))
    ]
    assert _counted(service) == {"joined": 1}


def test_a_flush_worth_of_pairs_is_split_to_fit_a_kafka_record() -> None:
    """Without the split, 60,000 pairs of one model made one 2 MB message: the producer
    refused it at every flush and the partition never committed again."""
    service = _service()
    n = 60_000
    now = time.time() - 60
    preds = [_prediction(f"event-{i:08d}", float(i % 97) / 97, ts=now) for i in range(n)]
    _take(service, EVENTS, preds)
    _take(service, LABELS, [_label(f"event-{i:08d}", i % 2) for i in range(n)])
    limit = service.runtime.settings.kafka.producer_max_request_bytes
    sizes = [len(item.key) + len(item.value) for item in _sent(service, "drift.partials")]
    assert len(sizes) > 1 and max(sizes) < limit - 512
    messages = _partials(service)
    assert sum(len(m.pairs) for m in messages) == n
    assert _outcomes(service) == {"joined": n}


# ------------------------------------------------------------------------ memory, time


def test_a_tiny_max_pending_under_load_evicts_and_counts_everything() -> None:
    service = _service(max_pending=10)
    n = 5_000
    rng = np.random.default_rng(3)
    now = time.time() - 600
    for start in range(0, n, 250):
        preds = [_prediction(f"p{i}", ts=now + i * 0.01) for i in range(start, start + 250)]
        _take(service, EVENTS, preds, partition=int(rng.integers(0, 4)))
        assert service.join.size <= 10
    labels = [_label(f"p{i}") for i in range(n - 5, n)] + [_label(f"q{i}") for i in range(20)]
    _take(service, LABELS, labels, partition=0)
    assert service.join.size <= 10
    counted = _counted(service)
    # Every prediction ends joined or expired (evicted), or still waits; every label joins,
    # waits, or is evicted as an orphan.
    waiting = Counter(e[1] for _, _, e in service.join)
    joined = counted.get("joined", 0)
    assert joined + counted.get("expired", 0) + waiting[0] == n
    assert joined + counted.get("orphan_label", 0) + waiting[1] == 25


def test_skewed_clocks_old_labels_still_join_waiting_predictions() -> None:
    """A labeller whose clock is a day behind: its labels still join predictions that wait;
    a label older than the TTL with no prediction is an orphan at once."""
    join = LabelJoin(ttl_seconds=TTL, max_pending=100)
    join.add_predictions(0, [PredictionRecord(MODEL, "1", "a", 10_000.0, 0.9)])
    step = join.add_labels(
        0, [Label(MODEL, "a", 1.0, 10_000.0 - 86400), Label(MODEL, "z", 0.0, 1.0)]
    )
    assert step.outcomes == Counter({(MODEL, "joined"): 1, (MODEL, "orphan_label"): 1})


def test_held_state_with_huge_ids_is_bounded() -> None:
    join = LabelJoin(ttl_seconds=TTL, max_pending=100)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(100):
        join.add_labels(0, [Label(MODEL, f"{i}-" + "x" * 100_000, "y" * 100_000, 1.0)])
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert join.size == 100
    assert held < 100 * 2_000, held  # not 100 x 200 kB


# ------------------------------------------------------------------------ delivery


class _Producer:
    """Acknowledges or fails each send; records what was acknowledged."""

    def __init__(self, fail: Any) -> None:
        self.fail = fail
        self.acked: list[tuple[str, bytes | None]] = []

    async def send(self, topic: str, value: Any, key: Any = None, partition: Any = None) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.fail(topic, key):
            future.set_exception(ConnectionError("broker gone"))
        else:
            self.acked.append((topic, key))
            future.set_result(None)
        return future


def test_a_flush_the_broker_half_acknowledged_commits_nothing_and_resends_only_the_rest() -> None:
    """The broker vanishes mid-flush: the pairs were acknowledged, the changelog records not.
    Nothing is committed; the next flush sends the changelog only (resending the pairs would
    count them twice in stage 2), then commits."""
    service = _service()
    changelog = service.runtime.settings.label_join_changelog
    producer, consumer = _Producer(lambda topic, key: topic == changelog), FakeConsumer()
    service.producer, service.consumer = producer, consumer  # type: ignore[assignment]
    _take(service, EVENTS, [_prediction(f"e{i}") for i in range(5)])
    _take(service, LABELS, [_label(f"e{i}") for i in range(5)])
    service._offsets[TopicPartition(LABELS, 0)] = 5

    asyncio.run(service.flush())
    assert consumer.commits == []
    partials = [a for a in producer.acked if a[0] == "drift.partials"]
    assert len(partials) == 2  # the pairs, and the predictions' confidence sums
    assert {item.topic for item in service._outgoing} == {changelog}

    producer.fail = lambda topic, key: False
    asyncio.run(service.flush())
    assert [a for a in producer.acked if a[0] == "drift.partials"] == partials
    assert consumer.commits == [{TopicPartition(LABELS, 0): 5}]
    assert service._outgoing == []


def test_a_producer_that_refuses_a_send_keeps_the_rest_in_order() -> None:
    """The first record is acknowledged, the producer refuses the second (no metadata):
    the first is not sent again, the others stay queued in order, nothing is committed."""
    service = _service()

    class Refusing(_Producer):
        async def send(self, topic: str, value: Any, key: Any = None, partition: Any = None) -> Any:
            if self.fail(topic, key):
                raise ConnectionError("no metadata")
            return await super().send(topic, value, key, partition)

    producer, consumer = Refusing(lambda topic, key: key == b"stop"), FakeConsumer()
    service.producer, service.consumer = producer, consumer  # type: ignore[assignment]
    _take(service, EVENTS, [_prediction("a"), _prediction("b")])
    _take(service, LABELS, [_label("a"), b"not json", _label("b")])
    service._outgoing.insert(1, type(service._outgoing[0])("drift.partials", b"stop", b"{}"))
    order = [(i.topic, i.key) for i in service._outgoing]
    service._offsets[TopicPartition(LABELS, 0)] = 3
    asyncio.run(service.flush())
    assert consumer.commits == []
    assert [(i.topic, i.key) for i in service._outgoing][: len(order) - 1] == order[1:]


def test_a_nan_or_infinite_score_never_reaches_the_join() -> None:
    service = _service()
    _take(
        service,
        EVENTS,
        [
            b'{"model": "scoring", "event_id": "i", "prediction": 1e999, "features": {}}',
            b'{"model": "scoring", "event_id": "n", "prediction": NaN, "features": {}}',
        ],
    )
    assert service.skipped_events == 2 and service.join.size == 0


# ------------------------------------------------------------------------ on the broker

kafka = pytest.mark.kafka


@kafka
def test_a_changelog_of_many_batches_is_restored_to_its_end(kafka_broker: Any) -> None:
    """Tansu answers end_offsets() with a count of record batches: a restore that stopped
    there read 20 of 200 changelog records, and 180 waiting predictions vanished on a
    takeover (labels for them then waited in vain)."""
    from aiokafka import AIOKafkaProducer

    from stream_drift.app import admin

    service = _service()
    app_id = f"sd-restore-{uuid.uuid4().hex[:8]}"
    service.runtime.settings = service.runtime.settings.override(
        {"app_id": app_id, "kafka.bootstrap_servers": kafka_broker.bootstrap_servers}
    )
    topic = service.runtime.settings.label_join_changelog
    join = LabelJoin(ttl_seconds=TTL, max_pending=1000)
    join.add_predictions(
        2, [PredictionRecord(MODEL, "1", f"e{i}", 1000.0 + i, 0.5) for i in range(200)]
    )
    changes = join.take_changes()

    async def write() -> None:
        await admin.create_topics(kafka_broker.bootstrap_servers, {topic: 4}, compacted=[topic])
        producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
        await producer.start()
        try:
            for start in range(0, len(changes), 10):  # 21 batches (200 entries, 1 watermark)
                for partition, key, value in changes[start : start + 10]:
                    await producer.send(topic, value, key=key.encode(), partition=partition)
                await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(write())
    asyncio.run(service.restore({2, 3}))
    assert service.join.pending(2) == Counter(prediction=200)
    assert service.join.watermark(2) == 1199.0
    assert service.join.size == 200


@kafka
def test_a_missing_changelog_topic_shows_on_health(kafka_broker: Any, tmp_path: Path) -> None:
    """topics.create false and no changelog topic: the join must not run against a topic the
    broker auto-creates with one partition (every flush failing, nothing said); its loop
    stops, the worker stays up, and ``/health`` fails naming the topic."""
    from test_worker_kafka import TUMBLING_60, make_settings, publish, wait_until

    from stream_drift.app.topics import partition_counts
    from stream_drift.app.worker import prepare_topics
    from stream_drift.tools.supervisor import WorkerProcess

    settings = make_settings(
        kafka_broker.bootstrap_servers,
        tmp_path,
        f"sd-nochangelog-{uuid.uuid4().hex[:8]}",
        TUMBLING_60,
    ).override(
        {"labels": {"enabled": True}, "topics.partitions.events": 2, "topics.partitions.labels": 2}
    )
    prepare_topics(settings.override({"labels": {"enabled": False}}))
    assert settings.label_join_changelog in partition_counts(settings)
    settings = settings.override({"topics": {"create": False}})
    rng = np.random.default_rng(1)
    publish(settings, build_reference({"x": rng.normal(size=500)}, model=MODEL))
    worker = WorkerProcess(settings, tmp_path, name="no-changelog").start()
    try:

        def crashed() -> dict[str, Any] | None:
            try:
                h = worker.health()
            except OSError:
                return None
            return h if h.get("label_join") == "crashed" else None

        h = wait_until(crashed, timeout=60, what="label_join crashed on /health", workers=[worker])
        assert h["status"] == "failing"
        assert settings.label_join_changelog in h["label_join_error"]
        assert any("label join loop crashed" in p for p in h["problems"])
        assert worker.get("/health/live")[0] == 503
        # The worker stays up (stages 1 and 2 do not need the join) and keeps saying so.
        time.sleep(3)
        assert worker.is_running() and worker.health()["status"] == "failing"
    finally:
        worker.stop()


def _label_outcomes(bootstrap: str, topic: str) -> list[LabelOutcomes]:
    from test_worker_kafka import read_json

    return [
        LabelOutcomes.from_bytes(json.dumps(v).encode())
        for _, v in read_json(bootstrap, topic)
        if isinstance(v, dict) and v.get("kind") == "labels"
    ]


@kafka
def test_two_workers_then_a_kill_9_lose_no_label(kafka_broker: Any, tmp_path: Path) -> None:
    """Two workers share the join: each partition is joined once (the ``joined`` counters of
    both sum to the truth, as do the outcomes sent to stage 2), and a label from ten years
    ahead is dead-lettered instead of expiring the waiting predictions. Then one worker is
    killed with SIGKILL while labels arrive: the other takes its partitions over (changelog
    restored) and every label still ends joined -- none orphaned, no prediction expired."""
    from test_labels_kafka import _emitter, _settings
    from test_worker_kafka import _asend, deployed, read_json, sample, scrape, wait_until

    from stream_drift.tools.embedded import find_free_port
    from stream_drift.tools.supervisor import WorkerProcess

    settings = _settings(kafka_broker, tmp_path, "labels-attack")
    rng = np.random.default_rng(21)
    reference = build_reference(
        {"x": rng.normal(0, 1, 2000), "score": rng.random(2000)},
        model="scoring",
        model_version="1",
        prediction=["score"],
    )
    a, b = (
        WorkerProcess(
            settings.override({"web.port": find_free_port(), "worker.data_dir": str(tmp_path / n)}),
            tmp_path,
            name=n,
        )
        for n in ("join-a", "join-b")
    )
    n = 400
    with deployed(settings, {MODEL: reference}, [a, b]) as d:

        def split() -> bool:
            shares = [set(w.health().get("label_join_partitions") or ()) for w in (a, b)]
            return (
                all(shares)
                and sorted(shares[0] | shares[1]) == [0, 1, 2, 3]
                and not (shares[0] & shares[1])
            )

        wait_until(split, timeout=60, what="the label join split over both workers", workers=[a, b])
        now = time.time()
        with _emitter(d) as emitter:
            for i in range(n):
                emitter.emit({"x": 0.1}, 0.9, event_id=f"w-{i}", ts=now - 120 + i * 0.1)
            assert emitter.flush(10)
        future = _label("w-0", ts=now + 10 * 365 * 86400)
        asyncio.run(_asend(d.bootstrap, d.topics.labels, [(0, json.dumps(future).encode(), None)]))
        with _emitter(d) as emitter:
            for i in range(n // 2):
                emitter.emit_label(event_id=f"w-{i}", label=1)
            assert emitter.flush(10)

        def joined(workers: list[WorkerProcess]) -> float:
            return sum(
                sample(scrape(w), "stream_drift_label_join_total", model=MODEL, outcome="joined")
                or 0
                for w in workers
            )

        seen: list[float] = []

        def half_joined() -> bool:
            seen.append(joined([a, b]))
            return seen[-1] == n // 2

        class Seen:  # the failure message shows the last count
            def __str__(self) -> str:
                return f"{n // 2} labels joined over two workers (last seen {seen[-1:]})"

        wait_until(half_joined, timeout=60, what=Seen(), workers=[a, b])  # type: ignore[arg-type]
        letters = [
            v
            for _, v in read_json(d.bootstrap, d.topics.deadletter, min_records=1)
            if v["source"]["topic"] == d.topics.labels
        ]
        assert [v["reason"] for v in letters] == ["future_timestamp"]
        assert (
            sum(
                m.outcomes.get("joined", 0) for m in _label_outcomes(d.bootstrap, d.topics.partials)
            )
            == n // 2
        )

        # The second half of the labels while worker a dies.
        with _emitter(d) as emitter:
            for i in range(n // 2, n):
                emitter.emit_label(event_id=f"w-{i}", label=0)
            assert emitter.flush(10)
        a.kill()

        def all_joined() -> list[LabelOutcomes] | None:
            if set(b.health().get("label_join_partitions") or ()) != {0, 1, 2, 3}:
                return None
            messages = _label_outcomes(d.bootstrap, d.topics.partials)
            got = sum(m.outcomes.get("joined", 0) for m in messages)
            return messages if got >= n else None

        messages = wait_until(
            all_joined, timeout=90, what=f"all {n} labels joined after a kill -9", workers=[b]
        )
        outcomes: Counter[str] = Counter()
        for m in messages:
            outcomes.update(m.outcomes)
        assert outcomes["orphan_label"] == 0 and outcomes["expired"] == 0
        # At least once: a pair replayed after the kill is either recognised from the
        # changelog (a duplicate, no second pair) or joined again; never lost.
        assert sum(len(m.pairs) for m in messages) == outcomes["joined"] >= n


def test_a_failed_restore_stops_the_loop_before_any_record_is_joined() -> None:
    """aiokafka swallows a rebalance listener's exception: without the check the partition
    was joined from an empty state, its waiting predictions silently gone."""
    from stream_drift.app.labels import _RestoreOnAssign

    service = _service()

    async def broken(partitions: set[int]) -> None:
        raise TimeoutError("label join changelog not read within 60 s")

    service.restore = broken  # type: ignore[method-assign]

    class Consumer:
        async def getmany(self, **kw: Any) -> Any:
            service._stopping = True  # one batch
            # As aiokafka runs a rebalance listener: its exceptions are only logged.
            with contextlib.suppress(Exception):
                await _RestoreOnAssign(service).on_partitions_assigned([TopicPartition(LABELS, 0)])
            value = json.dumps(_label("a")).encode()
            return {TopicPartition(LABELS, 0): [_Message(LABELS, 0, 0, value)]}

    service.consumer = Consumer()  # type: ignore[assignment]
    with pytest.raises(TimeoutError, match="changelog"):
        asyncio.run(service._consume())
    assert service.join.size == 0 and service._offsets == {}
    assert service.runtime.health.label_join_partitions == [0]


class _Message:
    def __init__(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        self.topic, self.partition, self.offset, self.value = topic, partition, offset, value
        self.timestamp, self.key = int(time.time() * 1000), None


def test_a_watermark_from_the_future_in_the_changelog_is_brought_back_on_restore() -> None:
    """A changelog written before future labels were refused may hold a watermark years
    ahead: restored as is, every new prediction would be counted expired on arrival."""
    poisoned = LabelJoin(ttl_seconds=TTL, max_pending=100)
    poisoned.add_labels(0, [Label(MODEL, "ghost", 1.0, 2e9)])  # the year 2033
    log = [(key, value) for _, key, value in poisoned.take_changes()]
    join = LabelJoin(ttl_seconds=TTL, max_pending=100)
    join.restore(0, log, horizon=1_000_300.0)
    assert join.watermark(0) == 1_000_300.0
    assert [k for _, k, _ in join.take_changes()] == ["\x00"]  # the repaired watermark
    step = join.add_predictions(0, [PredictionRecord(MODEL, "1", "p", 1_000_000.0, 0.5)])
    assert step.outcomes == Counter() and join.pending(0)["prediction"] == 1
