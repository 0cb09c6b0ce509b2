"""HTTP endpoints on the worker's web port: ``/metrics``, ``/health``, ``/health/live`` and
``/health/ready``.

- ``/health`` is the summary: ``status`` is ``ok``, ``degraded`` (HTTP 200: stage 1 is
  falling behind, or its loop has not turned for :data:`INGEST_LOOP_STUCK_SECONDS`) or
  ``failing`` (HTTP 503: the last offset commit failed, a stage-2 commit has not finished for
  :data:`COMMIT_STUCK_SECONDS`, the broker lost offsets already read, the ingest loop or the
  label join loop crashed, or a table recovery has run for over
  :data:`RECOVERY_STUCK_SECONDS`), with the reasons in ``problems``.
- ``/health/live`` (liveness probe): 503 only when restarting the process is the cure — the
  ingest loop crashed or is stuck, the label join loop crashed, or a table recovery is
  stuck.
- ``/health/ready`` (readiness probe): 200 once the references are loaded, both consumer
  groups (stage 1 ``<app_id>-ingest`` and stage 2 ``<app_id>``) have been assigned their
  partitions and the last offset commit succeeded, and while the worker is live.

The bodies hold counts, partition numbers, timestamps and error texts, never an event's
feature values.
"""

from __future__ import annotations

import time
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream_drift.app.health import Health
from stream_drift.app.runtime import LAG_GROWING_SECONDS, Runtime

__all__ = [
    "COMMIT_STUCK_SECONDS",
    "INGEST_LOOP_STUCK_SECONDS",
    "LAG_GROWING_SECONDS",
    "RECOVERY_STUCK_SECONDS",
    "health_report",
    "liveness_report",
    "readiness_report",
    "register",
]

COMMIT_STUCK_SECONDS = 15.0
"""A stage-2 (Faust) offset commit still running after this long is a failure: aiokafka
retries some commit errors forever, e.g. after the broker lost its state."""

RECOVERY_STUCK_SECONDS = 120.0
"""A table recovery running longer than this is reported as a failure by ``/health``."""

INGEST_LOOP_STUCK_SECONDS = 60.0
"""The ingest loop not starting a new iteration for this long is *stuck*: ``/health`` is
``degraded`` and ``/health/live`` fails."""


def _seconds_since(at: float | None, now: float) -> float | None:
    return None if at is None else now - at


def _failures(health: Health, now: float) -> list[str]:
    """What makes ``/health`` fail (503), in the order reported."""
    problems = []
    if health.last_commit_ok is False:
        problems.append(f"offset commit failing: {health.last_commit_error}")
    if health.ingest == "crashed":
        problems.append("ingest loop crashed")
    if health.label_join == "crashed":
        problems.append(f"label join loop crashed: {health.label_join_error}")
    recovering = _seconds_since(health.recovering_since, now)
    if recovering is not None and recovering > RECOVERY_STUCK_SECONDS:
        problems.append(f"table recovery running for {recovering:.0f} s")
    committing = _seconds_since(health.stage2_commit_started, now)
    if committing is not None and committing > COMMIT_STUCK_SECONDS:
        problems.append(
            f"stage-2 offset commit not done after {committing:.0f} s "
            "(broker unreachable, or it lost its state)"
        )
    if health.broker_lost_log:
        problems.append(f"broker lost its log: {health.broker_lost_log}; restart the worker")
    return problems


def _loop_stuck(health: Health, now: float) -> str | None:
    idle = _seconds_since(health.ingest_loop_at, now)
    if health.ingest == "crashed" or idle is None or idle <= INGEST_LOOP_STUCK_SECONDS:
        return None
    return f"ingest loop stuck: no iteration for {idle:.0f} s"


def _degradations(health: Health, now: float) -> list[str]:
    """What makes ``/health`` degraded (still 200)."""
    problems = []
    growing = _seconds_since(health.consumer_lag_growing_since, now)
    if growing is not None:
        problems.append(
            f"ingest falling behind: consumer lag {health.consumer_lag_records} records, "
            f"growing for {growing:.0f} s"
        )
    stuck = _loop_stuck(health, now)
    if stuck is not None:
        problems.append(stuck)
    return problems


def health_report(runtime: Runtime, now: float) -> dict[str, Any]:
    """The ``/health`` body.

    ``status`` is ``failing`` when the last offset commit failed, the ingest loop or the label
    join loop crashed, or a table recovery has run for over :data:`RECOVERY_STUCK_SECONDS`;
    otherwise ``degraded`` when stage 1 is falling behind (its consumer lag above zero and
    growing for :data:`LAG_GROWING_SECONDS`) or its loop is stuck
    (:data:`INGEST_LOOP_STUCK_SECONDS`); otherwise ``ok``. ``problems`` lists the reasons
    (failures first) when there are any.

    Parameters
    ----------
    runtime
        The worker's runtime (its :class:`~stream_drift.app.health.Health` and references).
    now
        Epoch seconds.

    Returns
    -------
    dict
        ``references``, ``references_ready``, every known ``runtime.health`` field,
        ``status`` and ``problems``.
    """
    body: dict[str, Any] = {
        "references": len(runtime.registry),
        "references_ready": runtime.references_ready.is_set(),
        **runtime.health.to_dict(),
    }
    failures = _failures(runtime.health, now)
    problems = failures + _degradations(runtime.health, now)
    body["status"] = "failing" if failures else "degraded" if problems else "ok"
    if problems:
        body["problems"] = problems
    return body


def liveness_report(runtime: Runtime, now: float) -> dict[str, Any]:
    """The ``/health/live`` body: ``status`` ``ok``, or ``failing`` with ``problems`` when the
    process should be restarted (ingest loop crashed or stuck, table recovery stuck).

    Examples
    --------
    >>> from stream_drift.config import Settings
    >>> rt = Runtime(Settings())
    >>> liveness_report(rt, now=0.0)
    {'status': 'ok'}
    >>> rt.health.ingest = "crashed"
    >>> liveness_report(rt, now=0.0)
    {'status': 'failing', 'problems': ['ingest loop crashed']}
    """
    health = runtime.health
    problems = [p for p in _failures(health, now) if not p.startswith("offset commit")]
    stuck = _loop_stuck(health, now)
    if stuck is not None:
        problems.append(stuck)
    return {"status": "failing", "problems": problems} if problems else {"status": "ok"}


def readiness_report(runtime: Runtime, now: float) -> dict[str, Any]:
    """The ``/health/ready`` body: ``status`` ``ready``, or ``not_ready`` with ``problems``.

    Ready means: references loaded, the stage-1 group (``ingest_partitions``) and the stage-2
    group (``stage2_partitions``) joined with their partitions assigned (an empty share counts:
    a worker beyond the partition count is a valid member), the last offset commit succeeded,
    and the worker live.

    Examples
    --------
    >>> from stream_drift.config import Settings
    >>> rt = Runtime(Settings())
    >>> readiness_report(rt, now=0.0)["problems"][0]
    'references not loaded yet'
    """
    health = runtime.health
    problems = []
    if not runtime.references_ready.is_set():
        problems.append("references not loaded yet")
    if health.ingest_partitions is None:
        problems.append("stage-1 consumer group not joined yet (no partitions assigned)")
    if health.stage2_partitions is None:
        problems.append("stage-2 consumer group not joined yet (no partitions assigned)")
    if health.last_commit_ok is False:
        problems.append(f"last offset commit failed: {health.last_commit_error}")
    problems += [p for p in _failures(health, now) if not p.startswith("offset commit failing")]
    live = liveness_report(runtime, now)
    problems += live.get("problems", [])
    return {"status": "not_ready", "problems": problems} if problems else {"status": "ready"}


def register(app: faust.App, runtime: Runtime) -> None:
    """Add ``/metrics``, ``/health``, ``/health/live`` and ``/health/ready`` to the app."""

    # Faust has no /metrics of its own unless its Prometheus sensor is installed (it is not).
    @app.page("/metrics")
    async def metrics(self: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type: pass the header instead.
        return self.bytes(
            generate_latest(runtime.prometheus), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    @app.page("/health")
    async def health(self: Any, request: Any) -> Any:
        body = health_report(runtime, time.time())
        return self.json(body, status=503 if body["status"] == "failing" else 200)

    @app.page("/health/live")
    async def live(self: Any, request: Any) -> Any:
        body = liveness_report(runtime, time.time())
        return self.json(body, status=200 if body["status"] == "ok" else 503)

    @app.page("/health/ready")
    async def ready(self: Any, request: Any) -> Any:
        body = readiness_report(runtime, time.time())
        return self.json(body, status=200 if body["status"] == "ready" else 503)
