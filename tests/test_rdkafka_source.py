"""Stage 1's librdkafka consumer (:mod:`stream_drift.app.rdkafka_source`).

The rebalance path with a real broker (partitions moving between workers, flushed and
committed first, every event counted once) is in ``tests/test_faults_scaling.py`` and the
kill tests, which run on aiokafka, the default ``ingest.client``: with librdkafka, no test
moves partitions between workers on a real broker. Here: what those cannot force — a
failing or hanging listener, errors among the fetched messages, the close — with a
scripted stand-in for ``confluent_kafka.Consumer`` behind the real class.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from aiokafka.structs import TopicPartition
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import TopicPartition as RdTopicPartition

from stream_drift.app import rdkafka_source
from stream_drift.app.rdkafka_source import RdkafkaSource, batch_of_messages
from stream_drift.config import Settings


class Message:
    """The methods of ``confluent_kafka.Message`` stage 1 reads."""

    def __init__(
        self, partition: int, offset: int, value: bytes | None = b"{}", error: Any = None
    ) -> None:
        self._p, self._o, self._v, self._e = partition, offset, value, error

    def error(self) -> Any:
        return self._e

    def topic(self) -> str:
        return "ev"

    def partition(self) -> int:
        return self._p

    def value(self) -> bytes | None:
        return self._v

    def offset(self) -> int:
        return self._o

    def timestamp(self) -> tuple[int, int]:
        return (1, 5_000 + self._o)

    def key(self) -> bytes | None:
        return b"k%d" % self._o


class Metadata:
    def __init__(self, n: int) -> None:
        self.topics = {"ev": type("T", (), {"partitions": dict.fromkeys(range(n))})()}


class ScriptedConsumer:
    """Plays a script of ``consume`` answers; rebalance callbacks run inside ``consume``."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self.conf = conf
        self.script: list[Any] = []
        self.callbacks: dict[str, Any] = {}
        self.commits: list[list[tuple[str, int, int]]] = []
        self.asked: list[int] = []
        self.closed = False

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.callbacks = callbacks

    def consume(self, n: int, timeout: float) -> list[Any]:
        self.asked.append(n)
        step = self.script.pop(0) if self.script else []
        if callable(step):
            step(self)
            return []
        return list(step)

    def list_topics(self, topic: str, timeout: float) -> Metadata:
        return Metadata(4)

    def get_watermark_offsets(self, tp: Any, cached: bool) -> tuple[int, int]:
        if tp.partition == 9:
            raise RuntimeError("no cached offsets")
        return (0, 100 + tp.partition)

    def commit(self, offsets: list[Any], asynchronous: bool) -> list[Any]:
        self.commits.append([(p.topic, p.partition, p.offset) for p in offsets])
        return offsets

    def close(self) -> None:
        if "on_revoke" in self.callbacks:
            self.callbacks["on_revoke"](self, [RdTopicPartition("ev", 0)])
        self.closed = True


class Listener:
    def __init__(self, fail: bool = False, hang: bool = False) -> None:
        self.calls: list[tuple[str, set[TopicPartition]]] = []
        self.fail, self.hang = fail, hang

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.calls.append(("assigned", assigned))

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.calls.append(("revoked", revoked))
        if self.hang:
            await asyncio.sleep(3600)
        if self.fail:
            raise RuntimeError("flush failed")


def rebalance(kind: str, *partitions: int) -> Any:
    def step(consumer: ScriptedConsumer) -> None:
        consumer.callbacks[kind](consumer, [RdTopicPartition("ev", p) for p in partitions])

    return step


async def _source(listener: Listener) -> tuple[RdkafkaSource, ScriptedConsumer]:
    built: list[ScriptedConsumer] = []

    def factory(conf: dict[str, Any]) -> ScriptedConsumer:
        built.append(ScriptedConsumer(conf))
        return built[0]

    executor = ThreadPoolExecutor(1, thread_name_prefix="stage1")
    source = RdkafkaSource(Settings(app_id="t"), executor, factory=factory)
    await source.start()
    source.subscribe(["ev"], listener)
    return source, built[0]


def test_a_fetch_is_one_batch_in_partition_runs_with_next_offsets() -> None:
    fetched, errors = batch_of_messages(
        [Message(0, 5), Message(0, 6), Message(2, 9), Message(0, 7), Message(1, 0, None)]
    )
    records = fetched.records
    assert records.sources == [("ev", 0, 2), ("ev", 2, 3), ("ev", 0, 4), ("ev", 1, 5)]
    assert records.offsets == [5, 6, 9, 7, 0] and records.values[4] is None  # a tombstone
    assert records.timestamps == [5005, 5006, 5009, 5007, 5000]
    assert records.keys == [b"k5", b"k6", b"k9", b"k7", b"k0"]
    assert fetched.next_offsets == {
        TopicPartition("ev", 0): 8,
        TopicPartition("ev", 2): 10,
        TopicPartition("ev", 1): 1,
    }
    assert fetched.first_offsets == {
        TopicPartition("ev", 0): 5,
        TopicPartition("ev", 2): 9,
        TopicPartition("ev", 1): 0,
    }
    assert errors == [] and fetched.count == 5
    # A record read back through the batch keeps its partition, offset, key and timestamp.
    assert records.record(3).partition == 0 and records.record(3).offset == 7


def test_errors_among_the_messages_are_left_out_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = KafkaError(KafkaError._TRANSPORT)

    async def run() -> tuple[Any, Any]:
        source, consumer = await _source(Listener())
        consumer.script = [
            [Message(0, 0), Message(0, -1, error=transport), Message(0, 1)],
            [Message(0, -1, error=transport)],
        ]
        first = await source.fetch(10, 100)
        second = await source.fetch(10, 100)
        return first, second

    with caplog.at_level(logging.WARNING, logger=rdkafka_source.__name__):
        first, second = asyncio.run(run())
    assert first.records.offsets == [0, 1] and second.count == 0
    warned = [r for r in caplog.records if "librdkafka" in r.getMessage()]
    assert len(warned) == 1 and "_TRANSPORT" in warned[0].getMessage()


def test_rebalances_reach_the_listener_on_the_loop_and_the_assignment_follows() -> None:
    async def run() -> tuple[Listener, list[Any]]:
        listener = Listener()
        source, consumer = await _source(listener)
        consumer.script = [rebalance("on_assign", 0, 1), [Message(1, 3)]]
        seen = []
        await source.fetch(10, 100)
        seen.append(source.assignment())
        fetched = await source.fetch(10, 100)
        seen.append(source.partitions_for_topic("ev"))
        seen.append((source.highwater(TopicPartition("ev", 1)), fetched.count))
        consumer.script = [rebalance("on_revoke", 1)]
        await source.fetch(10, 100)
        seen.append(source.assignment())
        await source.commit({TopicPartition("ev", 0): 40})
        seen.append(consumer.commits)
        await source.stop()
        seen.append(consumer.closed)
        return listener, seen

    listener, seen = asyncio.run(run())
    tp0, tp1 = TopicPartition("ev", 0), TopicPartition("ev", 1)
    assert seen == [
        frozenset({tp0, tp1}),
        {0, 1, 2, 3},
        (101, 1),
        frozenset({tp0}),
        [[("ev", 0, 40)]],
        True,
    ]
    # close() revokes everything; the service flushed before it, so the listener is not called.
    assert listener.calls == [("assigned", {tp0, tp1}), ("revoked", {tp1})]


def test_a_failing_listener_does_not_break_the_fetch(caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> Any:
        source, consumer = await _source(Listener(fail=True))
        consumer.script = [rebalance("on_assign", 0), rebalance("on_revoke", 0), [Message(0, 1)]]
        for _ in range(2):
            await source.fetch(10, 100)
        return source.assignment(), await source.fetch(10, 100)

    with caplog.at_level(logging.ERROR, logger=rdkafka_source.__name__):
        assignment, fetched = asyncio.run(run())
    assert assignment == frozenset() and fetched.count == 1
    assert any("on_partitions_revoked failed" in r.getMessage() for r in caplog.records)


def test_a_listener_that_hangs_is_given_up_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def run() -> Any:
        source, consumer = await _source(Listener(hang=True))
        monkeypatch.setattr(source, "_callback_timeout", 0.2)
        consumer.script = [rebalance("on_revoke", 0), [Message(0, 1)]]
        await source.fetch(10, 100)
        return await source.fetch(10, 100)

    with caplog.at_level(logging.ERROR, logger=rdkafka_source.__name__):
        fetched = asyncio.run(run())
    assert fetched.count == 1
    assert any("took over 0.2 s" in r.getMessage() for r in caplog.records)


def test_unknown_watermarks_are_none_and_a_failed_commit_raises() -> None:
    async def run() -> Any:
        source, consumer = await _source(Listener())

        def commit(offsets: list[Any], asynchronous: bool) -> list[Any]:
            # Per-partition results, as librdkafka returns them (one failed).
            done = type("Done", (), {"error": None})
            failed = type("Failed", (), {"error": KafkaError(KafkaError.REBALANCE_IN_PROGRESS)})
            return [done(), failed()]

        consumer.commit = commit  # type: ignore[method-assign]
        unknown = source.highwater(TopicPartition("ev", 9))
        with pytest.raises(KafkaException) as info:
            await source.commit({TopicPartition("ev", 0): 5})
        assert info.value.args[0].code() == KafkaError.REBALANCE_IN_PROGRESS
        return unknown, source.partitions_for_topic("never-fetched")

    assert asyncio.run(run()) == (None, None)


def test_a_larger_max_records_than_librdkafka_takes_is_capped() -> None:
    """``kafka.consumer_max_records`` has no upper bound; ``consume()`` refuses more than a
    million messages, which would stop stage 1 for good."""

    async def run() -> list[int]:
        source, consumer = await _source(Listener())
        await source.fetch(5_000_000, 100)
        await source.fetch(10, 100)
        return consumer.asked

    assert asyncio.run(run()) == [rdkafka_source.MAX_CONSUME, 10]


class Committed:
    """One entry of ``Consumer.committed``'s answer (its ``error`` cannot be set on a real
    ``TopicPartition`` from Python)."""

    def __init__(self, partition: int, offset: int, error: Any = None) -> None:
        self.topic, self.partition, self.offset, self.error = "ev", partition, offset, error


def test_committed_reads_none_for_no_offset_and_raises_on_an_error() -> None:
    answers = [
        [Committed(0, 7), Committed(1, -1001)],  # -1001: OFFSET_INVALID, none committed
        [Committed(0, 7), Committed(1, 0, KafkaError(KafkaError._TIMED_OUT))],
    ]

    async def run() -> tuple[dict[TopicPartition, int | None], BaseException | None]:
        source, consumer = await _source(Listener())
        consumer.committed = lambda parts, timeout: answers.pop(0)  # type: ignore[attr-defined]
        tps = [TopicPartition("ev", 0), TopicPartition("ev", 1)]
        first = await source.committed(tps)
        try:
            await source.committed(tps)
        except KafkaException as exc:
            return first, exc
        return first, None

    first, error = asyncio.run(run())
    assert first == {TopicPartition("ev", 0): 7, TopicPartition("ev", 1): None}
    # An error is not "none committed", which would read as a lost log.
    assert error is not None
