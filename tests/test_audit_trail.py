"""Issue 8 §5, the audit trail, without a broker: the configs every topic is created with
(``cleanup.policy``, ``retention.ms``), what the admin and producer calls receive, the
``worker_version`` of every result, and which published profile is current."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import stream_drift
from stream_drift.app.admin import create_topics, topic_request_configs
from stream_drift.app.topics import partition_counts, topic_configs
from stream_drift.config import ConfigError, Settings, load_settings
from stream_drift.pipeline.evaluator import WindowResult
from stream_drift.pipeline.reference import ReferenceProfile, build_reference
from stream_drift.pipeline.registry import (
    PublishedReference,
    ReferenceRegistry,
    reference_history,
    reference_record_key,
)

DAY_MS = 86_400_000


def _profile(version: str, shift: float = 0.0) -> ReferenceProfile:
    rng = np.random.default_rng(7)
    return build_reference(
        {"x": rng.normal(shift, 1.0, 500), "c": ["a", "b"] * 250},
        model="fraud",
        model_version=version,
    )


# --- topic configs -----------------------------------------------------------------------------


def test_default_topic_configs() -> None:
    configs = topic_configs(Settings())
    assert configs == {
        "drift.events": {"cleanup.policy": "delete"},
        "drift.labels": {"cleanup.policy": "delete"},
        "drift.partials": {"cleanup.policy": "delete"},
        "drift.alerts": {"cleanup.policy": "delete", "retention.ms": "-1"},
        "drift.results": {"cleanup.policy": "delete", "retention.ms": "-1"},
        "drift.references": {"cleanup.policy": "compact", "retention.ms": "-1"},
        "drift.deadletter": {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)},
    }
    # Every topic that is created has its configs, and no others.
    assert set(configs) == set(partition_counts(Settings()))


def test_topic_configs_follow_the_settings(tmp_path: Path) -> None:
    config = tmp_path / "s.yaml"
    config.write_text(
        "topics:\n"
        "  results: audit.results\n"
        "  retention_ms: {results: 7776000000, alerts: null, events: 3600000}\n"
        "  cleanup_policy: {deadletter: 'compact,delete'}\n"
    )
    configs = topic_configs(load_settings(config, env={}))
    assert configs["audit.results"] == {"cleanup.policy": "delete", "retention.ms": "7776000000"}
    assert configs["drift.alerts"] == {"cleanup.policy": "delete"}  # null: broker default
    assert configs["drift.events"] == {"cleanup.policy": "delete", "retention.ms": "3600000"}
    assert configs["drift.deadletter"]["cleanup.policy"] == "compact,delete"
    env = {"STREAM_DRIFT_TOPICS__RETENTION_MS__RESULTS": "86400000"}
    assert topic_configs(load_settings(env=env))["drift.results"]["retention.ms"] == "86400000"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"STREAM_DRIFT_TOPICS__RETENTION_MS__RESULTS": "-2"}, "topics.retention_ms.results"),
        ({"STREAM_DRIFT_TOPICS__CLEANUP_POLICY__ALERTS": "keep"}, "topics.cleanup_policy.alerts"),
        (
            {
                "STREAM_DRIFT_TOPICS__CLEANUP_POLICY__REFERENCES": "delete",
                "STREAM_DRIFT_TOPICS__RETENTION_MS__REFERENCES": "1000",
            },
            "would delete reference profiles",
        ),
    ],
)
def test_invalid_topic_configs_are_refused(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_settings(env=env)


def test_references_may_be_deleted_only_never() -> None:
    env = {"STREAM_DRIFT_TOPICS__CLEANUP_POLICY__REFERENCES": "delete"}
    assert topic_configs(load_settings(env=env))["drift.references"] == {
        "cleanup.policy": "delete",
        "retention.ms": "-1",
    }


def test_prepare_topics_passes_every_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from stream_drift.app import admin
    from stream_drift.app.worker import prepare_topics

    calls: list[tuple[str, dict[str, int], dict[str, Any]]] = []

    def fake(bootstrap: str, topics: dict[str, int], **kwargs: Any) -> None:
        calls.append((bootstrap, topics, kwargs))

    monkeypatch.setattr(admin, "create_topics_sync", fake)
    settings = Settings().override({"topics.retention_ms.results": 1000})
    prepare_topics(settings)
    [(_, topics, kwargs)] = calls
    assert topics == partition_counts(settings)
    assert kwargs["configs"] == topic_configs(settings)
    assert kwargs["configs"]["drift.results"]["retention.ms"] == "1000"


def test_request_configs_of_create_topics() -> None:
    configs = {"r": {"retention.ms": "-1"}, "a": {"cleanup.policy": "delete"}}
    assert topic_request_configs("r", ["r"], configs) == {
        "retention.ms": "-1",
        "cleanup.policy": "compact",
    }
    assert topic_request_configs("a", (), configs) == {"cleanup.policy": "delete"}
    assert topic_request_configs("other", (), configs) == {}
    with pytest.raises(ValueError, match="configs of topics not in topics"):
        asyncio.run(create_topics("127.0.0.1:9", {"a": 1}, configs={"b": {}}))


def test_create_topics_sends_the_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiokafka.admin

    sent: list[Any] = []

    class Admin:
        def __init__(self, **kwargs: Any) -> None:
            pass

        async def start(self) -> None:
            pass

        async def close(self) -> None:
            pass

        async def create_topics(self, new_topics: list[Any], timeout_ms: int) -> Any:
            sent.extend(new_topics)

            class Response:
                def __init__(self, errors: list[tuple[str, int, None]]) -> None:
                    self.topic_errors = errors

            return Response([(t.name, 0, None) for t in new_topics])

    monkeypatch.setattr(aiokafka.admin, "AIOKafkaAdminClient", Admin)
    settings = Settings()
    asyncio.run(create_topics("k:1", partition_counts(settings), configs=topic_configs(settings)))
    assert {t.name: t.topic_configs for t in sent} == topic_configs(settings)
    assert {t.name: t.num_partitions for t in sent} == partition_counts(settings)


# --- publishing references ---------------------------------------------------------------------


class _Producer:
    sent: ClassVar[list[dict[str, Any]]] = []
    built: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.built.append(kwargs)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send_and_wait(self, topic: str, value: bytes, **kwargs: Any) -> None:
        self.sent.append({"topic": topic, "value": value, **kwargs})


def test_publish_reference_keys_and_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiokafka
    from aiokafka.partitioner import DefaultPartitioner

    from stream_drift.app import admin
    from stream_drift.app.kafka_io import (
        REFERENCE_TOPIC_CONFIGS,
        publish_reference,
        reference_partitioner,
    )

    created: list[dict[str, Any]] = []

    async def fake_create(bootstrap: str, topics: dict[str, int], **kwargs: Any) -> None:
        created.append({"topics": topics, **kwargs})

    _Producer.sent, _Producer.built = [], []
    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", _Producer)
    monkeypatch.setattr(admin, "create_topics", fake_create)
    first, second = _profile("7"), _profile("7", shift=1.0)
    assert first.id != second.id
    asyncio.run(publish_reference("k:1", "refs", first, partitions=4))
    custom = {"cleanup.policy": "compact", "retention.ms": "123"}
    asyncio.run(publish_reference("k:1", "refs", second, partitions=4, topic_configs=custom))
    assert [c["configs"] for c in created] == [
        {"refs": dict(REFERENCE_TOPIC_CONFIGS)},
        {"refs": custom},
    ]
    assert topic_configs(Settings())["drift.references"] == REFERENCE_TOPIC_CONFIGS
    keys = [m["key"] for m in _Producer.sent]
    assert keys == [f"fraud/7/{first.id}".encode(), f"fraud/7/{second.id}".encode()]
    # Every record of a version goes to the partition of its ``model/version`` (as when that
    # was the key): topic order decides which is current.
    assert [b["partitioner"] for b in _Producer.built] == [reference_partitioner] * 2
    parts = list(range(8))
    default = DefaultPartitioner()
    for version in ("7", "8", "release/2"):
        ids = [_profile(version, s).id for s in (0.0, 1.0)]
        assert {
            reference_partitioner(f"fraud/{version}/{i}".encode(), parts, parts) for i in ids
        } == {default(f"fraud/{version}".encode(), parts, parts)}


def test_record_key_names_model_version_and_id() -> None:
    p = _profile("7")
    assert reference_record_key(p) == f"fraud/7/{p.id}"
    assert reference_record_key(_profile("7", 2.0)) != reference_record_key(p)


# --- results ----------------------------------------------------------------------------------


def test_results_name_the_reference_and_the_worker_version() -> None:
    result = WindowResult(
        model="fraud",
        model_version="7",
        reference_id="sha256:0123456789abcdef",
        window_start=1_700_000_000.0,
        window_end=1_700_000_300.0,
        evaluated_at=1_700_000_301.0,
        n_events=10,
        late_events=0,
        evaluations={},
    )
    message = result.to_dict()
    assert message["reference_id"] == "sha256:0123456789abcdef"
    assert message["worker_version"] == stream_drift.__version__
    assert isinstance(message["worker_version"], str) and message["worker_version"]
    assert {"model", "model_version", "window", "n_events", "features", "drifted"} <= set(message)


# --- history ----------------------------------------------------------------------------------


def _published(p: ReferenceProfile, ts: int, offset: int, partition: int = 0) -> PublishedReference:
    return PublishedReference.of(
        p, timestamp_ms=ts, partition=partition, offset=offset, key=reference_record_key(p)
    )


def test_history_marks_the_latest_record_of_each_version_current() -> None:
    a7, b7, a8 = _profile("7"), _profile("7", 1.0), _profile("8", 2.0)
    records = [_published(a7, 1000, 0), _published(a8, 2000, 1), _published(b7, 3000, 2)]
    history = reference_history(reversed(records))
    assert [(r.reference_id, r.current) for r in history] == [
        (a7.id, False),
        (a8.id, True),
        (b7.id, True),
    ]
    # The registry, fed in topic order, judges against the same profiles.
    registry = ReferenceRegistry()
    for p in (a7, a8, b7):
        registry.add(p)
    current = {(r.model, r.model_version): r.reference_id for r in history if r.current}
    assert current == {("fraud", "7"): b7.id, ("fraud", "8"): a8.id}
    assert {k: registry.lookup(*k).id for k in current} == current  # type: ignore[union-attr]
    # Topic order, not the timestamp, decides within a partition (publishers' clocks differ).
    skewed = reference_history([_published(a7, 5000, 0), _published(b7, 4000, 1)])
    assert [r.reference_id for r in skewed if r.current] == [b7.id]
    # Republishing an older profile makes it current again.
    again = reference_history([*records, _published(a7, 4000, 3)])
    assert [r.reference_id for r in again if r.current and r.model_version == "7"] == [a7.id]


def test_history_entry_fields() -> None:
    p = _profile("7")
    r = _published(p, 1_764_617_400_123, 5)
    d = r.to_dict()
    assert d["published_at"] == "2025-12-01T19:30:00.123Z"
    assert (d["n_rows"], d["n_series"]) == (500, 2)
    assert d["key"] == f"fraud/7/{p.id}" and d["reference_id"] == p.id
