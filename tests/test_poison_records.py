"""Poison records against a real ``stream-drift worker`` on the embedded (Tansu) broker.

A record whose dead letter (text + base64 copy, ~2.5x the record) is larger than the worker's
producer limit used to crash the ingest loop on every start (issue 7, item 1). Here records of
0.5 MB (malformed JSON), 1.3 MB and 5 MB (valid JSON over ``ingest.max_message_bytes``:
oversize) are interleaved with good events on every events partition. The worker must keep
running, dead-letter each bad record once (truncated, with its size, sha256 and source), count
the good events exactly, commit its offsets, and not dead-letter anything again after a
restart.

Every wait is bounded and failures carry the worker's log (KAFKA-LOCAL.md §9).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import RecordMetadata
from kafka_helpers import read_topic

# Shared with the other real-broker tests (tests/ is on sys.path).
from test_worker_kafka import (
    EVENT_PARTITIONS,
    encode,
    logs,
    make_events,
    make_reference,
    make_settings,
    publish,
    sample,
    scrape,
    start_all,
    stop_all,
    wait_until,
)

from stream_drift.config import Settings
from stream_drift.tools.embedded import EmbeddedBroker
from stream_drift.tools.supervisor import WorkerProcess

pytestmark = pytest.mark.kafka

MODEL = "fraud-poison"
BASE = float(time.time() // 3600 * 3600 - 3 * 3600)
"""Event-time origin: a whole hour, three hours ago (in the past, so no event is refused as
``future_timestamp``; the windows do not matter here, only stage 1's counts)."""
TUMBLING_60 = {
    "size_seconds": 60,
    "step_seconds": 60,
    "allowed_lateness_seconds": 1.0,
    "idle_timeout_seconds": 5.0,
}
MB = 1_000_000
CHUNK = 4
CRASH = "ingest loop crashed"


def big_malformed(size: int) -> bytes:
    """``size`` bytes that start like an event and are cut off: ``malformed_json``."""
    head = b'{"model": "' + MODEL.encode() + b'", "features": {"amount": 1.0}, "pad": "'
    return head + b"x" * (size - len(head))


def big_valid(size: int) -> bytes:
    """A valid event of exactly ``size`` bytes (a long string field pads it)."""
    head = b'{"model": "' + MODEL.encode() + b'", "features": {"amount": 1.0}, "pad": "'
    tail = b'"}'
    value = head + b"y\xc3\xa9" * ((size - len(head) - len(tail)) // 3)  # ASCII and 2-byte UTF-8
    value += b"z" * (size - len(value) - len(tail)) + tail
    json.loads(value)
    return value


@dataclass(frozen=True)
class Bad:
    """A poison record as produced: its bytes, expected reason and where it landed."""

    value: bytes
    reason: str
    partition: int
    offset: int
    timestamp_ms: int


async def _asend(
    bootstrap: str, topic: str, records: Sequence[tuple[int, bytes, int]]
) -> list[RecordMetadata]:
    """Produce ``(partition, value, timestamp_ms)`` records, one at a time in order."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=8 * 1024 * 1024
    )
    async with asyncio.timeout(90):
        await producer.start()
        try:
            out = []
            for partition, value, ts in records:
                fut = await producer.send(topic, value=value, partition=partition, timestamp_ms=ts)
                out.append(await fut)
            return out
        finally:
            await producer.stop()


async def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    """Committed offsets of ``group`` per partition of ``topic`` (OffsetFetch; no group join)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    async with asyncio.timeout(30):
        await consumer.start()
        try:
            return {
                p: await consumer.committed(TopicPartition(topic, p))
                for p in range(EVENT_PARTITIONS)
            }
        finally:
            await consumer.stop()


def committed(settings: Settings) -> dict[int, int | None]:
    return asyncio.run(
        _committed(
            settings.kafka.bootstrap_servers, f"{settings.app_id}-ingest", settings.topics.events
        )
    )


def letters_of(settings: Settings, bad: Sequence[Bad]) -> list[dict[str, Any]]:
    """The dead letters on the topic whose source is one of ``bad`` (duplicates kept), each
    with its size on the topic under ``"_size"``."""
    where = {(b.partition, b.offset) for b in bad}
    found = []
    for r in read_topic(
        settings.kafka.bootstrap_servers, settings.topics.deadletter, idle_s=0.5, timeout_s=40.0
    ):
        if r.value is None:
            continue
        doc = json.loads(r.value)
        doc["_size"] = len(r.value) + len(r.key or b"")
        src = doc["source"]
        if src["topic"] == settings.topics.events and (src["partition"], src["offset"]) in where:
            found.append(doc)
    return found


def crash_lines(*workers: WorkerProcess) -> list[str]:
    out = []
    for w in workers:
        try:
            text = w.log_path.read_text(errors="replace")
        except FileNotFoundError:
            continue
        out += [line for line in text.splitlines() if CRASH in line or "Traceback" in line]
    return out


@pytest.fixture
def deployment(kafka_broker: EmbeddedBroker, tmp_path: Path) -> Iterator[tuple[Settings, Path]]:
    app_id = f"sd-poison-{uuid.uuid4().hex[:8]}"
    settings = make_settings(
        kafka_broker.bootstrap_servers, tmp_path, app_id, TUMBLING_60
    ).override(
        {
            "kafka.producer_max_batch_size": 1,  # restart below (KAFKA-LOCAL.md §2)
            # Commits stop at chunk starts: small chunks, so that the commits pass the poison
            # records (the default, 10,000 offsets, would replay them all after a restart).
            "ingest.replay_chunk_records": CHUNK,
        }
    )
    publish(settings, make_reference(MODEL))
    yield settings, tmp_path


@pytest.mark.timeout(300)
def test_poison_records_are_dead_lettered_and_the_partition_moves_on(
    deployment: tuple[Settings, Path],
) -> None:
    settings, workdir = deployment
    assert settings.ingest.max_message_bytes < 1_300_000  # 1.3 MB and 5 MB are oversize
    worker = WorkerProcess(settings, workdir, name="poison-worker")
    restarted = WorkerProcess(settings, workdir, name="poison-worker-restarted")
    workers = [worker, restarted]
    try:
        start_all([worker])
        good = make_events(MODEL, 80, rate=1.0, seed=71, start=BASE)
        poison = [
            (big_malformed(MB // 2), "malformed_json"),
            (big_valid(1_300_000), "oversize"),
            (big_valid(5 * MB), "oversize"),
        ]
        # Every partition: good events, a poison record, good events again (the partition must
        # move past it), the last record good. Partitions 0-2 get one poison record each,
        # partition 3 gets the 0.5 MB one again, next to a 1.3 MB one.
        plan: list[tuple[int, bytes, str | None]] = []
        per_partition = len(good) // EVENT_PARTITIONS
        for p in range(EVENT_PARTITIONS):
            chunk = good[p * per_partition : (p + 1) * per_partition]
            mine = [poison[p]] if p < 3 else [poison[0], poison[1]]
            half = len(chunk) // 2
            plan += [(p, encode(e), None) for e in chunk[:half]]
            plan += [(p, value, reason) for value, reason in mine]
            plan += [(p, encode(e), None) for e in chunk[half:]]
        stamps = [1_900_000_000_000 + i for i in range(len(plan))]
        metas = asyncio.run(
            _asend(
                settings.kafka.bootstrap_servers,
                settings.topics.events,
                [(p, v, ts) for (p, v, _), ts in zip(plan, stamps, strict=True)],
            )
        )
        bad = [
            Bad(value, reason, m.partition, m.offset, ts)
            for (_, value, reason), m, ts in zip(plan, metas, stamps, strict=True)
            if reason is not None
        ]
        assert len(bad) == 5
        n_good = sum(1 for _, _, reason in plan if reason is None)
        last_offset = {m.partition: m.offset for m in metas}

        def all_letters() -> list[dict[str, Any]] | None:
            found = letters_of(settings, bad)
            return found if len(found) >= len(bad) else None

        letters = wait_until(
            all_letters, timeout=90, what=f"{len(bad)} dead letters", workers=[worker]
        )
        context = "\n" + json.dumps(
            [{k: v for k, v in x.items() if "original" not in k or k == "original_bytes"}
             for x in letters]
        ) + logs(worker)  # fmt: skip

        # One dead letter per poison record, fitting the budget, with size, hash and source.
        by_source = {(x["source"]["partition"], x["source"]["offset"]): x for x in letters}
        assert len(by_source) == len(letters) == len(bad), context
        budget = settings.ingest.deadletter_max_bytes
        for b in bad:
            x = by_source[(b.partition, b.offset)]
            assert x["reason"] == b.reason, context
            assert x["detail"], context
            assert x["source"]["topic"] == settings.topics.events, context
            assert x["source"]["timestamp_ms"] == b.timestamp_ms, context
            assert x["original_bytes"] == len(b.value), context
            assert x["original_sha256"] == hashlib.sha256(b.value).hexdigest(), context
            assert x["truncated"] is True, context  # even 0.5 MB: text + base64 is 1.17 MB
            prefix = base64.b64decode(x["original_base64"], validate=True)
            assert 0 < len(prefix) < len(b.value) and b.value.startswith(prefix), context
            assert b.value.startswith(x["original"].encode()), context
            assert x["_size"] <= budget, context
            print(
                f"{len(b.value):>9,} B {b.reason:<15} -> p{b.partition}@{b.offset}: "
                f"dead letter of {x['_size']:,} B, "
                f"{len(prefix):,} B kept, sha256 {x['original_sha256'][:12]}…"
            )

        # The good events are all counted, once.
        def accepted() -> float | None:
            return sample(
                scrape(worker), "stream_drift_events_total", model=MODEL, outcome="accepted"
            )

        wait_until(
            lambda: accepted() == n_good, timeout=60, what=f"{n_good} accepted", workers=[worker]
        )
        # Offsets are committed past the poison records: at the chunk start of each position.
        want = {p: (off + 1) - (off + 1) % CHUNK for p, off in last_offset.items()}
        assert all(want[b.partition] > b.offset for b in bad)
        seen: list[dict[int, int | None]] = []

        def all_committed() -> bool:
            seen.append(committed(settings))
            return seen[-1] == want

        try:
            wait_until(
                all_committed, timeout=30, what=f"committed offsets {want}", workers=[worker]
            )
        finally:
            print(f"committed offsets: {seen[-1:]}, wanted {want}")
        samples = scrape(worker)
        context = f"\n{worker.metrics_text()}{logs(worker)}"
        assert (
            sample(samples, "stream_drift_events_total", model=MODEL, outcome="accepted") == n_good
        )
        for reason in ("oversize", "malformed_json"):
            n = sum(1 for b in bad if b.reason == reason)
            assert sample(samples, "stream_drift_deadletter_total", reason=reason) == n, context
        failures = {
            labels: v
            for (name, labels), v in samples.items()
            if name == "stream_drift_send_failures_total"
        }
        assert not any(failures.values()), context
        assert worker.is_running(), context
        assert worker.health().get("status") == "ok", (worker.health(), context)
        assert not crash_lines(worker), context
        print(f"committed offsets {committed(settings)}; accepted {n_good}; worker running")

        # A restart replays from the committed chunk starts: good events only, no poison record.
        stop_all([worker])
        start_all([restarted])  # ready: it owns the events partitions
        replay = sum(off + 1 - want[p] for p, off in last_offset.items())

        def replayed() -> float:
            s = scrape(restarted)
            return sample(s, "stream_drift_events_total", model=MODEL, outcome="accepted") or 0

        wait_until(
            lambda: replayed() >= replay,
            timeout=60,
            what=f"the restarted worker replaying {replay} events",
            workers=[restarted],
        )
        time.sleep(3 * settings.ingest.flush_interval_seconds)  # anything more would show now
        again = letters_of(settings, bad)
        samples = scrape(restarted)
        context = f"\n{restarted.metrics_text()}{logs(*workers)}"
        assert len(again) == len(bad), context  # no poison record dead-lettered twice
        # Tansu may hand a group a partition's last record once more (KAFKA-LOCAL.md §11).
        assert replay <= replayed() <= replay + EVENT_PARTITIONS, context
        assert sample(samples, "stream_drift_deadletter_total", reason="oversize") is None
        assert sample(samples, "stream_drift_deadletter_total", reason="malformed_json") is None
        assert committed(settings) == want, context
        assert restarted.is_running() and not crash_lines(*workers), context
        print(f"restart: {replayed():.0f} events replayed (from the chunk starts), 0 dead letters")
    finally:
        stop_all(workers)


# ----------------------------------------------------------------------------------------------
# The send failures the broker above never causes, with a fake producer. These need no broker.
# ----------------------------------------------------------------------------------------------


class FakeTopic:
    """A Faust topic whose ``send`` fails as told: ``fail(key, value, attempt)`` returns an
    exception to raise at send time (``raise_now``) or to complete the future with."""

    def __init__(self, name: str, fail: Any = None, *, raise_now: bool = False) -> None:
        self.name = name
        self.fail = fail
        self.raise_now = raise_now
        self.attempts: list[bytes] = []
        self.delivered: list[tuple[bytes | None, bytes]] = []

    async def send(self, *, key: bytes | None, value: bytes) -> asyncio.Future[Any]:
        self.attempts.append(value)
        exc = self.fail(key, value, len(self.attempts)) if self.fail else None
        if exc is not None and self.raise_now:
            raise exc
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if exc is None:
            self.delivered.append((key, value))
            fut.set_result(None)
        else:
            fut.set_exception(exc)
        return fut


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


def too_large(limit: int) -> Any:
    """The producer's own size check, as Faust reports it (a ProducerSendError)."""
    from aiokafka.errors import MessageSizeTooLargeError
    from faust.exceptions import ProducerSendError

    def fail(key: bytes | None, value: bytes, attempt: int) -> Exception | None:
        size = len(value) + len(key or b"")
        if size <= limit:
            return None
        try:
            raise MessageSizeTooLargeError(f"The message is {size} bytes")
        except MessageSizeTooLargeError as exc:
            err = ProducerSendError(f"Error while sending: {exc!r}")
            err.__cause__ = exc
            return err

    return fail


@dataclass
class Service:
    svc: Any
    deadletter: FakeTopic
    partials: FakeTopic
    consumer: FakeConsumer


def service(*, deadletter: FakeTopic | None = None, partials: FakeTopic | None = None) -> Service:
    from stream_drift.app.ingest import IngestService
    from stream_drift.app.runtime import Runtime
    from stream_drift.app.topics import Topics

    runtime = Runtime(Settings())
    runtime.registry.add(make_reference(MODEL))
    dl = deadletter or FakeTopic("drift.deadletter")
    pa = partials or FakeTopic("drift.partials")
    topics = Topics(partials=pa, alerts=None, results=None, references=None, deadletter=dl)
    svc = IngestService(runtime, topics)
    consumer = FakeConsumer()
    svc.consumer = consumer
    return Service(svc, dl, pa, consumer)


async def ingest(s: Service, values: Sequence[bytes]) -> dict[TopicPartition, int]:
    """Ingest ``values`` as offsets 0.. of drift.events/0 the way the loop does, then flush."""
    from stream_drift.pipeline.events import RawRecord

    records = [RawRecord(v, "drift.events", 0, i, 1_900_000_000_000) for i, v in enumerate(values)]
    await s.svc._handle(s.svc.accumulator.add_records(records))
    tp = TopicPartition("drift.events", 0)
    s.svc._offsets[tp] = len(values)
    await asyncio.wait_for(s.svc.flush(), timeout=30)
    return {tp: len(values)}


def failures(s: Service) -> dict[tuple[str, str], float]:
    out = {}
    for metric in s.svc.runtime.prometheus.collect():
        for x in metric.samples:
            if x.name == "stream_drift_send_failures_total":
                out[(x.labels["kind"], x.labels["reason"])] = x.value
    return out


GOOD = [encode(e) for e in make_events(MODEL, 5, rate=1.0, seed=3, start=BASE)]


def test_dead_letter_refused_as_too_large_is_sent_smaller_and_committed() -> None:
    """A dead-letter topic whose limit is below ``ingest.deadletter_max_bytes`` (the broker's
    or the topic's): the dead letter is rebuilt 4x smaller per attempt until it fits."""
    s = service(deadletter=FakeTopic("drift.deadletter", too_large(100_000), raise_now=True))
    big = big_valid(1_300_000)
    committed = asyncio.run(ingest(s, [*GOOD, big]))
    sizes = [len(v) for v in s.deadletter.attempts]
    assert sizes[0] > 890_000 and 200_000 < sizes[1] <= 225_000 and sizes[2] <= 56_250, sizes
    ((_, value),) = s.deadletter.delivered
    doc = json.loads(value)
    assert doc["truncated"] and doc["original_bytes"] == len(big)
    assert doc["original_sha256"] == hashlib.sha256(big).hexdigest()
    assert s.consumer.commits == [committed] and failures(s) == {}
    assert s.svc.runtime.health.last_commit_ok is True


def test_record_failing_for_itself_is_skipped_counted_and_committed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A partial larger than the producer allows fails on every attempt: it is skipped,
    counted and logged with its source, and the offsets are committed."""
    s = service(partials=FakeTopic("drift.partials", too_large(100), raise_now=True))
    committed = asyncio.run(ingest(s, [*GOOD, b"not json"]))
    assert len(s.partials.attempts) == 3 and s.partials.delivered == []
    assert len(s.deadletter.delivered) == 1  # the malformed record's dead letter went
    assert failures(s) == {("partial", "message_too_large"): 1}
    assert s.consumer.commits == [committed]
    gave_up = [r.getMessage() for r in caplog.records if "gave up" in r.getMessage()]
    assert len(gave_up) == 1 and "drift.events/0 offsets [0, 6) (5 events)" in gave_up[0]


def test_broker_refusing_a_batch_does_not_lose_its_other_records() -> None:
    """The broker refuses a whole batch when one record is too large: each record of it is
    retried alone, so only the large one is rebuilt smaller."""
    state = {"first": True}

    def batch_refused(key: bytes | None, value: bytes, attempt: int) -> Exception | None:
        from aiokafka.errors import MessageSizeTooLargeError

        if state["first"] and attempt <= 2:  # the first two dead letters shared a batch
            refused: Exception = MessageSizeTooLargeError()
            return refused
        state["first"] = False
        return None

    s = service(deadletter=FakeTopic("drift.deadletter", batch_refused))
    asyncio.run(ingest(s, [*GOOD, b"[1]", b"[2]"]))
    assert sorted(json.loads(v)["source"]["offset"] for _, v in s.deadletter.delivered) == [5, 6]
    assert failures(s) == {}


def test_outage_holds_the_offsets_back_until_the_records_are_delivered() -> None:
    """Connection errors are not the record's fault: retried with back-off, never skipped;
    nothing is committed before the dead letter is delivered, and /health says so."""
    from aiokafka.errors import KafkaConnectionError

    seen_health: list[object] = []

    def down_three_times(key: bytes | None, value: bytes, attempt: int) -> Exception | None:
        if attempt <= 3:
            down: Exception = KafkaConnectionError("Connection at 127.0.0.1:9092 closed")
            return down
        return None

    s = service(deadletter=FakeTopic("drift.deadletter", down_three_times))

    async def run() -> dict[TopicPartition, int]:
        task = asyncio.ensure_future(ingest(s, [*GOOD, b"[]"]))
        while not task.done():
            seen_health.append(s.svc.runtime.health.last_commit_ok)
            assert s.consumer.commits == []  # not before the dead letter is delivered
            await asyncio.sleep(0.05)
        return await task

    started = time.monotonic()
    committed = asyncio.run(run())
    assert len(s.deadletter.attempts) == 4 and len(s.deadletter.delivered) == 1
    assert s.consumer.commits == [committed] and failures(s) == {}
    assert False in seen_health and s.svc.runtime.health.last_commit_ok is True
    assert time.monotonic() - started >= 0.5 + 1.0 + 2.0 - 0.1  # back-off 0.5, 1, 2 s


def test_outage_when_stopping_leaves_the_offsets_uncommitted() -> None:
    from aiokafka.errors import KafkaTimeoutError

    s = service(deadletter=FakeTopic("drift.deadletter", lambda k, v, a: KafkaTimeoutError()))
    s.svc._stopping = True
    asyncio.run(ingest(s, [*GOOD, b"[]"]))
    assert s.consumer.commits == []  # a restart replays them
    assert s.svc.runtime.health.last_commit_ok is False
    assert "offsets not committed" in str(s.svc.runtime.health.last_commit_error)
