"""Faust's Kafka transport, with stage 2's consumer answering within half a second, and
within a tenth while partials flow.

Faust creates its consumer with ``fetch_max_wait_ms=1500`` and no setting to change it. The
embedded broker (Tansu) does not answer a waiting fetch as soon as a record arrives: with a
1.5-s wait a record reached an aiokafka consumer after a median 0.36 s (max 0.59 s), with
0.5 s after 0.04 s (max 0.10 s), measured on this machine. That wait sat between every
partial and its evaluation, in the step-close → alert latency (``bench.resources``). A real
Kafka broker answers on arrival either way; a shorter wait only costs an idle worker a few
more fetches per second, so the wait is 100 ms only while records flow (:class:`FetchPacer`).
"""

from __future__ import annotations

from typing import Any, Final

from faust.transport.drivers import aiokafka as driver

from stream_drift.app.fetch_pace import FetchPacer
from stream_drift.pipeline.partials import is_tick

__all__ = ["FETCH_MAX_WAIT_MS", "Transport"]

FETCH_MAX_WAIT_MS: Final = 500
"""Longest time the broker may hold a fetch of stage 2's idle consumer (as stage 1's)."""
BUSY_FETCH_WAIT_MS: Final = 100
"""The same while records flow, and for a second after the last (as stage 1's)."""
IDLE_AFTER_SECONDS: Final = 1.0


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its fetcher; Faust passes 1500.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        self._pacer = FetchPacer(BUSY_FETCH_WAIT_MS, FETCH_MAX_WAIT_MS, IDLE_AFTER_SECONDS)
        return consumer

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: Any,
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        records = await super()._fetch_records(
            consumer, active_partitions, timeout=timeout, max_records=max_records
        )
        pacer: FetchPacer | None = getattr(self, "_pacer", None)
        if pacer is not None:
            # The worker's own ticks (one per partition and second) do not make it busy.
            flowing = any(not is_tick(r.value) for rs in records.values() for r in rs)
            pacer.note(flowing, consumer._fetcher)
        return records


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    """``kafka://`` as Faust's aiokafka driver, but for the consumer's fetch wait."""

    Consumer = _Consumer
