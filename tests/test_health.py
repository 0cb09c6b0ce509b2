"""`/health` verdicts: what makes a worker report itself as failing."""

from __future__ import annotations

import json

from stream_drift.app.health import Health
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
    rt.health = Health(last_commit_ok=False, last_commit_error="KafkaConnectionError()")
    body = health_report(rt, now=1000.0)
    assert body["status"] == "failing"
    assert body["problems"] == ["offset commit failing: KafkaConnectionError()"]


def test_crashed_ingest_is_failing() -> None:
    rt = _runtime()
    rt.health.ingest = "crashed"
    assert health_report(rt, now=1000.0)["status"] == "failing"


def test_crashed_label_join_is_failing_not_live_and_says_why() -> None:
    from stream_drift.app.web import liveness_report

    rt = _runtime()
    rt.health.label_join = "started"
    assert health_report(rt, now=1000.0)["status"] == "ok"
    rt.health.label_join = "crashed"
    rt.health.label_join_error = "RuntimeError: label join: topic 'x' does not exist"
    body = health_report(rt, now=1000.0)
    assert body["status"] == "failing"
    assert body["problems"] == [
        "label join loop crashed: RuntimeError: label join: topic 'x' does not exist"
    ]
    assert liveness_report(rt, now=1000.0)["status"] == "failing"


def test_a_long_table_recovery_is_failing_a_short_one_is_not() -> None:
    rt = _runtime()
    rt.health.recovering_since = 1000.0
    assert health_report(rt, now=1000.0 + RECOVERY_STUCK_SECONDS - 1)["status"] == "ok"
    body = health_report(rt, now=1000.0 + RECOVERY_STUCK_SECONDS + 5)
    assert body["status"] == "failing"
    assert body["problems"] == [f"table recovery running for {RECOVERY_STUCK_SECONDS + 5:.0f} s"]


def test_degraded_keeps_every_field_and_is_not_failing() -> None:
    from stream_drift.app.web import INGEST_LOOP_STUCK_SECONDS

    rt = _runtime()
    rt.health = Health(ingest="started", ingest_partitions=[0], records_consumed=7)
    rt.health.ingest_loop_at = 1000.0
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
    rt.health.stage2_commit_started = 1000.0
    assert health_report(rt, now=1000.0 + COMMIT_STUCK_SECONDS - 1)["status"] == "ok"
    body = health_report(rt, now=1000.0 + COMMIT_STUCK_SECONDS + 1)
    assert body["status"] == "failing"
    assert any("stage-2 offset commit" in p for p in body["problems"])
    ready = readiness_report(rt, now=1000.0 + COMMIT_STUCK_SECONDS + 1)
    assert any("stage-2 offset commit" in p for p in ready["problems"])


def test_a_broker_that_lost_offsets_already_read_fails_health() -> None:
    from stream_drift.app.web import health_report

    rt = Runtime(Settings())
    rt.health.broker_lost_log = "drift.events/0: high-water mark 3 below offset 500 already read"
    body = health_report(rt, now=0.0)
    assert body["status"] == "failing"
    assert any("broker lost its log" in p for p in body["problems"])


def test_the_body_holds_every_known_figure_under_its_name() -> None:
    """The ``/health`` JSON contract: each figure under the key it always had, unknown ones
    absent (not ``null``)."""
    figures = {
        "ingest": "started",
        "ingest_partitions": [0, 2],
        "stage2_partitions": [],
        "ingest_loop_at": 999.5,
        "first_batch_at": 900.0,
        "last_batch_at": 999.0,
        "records_consumed": 12,
        "last_commit_ok": True,
        "last_commit_error": "CommitFailedError()",
        "last_flush_at": 998.0,
        "consumer_lag_records": 3,
        "consumer_lag_at": 999.0,
        "recovering_since": 990.0,
        "stage2_commit_started": 999.0,
        "label_join": "started",
        "label_join_partitions": [1, 3],
    }
    rt = _runtime()
    for name, value in figures.items():
        setattr(rt.health, name, value)
    body = health_report(rt, now=1000.0)
    assert body == {"references": 0, "references_ready": False, **figures, "status": "ok"}
    assert json.loads(json.dumps(body)) == body
    rt.health.consumer_lag_growing_since = 900.0
    rt.health.broker_lost_log = "drift.events/0: high-water mark 3 below offset 5 already read"
    body = health_report(rt, now=1000.0)
    assert body["consumer_lag_growing_since"] == 900.0
    assert body["broker_lost_log"].startswith("drift.events/0")
    rt.health.label_join_error = "RuntimeError: boom"
    assert health_report(rt, now=1000.0)["label_join_error"] == "RuntimeError: boom"
    assert body["status"] == "failing"
