"""HTTP endpoints on the worker's web port: ``/metrics`` and ``/health``."""

from __future__ import annotations

import time
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream_drift.app.runtime import Runtime

RECOVERY_STUCK_SECONDS = 120.0
"""A table recovery running longer than this is reported as a failure by ``/health``."""


def health_report(runtime: Runtime, now: float) -> dict[str, Any]:
    """The ``/health`` body; ``status`` is ``failing`` when the last offset commit failed, the
    ingest loop crashed, or a table recovery has run for over ``RECOVERY_STUCK_SECONDS``."""
    body: dict[str, Any] = {
        "references": len(runtime.registry),
        "references_ready": runtime.references_ready.is_set(),
        **runtime.health,
    }
    problems = []
    if body.get("last_commit_ok", True) is False:
        problems.append(f"offset commit failing: {body.get('last_commit_error')}")
    if body.get("ingest") == "crashed":
        problems.append("ingest loop crashed")
    since = body.get("recovering_since")
    if isinstance(since, float) and now - since > RECOVERY_STUCK_SECONDS:
        problems.append(f"table recovery running for {now - since:.0f} s")
    body["status"] = "failing" if problems else "ok"
    if problems:
        body["problems"] = problems
    return body


def register(app: faust.App, runtime: Runtime) -> None:
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
        return self.json(body, status=200 if body["status"] == "ok" else 503)
