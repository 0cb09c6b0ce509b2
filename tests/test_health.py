"""`/health` verdicts: what makes a worker report itself as failing."""

from __future__ import annotations

from stream_drift.app.runtime import Runtime
from stream_drift.app.web import RECOVERY_STUCK_SECONDS, health_report
from stream_drift.config import Settings


def _runtime() -> Runtime:
    return Runtime(Settings())


def test_a_fresh_worker_is_ok() -> None:
    body = health_report(_runtime(), now=1000.0)
    assert body["status"] == "ok"
    assert body["references"] == 0
    assert "problems" not in body


def test_failed_commit_is_failing_and_says_why() -> None:
    rt = _runtime()
    rt.health.update(last_commit_ok=False, last_commit_error="KafkaConnectionError()")
    body = health_report(rt, now=1000.0)
    assert body["status"] == "failing"
    assert body["problems"] == ["offset commit failing: KafkaConnectionError()"]


def test_crashed_ingest_is_failing() -> None:
    rt = _runtime()
    rt.health["ingest"] = "crashed"
    assert health_report(rt, now=1000.0)["status"] == "failing"


def test_a_long_table_recovery_is_failing_a_short_one_is_not() -> None:
    rt = _runtime()
    rt.health["recovering_since"] = 1000.0
    assert health_report(rt, now=1000.0 + RECOVERY_STUCK_SECONDS - 1)["status"] == "ok"
    body = health_report(rt, now=1000.0 + RECOVERY_STUCK_SECONDS + 5)
    assert body["status"] == "failing"
    assert body["problems"] == [f"table recovery running for {RECOVERY_STUCK_SECONDS + 5:.0f} s"]


def test_degraded_keeps_every_field_and_is_not_failing() -> None:
    from stream_drift.app.web import INGEST_LOOP_STUCK_SECONDS

    rt = _runtime()
    rt.health.update(ingest="started", ingest_partitions=[0], records_consumed=7)
    rt.health["ingest_loop_at"] = 1000.0
    body = health_report(rt, now=1000.0 + INGEST_LOOP_STUCK_SECONDS + 1)
    assert body["status"] == "degraded"
    assert body["problems"] == [
        f"ingest loop stuck: no iteration for {INGEST_LOOP_STUCK_SECONDS + 1:.0f} s"
    ]
    assert {"references", "references_ready", "ingest", "ingest_partitions"} <= set(body)
    assert body["records_consumed"] == 7


def test_a_stage2_commit_that_never_finishes_fails_health_and_readiness() -> None:
    from stream_drift.app.web import COMMIT_STUCK_SECONDS, health_report, readiness_report

    rt = Runtime(Settings())
    rt.health["stage2_commit_started"] = 1000.0
    assert health_report(rt, now=1000.0 + COMMIT_STUCK_SECONDS - 1)["status"] == "ok"
    body = health_report(rt, now=1000.0 + COMMIT_STUCK_SECONDS + 1)
    assert body["status"] == "failing"
    assert any("stage-2 offset commit" in p for p in body["problems"])
    ready = readiness_report(rt, now=1000.0 + COMMIT_STUCK_SECONDS + 1)
    assert any("stage-2 offset commit" in p for p in ready["problems"])


def test_a_broker_that_lost_offsets_already_read_fails_health() -> None:
    from stream_drift.app.web import health_report

    rt = Runtime(Settings())
    rt.health["broker_lost_log"] = "drift.events/0: high-water mark 3 below offset 500 already read"
    body = health_report(rt, now=0.0)
    assert body["status"] == "failing"
    assert any("broker lost its log" in p for p in body["problems"])
