"""Every worker follows ``drift.references`` from the beginning: the latest record per
model/version wins (records are keyed ``model/version/reference-id``; see
:func:`stream_drift.app.kafka_io.publish_reference`)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import mode

from stream_drift.app.kafka_io import open_topic, read_records
from stream_drift.app.runtime import Runtime
from stream_drift.app.topics import Topics
from stream_drift.pipeline.model_quality import calibrate_domain
from stream_drift.pipeline.reference import ReferenceError, ReferenceProfile

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.3
_IDLE_SECONDS = 0.5  # more than one empty poll, less than two


class ReferenceFollower(mode.Service):
    """Reads the compacted references topic without a consumer group (every worker reads it
    all) and installs each profile in the registry; ``references_ready`` is set once the
    topic has been read to its end."""

    def __init__(self, runtime: Runtime, topics: Topics, **kwargs: Any) -> None:
        self.runtime = runtime
        self.topics = topics
        self.consumer: AIOKafkaConsumer | None = None
        self._stopping = False
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        s = self.runtime.settings
        self.consumer = await open_topic(
            ",".join(s.kafka.servers),
            s.topics.references,
            from_beginning=True,
            security=s.kafka.client_kwargs(),
            connect_timeout=s.kafka.connect_timeout_seconds,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=1000,
        )

    async def on_stop(self) -> None:
        self._stopping = True
        if self.consumer is not None:
            await self.consumer.stop()

    @mode.Service.task
    async def _run(self) -> None:
        assert self.consumer is not None
        while not self._stopping and not self.should_stop:
            try:
                # Tansu's end offsets are unreliable (KAFKA-LOCAL.md §2): "read to the end"
                # means two empty polls in a row, i.e. idle for over ``_IDLE_SECONDS``.
                records = read_records(
                    self.consumer, idle_timeout=_IDLE_SECONDS, poll_seconds=_POLL_SECONDS
                )
                async for record in records:
                    self.install(record.value)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    return
                log.warning("reading references failed: %r", exc)
                await asyncio.sleep(1)
                continue
            if not self.runtime.references_ready.is_set():
                log.info("references loaded: %d", len(self.runtime.registry))
                self.runtime.references_ready.set()

    def install(self, value: bytes | None) -> None:
        if not value:
            return
        try:
            profile = ReferenceProfile.from_dict(json.loads(value))
        except (ValueError, ReferenceError) as exc:
            log.error("ignoring an invalid reference on %s: %s", self.topics.references, exc)
            return
        if self.runtime.registry.add(profile):
            log.info("reference %s installed for %s", profile.id, profile.key)
            if profile.sample is not None and self.runtime.settings.multivariate.enabled:
                # Seconds of CPU: in a thread, so stage 2's loop keeps evaluating meanwhile.
                asyncio.get_running_loop().run_in_executor(None, self._calibrate, profile)

    def _calibrate(self, profile: ReferenceProfile) -> None:
        started = time.perf_counter()
        try:
            n = calibrate_domain(profile, self.runtime.settings.multivariate)
        except Exception:  # a failure here only costs the evaluator its own calibration
            log.exception("calibrating the domain classifier of %s failed", profile.key)
            return
        log.info(
            "domain classifier of %s calibrated: %d row-count buckets in %.1f s",
            profile.key,
            n,
            time.perf_counter() - started,
        )
