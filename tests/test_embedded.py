"""Tests of the embedded Tansu broker and of the Kafka test helpers."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka_helpers import describe_partitions, produce, read_topic

from stream_drift.app.admin import create_topics, create_topics_sync
from stream_drift.tools.embedded import EmbeddedBroker, find_free_port

pytestmark = pytest.mark.kafka


def _pid_gone(pid: int, within: float = 5.0) -> bool:
    """Whether ``pid`` no longer exists (our child is reaped by ``stop``)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _accepts(bootstrap: str) -> bool:
    host, port = bootstrap.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def test_start_and_stop_by_pid(tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    assert not broker.is_running()
    assert broker.pid is None
    broker.start()
    try:
        pid = broker.pid
        assert pid is not None
        assert broker.is_running()
        assert broker.bootstrap_servers == f"127.0.0.1:{broker.port}"
        assert _accepts(broker.bootstrap_servers)
        assert _pid_alive(pid)
    finally:
        broker.stop()
    assert not broker.is_running()
    assert broker.pid is None
    assert _pid_gone(pid), f"broker pid {pid} still exists after stop()"
    broker.stop()  # idempotent
    assert (tmp_path / "tansu.log").exists()  # a given log path is kept


def test_context_manager_and_explicit_port() -> None:
    port = find_free_port()
    with EmbeddedBroker(port=port) as broker:
        assert broker.port == port
        assert broker.bootstrap_servers == f"127.0.0.1:{port}"
        pid = broker.pid
        assert pid is not None and _pid_alive(pid)
        assert _accepts(broker.bootstrap_servers)
    assert _pid_gone(pid)
    assert not _accepts(f"127.0.0.1:{port}")


def test_start_fails_clearly_when_port_is_taken() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        broker = EmbeddedBroker(port=port)
        # The port accepts connections (the blocker listens): a readiness check
        # by connection alone would wrongly report success.
        with pytest.raises(RuntimeError, match="already in use"):
            broker.start(timeout=3.0)
        assert not broker.is_running()
        assert broker.pid is None


def test_two_brokers_run_at_once(unique_topic: Callable[[str], str]) -> None:
    topic = unique_topic("two")
    with EmbeddedBroker() as first, EmbeddedBroker() as second:
        assert first.port != second.port
        assert first.pid != second.pid
        produce(first.bootstrap_servers, topic, [b"only-in-first"])
        produce(second.bootstrap_servers, topic, [b"only-in-second-1", b"only-in-second-2"])
        got_first = [r.value for r in read_topic(first.bootstrap_servers, topic, min_records=1)]
        got_second = [r.value for r in read_topic(second.bootstrap_servers, topic, min_records=2)]
    assert got_first == [b"only-in-first"]
    assert sorted(got_second) == [b"only-in-second-1", b"only-in-second-2"]


def test_create_topics_with_partition_counts(
    kafka_broker: EmbeddedBroker, unique_topic: Callable[[str], str]
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    events, partials, refs = unique_topic("events"), unique_topic("partials"), unique_topic("refs")
    create_topics_sync(bootstrap, {events: 4, partials: 2, refs: 1}, compacted=[refs])
    assert describe_partitions(bootstrap, [events, partials, refs]) == {
        events: 4,
        partials: 2,
        refs: 1,
    }
    # Idempotent: a second call (even with another count) neither fails nor changes them.
    create_topics_sync(bootstrap, {events: 4, partials: 8})
    assert describe_partitions(bootstrap, [events, partials]) == {events: 4, partials: 2}


def test_create_topics_async_and_validation(
    kafka_broker: EmbeddedBroker, unique_topic: Callable[[str], str]
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    name = unique_topic("async")
    asyncio.run(create_topics(bootstrap, {name: 3}))
    assert describe_partitions(bootstrap, [name]) == {name: 3}
    with pytest.raises(ValueError, match="not in topics"):
        create_topics_sync(bootstrap, {name: 3}, compacted=["other"])
    asyncio.run(create_topics(bootstrap, {}))  # nothing to do


def test_produce_then_read_back(
    kafka_broker: EmbeddedBroker, unique_topic: Callable[[str], str]
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    topic = unique_topic("rw")
    create_topics_sync(bootstrap, {topic: 4})
    values = [{"model": "fraud", "i": i} for i in range(500)]
    keys = [f"k{i % 7}" for i in range(500)]
    meta = produce(bootstrap, topic, values, keys)
    assert len(meta) == 500
    assert {m.partition for m in meta} <= {0, 1, 2, 3}
    assert len({m.partition for m in meta}) > 1  # 7 keys spread over 4 partitions

    records = read_topic(bootstrap, topic, min_records=500)
    assert len(records) == 500
    assert sorted(json.loads(r.value)["i"] for r in records) == list(range(500))
    # Same key -> same partition, and per-partition order is preserved.
    by_key: dict[bytes, set[int]] = {}
    for r in records:
        by_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(parts) == 1 for parts in by_key.values())
    for p in {r.partition for r in records}:
        offsets = [r.offset for r in records if r.partition == p]
        assert offsets == sorted(offsets)
        ids = [json.loads(r.value)["i"] for r in records if r.partition == p]
        assert ids == sorted(ids)


def test_read_topic_missing_topic_is_empty_and_not_created(
    kafka_broker: EmbeddedBroker, unique_topic: Callable[[str], str]
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    topic = unique_topic("missing")
    assert read_topic(bootstrap, topic, idle_s=0.3) == []
    assert describe_partitions(bootstrap, [topic]) == {}


def test_read_topic_times_out_when_too_few_records(
    kafka_broker: EmbeddedBroker, unique_topic: Callable[[str], str]
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    topic = unique_topic("few")
    create_topics_sync(bootstrap, {topic: 1})
    produce(bootstrap, topic, [b"a", b"b"])
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="2 records"):
        read_topic(bootstrap, topic, min_records=3, idle_s=0.2, timeout_s=2.0)
    assert time.monotonic() - started < 10


def test_start_failure_reports_log_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "fake-tansu"
    fake.write_text("#!/bin/sh\necho 'boom: cannot start' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CALF_TANSU_BIN", str(fake))
    broker = EmbeddedBroker()
    with pytest.raises(RuntimeError, match=r"(?s)exited with code 3.*boom: cannot start"):
        broker.start(timeout=2.0)
    assert not broker.is_running()
    assert broker.pid is None
