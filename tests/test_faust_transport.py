"""Stage 2's consumer waits at most half a second for records (Faust's own default is 1.5 s,
which sat between every partial and its evaluation)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from stream_drift.app.faust_transport import FETCH_MAX_WAIT_MS, Transport
from stream_drift.config import Settings


def test_the_app_uses_the_transport_with_the_short_fetch_wait(tmp_path: Path) -> None:
    from stream_drift.app.app import create_app

    settings = Settings().override(
        {"kafka.bootstrap_servers": "127.0.0.1:1", "worker.data_dir": str(tmp_path)}
    )
    app = create_app(settings)
    assert isinstance(app.transport, Transport)

    async def build() -> object:  # aiokafka builds its client inside a running loop
        return app.consumer._thread._create_worker_consumer(app.transport)

    consumer: Any = asyncio.run(build())
    # aiokafka reads this attribute when it builds its fetcher (no public setter).
    assert consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 500
