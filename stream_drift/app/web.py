"""HTTP endpoints on the worker's web port: ``/metrics`` and ``/health``."""

from __future__ import annotations

from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream_drift.app.runtime import Runtime


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
        body = {
            "references": len(runtime.registry),
            "references_ready": runtime.references_ready.is_set(),
            **runtime.health,
        }
        ok = body.get("last_commit_ok", True) is not False and body.get("ingest") != "crashed"
        body["status"] = "ok" if ok else "failing"
        return self.json(body, status=200 if ok else 503)
