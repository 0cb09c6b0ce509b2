"""Every worker follows ``drift.references`` from the beginning: the latest record per
model/version wins (records are keyed ``model/version/reference-id``; see
:func:`stream_drift.app.kafka_io.publish_reference`)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import mode
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from stream_drift.app.kafka_io import partitions_of
from stream_drift.app.runtime import Runtime
from stream_drift.app.topics import Topics
from stream_drift.pipeline.reference import ReferenceError, ReferenceProfile

log = logging.getLogger(__name__)


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
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=",".join(s.kafka.servers),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=200,
            **s.kafka.client_kwargs(),
        )
        await self.consumer.start()
        # Ask the broker, not the config: a topic created elsewhere may differ.
        found = await partitions_of(self.consumer, s.topics.references)
        partitions = [TopicPartition(s.topics.references, p) for p in found]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_beginning(*partitions)

    async def on_stop(self) -> None:
        self._stopping = True
        if self.consumer is not None:
            await self.consumer.stop()

    @mode.Service.task
    async def _run(self) -> None:
        assert self.consumer is not None
        idle_polls = 0
        while not self._stopping and not self.should_stop:
            try:
                batch = await self.consumer.getmany(timeout_ms=300)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reading references failed: %r", exc)
                await asyncio.sleep(1)
                continue
            for msgs in batch.values():
                for m in msgs:
                    self.install(m.value)
            idle_polls = 0 if batch else idle_polls + 1
            # Tansu's end offsets are unreliable (KAFKA-LOCAL.md §2): "read to the end" means
            # two empty polls in a row.
            if idle_polls >= 2 and not self.runtime.references_ready.is_set():
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
