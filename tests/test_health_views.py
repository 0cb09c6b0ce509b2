"""``/health``, ``/health/live`` and ``/health/ready``: verdicts, HTTP status codes, and a real
worker that turns ready after start and never shows an event's feature values.

The verdicts are unit-tested on a :class:`Runtime` whose ``health`` record is filled by hand
(what stage 1 and stage 2 write there); the views are served by the worker's real Faust app
through aiohttp's test server (no broker needed); the last test starts a worker process
against the embedded broker.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from kafka_helpers import produce
from msgspec.structs import replace

from stream_drift.app.health import Health
from stream_drift.app.kafka_io import publish_reference
from stream_drift.app.runtime import LAG_GROWING_SECONDS, Runtime
from stream_drift.app.web import (
    INGEST_LOOP_STUCK_SECONDS,
    RECOVERY_STUCK_SECONDS,
    health_report,
    liveness_report,
    readiness_report,
)
from stream_drift.config import Settings
from stream_drift.pipeline.reference import build_reference
from stream_drift.tools.embedded import EmbeddedBroker, find_free_port
from stream_drift.tools.supervisor import WorkerProcess

NOW = 10_000.0


def ready_runtime() -> Runtime:
    """A runtime in the state of a worker that has started properly."""
    rt = Runtime(Settings())
    rt.references_ready.set()
    rt.health = Health(
        ingest="started",
        ingest_partitions=[0, 1],
        stage2_partitions=[2],
        ingest_loop_at=NOW - 0.1,
        last_commit_ok=True,
    )
    return rt


def feed_lag(rt: Runtime, samples: list[tuple[float, int]]) -> None:
    for at, lag in samples:
        rt.note_consumer_lag(lag, at)


# --- /health: ok, degraded, failing ----------------------------------------------------------


def test_a_started_worker_is_ok_live_and_ready() -> None:
    rt = ready_runtime()
    assert health_report(rt, NOW)["status"] == "ok"
    assert liveness_report(rt, NOW) == {"status": "ok"}
    assert readiness_report(rt, NOW) == {"status": "ready"}


def test_lag_growing_for_the_whole_period_is_degraded() -> None:
    rt = ready_runtime()
    start = NOW - LAG_GROWING_SECONDS - 5
    feed_lag(rt, [(start + i, 1000 + 50 * i) for i in range(int(LAG_GROWING_SECONDS) + 6)])
    body = health_report(rt, NOW)
    assert body["status"] == "degraded"
    total = body["consumer_lag_records"]
    assert body["problems"] == [
        f"ingest falling behind: consumer lag {total} records, "
        f"growing for {LAG_GROWING_SECONDS + 5:.0f} s"
    ]
    # Degraded is not a reason to restart, nor to stop sending traffic.
    assert liveness_report(rt, NOW)["status"] == "ok"
    assert readiness_report(rt, NOW)["status"] == "ready"


def test_lag_growing_for_less_than_the_period_is_ok() -> None:
    rt = ready_runtime()
    start = NOW - LAG_GROWING_SECONDS + 10
    feed_lag(rt, [(start + i, 1000 + 50 * i) for i in range(int(LAG_GROWING_SECONDS) - 10)])
    assert health_report(rt, NOW)["status"] == "ok"


def test_a_backlog_being_worked_off_is_not_falling_behind() -> None:
    rt = ready_runtime()
    start = NOW - 3 * LAG_GROWING_SECONDS
    # Large but shrinking lag: catching up.
    feed_lag(rt, [(start + i, 500_000 - 1000 * i) for i in range(int(3 * LAG_GROWING_SECONDS))])
    assert health_report(rt, NOW)["status"] == "ok"


def test_a_lag_that_drops_to_zero_starts_a_new_run() -> None:
    rt = ready_runtime()
    start = NOW - 2 * LAG_GROWING_SECONDS
    samples = [(start + i, 10 * (i % 30)) for i in range(int(2 * LAG_GROWING_SECONDS))]
    feed_lag(rt, samples)  # grows, but is back at zero every 30 s: keeping up
    assert health_report(rt, NOW)["status"] == "ok"
    assert rt.health.consumer_lag_growing_since is None


def test_a_stuck_ingest_loop_is_degraded_and_not_live() -> None:
    rt = ready_runtime()
    rt.health.ingest_loop_at = NOW - INGEST_LOOP_STUCK_SECONDS - 3
    body = health_report(rt, NOW)
    assert body["status"] == "degraded"
    stuck = f"ingest loop stuck: no iteration for {INGEST_LOOP_STUCK_SECONDS + 3:.0f} s"
    assert body["problems"] == [stuck]
    assert liveness_report(rt, NOW) == {"status": "failing", "problems": [stuck]}
    assert readiness_report(rt, NOW) == {"status": "not_ready", "problems": [stuck]}
    rt.health.ingest_loop_at = NOW - INGEST_LOOP_STUCK_SECONDS + 1
    assert liveness_report(rt, NOW) == {"status": "ok"}


def test_failing_wins_over_degraded_and_lists_both() -> None:
    rt = ready_runtime()
    rt.health = replace(rt.health, last_commit_ok=False, last_commit_error="CommitFailedError()")
    rt.health.ingest_loop_at = NOW - INGEST_LOOP_STUCK_SECONDS - 1
    body = health_report(rt, NOW)
    assert body["status"] == "failing"
    assert body["problems"][0] == "offset commit failing: CommitFailedError()"
    assert body["problems"][1].startswith("ingest loop stuck")


# --- liveness and readiness ----------------------------------------------------------------


def test_liveness_fails_on_a_crash_or_a_stuck_recovery_not_on_a_commit() -> None:
    rt = ready_runtime()
    rt.health = replace(rt.health, last_commit_ok=False, last_commit_error="X()")
    assert liveness_report(rt, NOW) == {"status": "ok"}
    rt.health.recovering_since = NOW - RECOVERY_STUCK_SECONDS - 1
    rt.health.ingest = "crashed"
    assert liveness_report(rt, NOW) == {
        "status": "failing",
        "problems": [
            "ingest loop crashed",
            f"table recovery running for {RECOVERY_STUCK_SECONDS + 1:.0f} s",
        ],
    }


def test_a_crashed_loop_is_not_also_reported_stuck() -> None:
    rt = ready_runtime()
    rt.health = replace(
        rt.health, ingest="crashed", ingest_loop_at=NOW - 10 * INGEST_LOOP_STUCK_SECONDS
    )
    assert liveness_report(rt, NOW)["problems"] == ["ingest loop crashed"]


def test_readiness_names_every_missing_condition() -> None:
    rt = Runtime(Settings())
    rt.health = replace(rt.health, last_commit_ok=False, last_commit_error="CommitFailedError()")
    assert readiness_report(rt, NOW) == {
        "status": "not_ready",
        "problems": [
            "references not loaded yet",
            "stage-1 consumer group not joined yet (no partitions assigned)",
            "stage-2 consumer group not joined yet (no partitions assigned)",
            "last offset commit failed: CommitFailedError()",
        ],
    }


def test_a_worker_with_no_partitions_to_own_is_still_ready() -> None:
    rt = ready_runtime()
    rt.health = replace(rt.health, ingest_partitions=[], stage2_partitions=[])
    assert readiness_report(rt, NOW) == {"status": "ready"}


def test_no_commit_yet_is_ready() -> None:
    rt = ready_runtime()
    rt.health.last_commit_ok = None
    assert readiness_report(rt, NOW) == {"status": "ready"}


# --- the views, served by the worker's Faust app ---------------------------------------------


def serve(rt_setup: Any, tmp_path: Path) -> dict[str, tuple[int, dict[str, Any]]]:
    """GET every health path of a freshly built worker app after ``rt_setup(runtime)``."""
    from aiohttp.test_utils import TestClient, TestServer

    from stream_drift.app.app import create_app

    settings = Settings().override(
        {"kafka.bootstrap_servers": "127.0.0.1:1", "worker.data_dir": str(tmp_path)}
    )

    async def run() -> dict[str, tuple[int, dict[str, Any]]]:
        app = create_app(settings)
        rt_setup(app.runtime)
        app.web.init_server()
        out = {}
        async with TestClient(TestServer(cast(Any, app.web).web_app)) as client:
            for path in ("/health", "/health/live", "/health/ready"):
                response = await client.get(path)
                out[path] = (response.status, json.loads(await response.text()))
        return out

    return asyncio.run(asyncio.wait_for(run(), timeout=60))


def test_views_of_a_fresh_app(tmp_path: Path) -> None:
    got = serve(lambda rt: None, tmp_path)
    assert got["/health"] == (200, {"references": 0, "references_ready": False, "status": "ok"})
    assert got["/health/live"] == (200, {"status": "ok"})
    status, body = got["/health/ready"]
    assert status == 503 and body["status"] == "not_ready"
    assert body["problems"][0] == "references not loaded yet"


def test_views_of_a_ready_app(tmp_path: Path) -> None:
    def setup(rt: Runtime) -> None:
        rt.references_ready.set()
        rt.health = replace(
            rt.health, ingest_partitions=[0], stage2_partitions=[0], last_commit_ok=True
        )

    got = serve(setup, tmp_path)
    assert got["/health"][0] == 200 and got["/health"][1]["status"] == "ok"
    assert got["/health/live"] == (200, {"status": "ok"})
    assert got["/health/ready"] == (200, {"status": "ready"})


def test_views_when_degraded_and_when_failing(tmp_path: Path) -> None:
    import time

    def degraded(rt: Runtime) -> None:
        rt.references_ready.set()
        rt.health = replace(rt.health, ingest_partitions=[0], stage2_partitions=[0])
        rt.health.ingest_loop_at = time.time() - INGEST_LOOP_STUCK_SECONDS - 30

    got = serve(degraded, tmp_path)
    assert got["/health"][0] == 200 and got["/health"][1]["status"] == "degraded"
    assert got["/health/live"][0] == 503
    assert got["/health/ready"][0] == 503

    def failing(rt: Runtime) -> None:
        rt.health = replace(rt.health, ingest="crashed")

    got = serve(failing, tmp_path)
    assert got["/health"][0] == 503 and got["/health"][1]["problems"] == ["ingest loop crashed"]
    assert got["/health/live"] == (503, {"status": "failing", "problems": ["ingest loop crashed"]})


# --- a real worker ---------------------------------------------------------------------------

SECRET = "SECRET-VALUE-123"


@pytest.fixture
def worker(kafka_broker: EmbeddedBroker, tmp_path: Path) -> Iterator[WorkerProcess]:
    app_id = f"sd-health-{uuid.uuid4().hex[:8]}"
    roles = ("events", "labels", "partials", "alerts", "results", "references", "deadletter")
    settings = Settings().override(
        {
            "app_id": app_id,
            "kafka": {
                "bootstrap_servers": kafka_broker.bootstrap_servers,
                "session_timeout_seconds": 6.0,
                "heartbeat_interval_seconds": 1.0,
                "rebalance_timeout_seconds": 6.0,
            },
            "topics": {role: f"{app_id}.{role}" for role in roles},
            "web": {"port": find_free_port()},
            "worker": {"data_dir": str(tmp_path / "data")},
        }
    )
    profile = build_reference(
        {"amount": [float(i) for i in range(200)], "country": ["DE", "FR"] * 100},
        model="health-model",
    )
    asyncio.run(
        asyncio.wait_for(
            publish_reference(kafka_broker.bootstrap_servers, settings.topics.references, profile),
            timeout=60,
        )
    )
    w = WorkerProcess(settings, tmp_path, name="health-worker")
    try:
        yield w.start()
    finally:
        w.stop()


def _poll(worker: WorkerProcess, condition: Any, timeout: float, what: str) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not worker.is_running():
            pytest.fail(f"worker exited while waiting for {what}:\n{worker.log_tail(80)}")
        try:
            value = condition()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}:\n{worker.log_tail(80)}")


def _accepted(worker: WorkerProcess, model: str) -> float:
    prefix = f'stream_drift_events_total{{model="{model}",outcome="accepted"}} '
    for line in worker.metrics_text().splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


@pytest.mark.kafka
@pytest.mark.timeout(180)
def test_a_real_worker_turns_ready_and_never_shows_feature_values(
    worker: WorkerProcess, kafka_broker: EmbeddedBroker
) -> None:
    def ready() -> tuple[int, bytes] | None:
        status, body = worker.get("/health/ready")
        return (status, body) if status == 200 else None

    _, body = _poll(worker, ready, 120, "/health/ready to answer 200")
    assert json.loads(body) == {"status": "ready"}
    assert worker.get("/health/live")[0] == 200
    assert worker.health()["status"] == "ok", worker.log_tail(80)

    # Events carrying a distinctive value as a category, as a (bad) number, as an event id
    # and as a nested value; some valid, some dead-lettered.
    good = [
        {
            "model": "health-model",
            "event_id": f"{SECRET}-{i}",
            "features": {"amount": float(i), "country": SECRET},
        }
        for i in range(50)
    ]
    bad = [
        {"model": "health-model", "features": {"amount": SECRET, "country": "DE"}},
        {"model": "health-model", "features": {"amount": {"v": SECRET}}},
        {"model": SECRET, "features": {"country": SECRET}},
        SECRET,
    ]
    produce(kafka_broker.bootstrap_servers, worker.settings.topics.events, [*good, *bad])
    _poll(worker, lambda: _accepted(worker, "health-model") >= len(good), 60, "accepted events")

    # A few flush intervals, so every figure about these events has been exported.
    _poll(
        worker,
        lambda: worker.health().get("records_consumed", 0) >= len(good) + len(bad),
        60,
        "every record consumed",
    )
    for path in ("/metrics", "/health", "/health/live", "/health/ready"):
        status, text = worker.get(path)
        assert status == 200, (path, text, worker.log_tail(80))
        assert SECRET.encode() not in text, (path, text[:2000])
    assert "SECRET" not in worker.metrics_text()
