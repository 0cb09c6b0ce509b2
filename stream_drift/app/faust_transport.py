"""Faust's Kafka transport, with stage 2's consumer answering within half a second.

Faust creates its consumer with ``fetch_max_wait_ms=1500`` and no setting to change it. The
embedded broker (Tansu) does not answer a waiting fetch as soon as a record arrives: with a
1.5-s wait a record reached an aiokafka consumer after a median 0.36 s (max 0.59 s), with
0.5 s after 0.04 s (max 0.10 s), measured on this machine. That wait sat between every
partial and its evaluation, in the step-close → alert latency (``bench.resources``). A real
Kafka broker answers on arrival either way; a shorter wait only costs an idle worker a few
more fetches per second.

And with stage 2's offsets committed only once the table writes before them left Faust's
producer buffer (:func:`table_writes_sent`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

from faust.transport.drivers import aiokafka as driver

__all__ = ["FETCH_MAX_WAIT_MS", "Transport", "table_writes_sent"]

log = logging.getLogger(__name__)

FETCH_MAX_WAIT_MS: Final = 500
"""Longest time the broker may hold a fetch of stage 2's consumer (the stage-1 consumer's)."""
TABLE_WRITES_WAIT_SECONDS: Final = 5.0
"""Longest a stage-2 commit waits for the table writes in Faust's producer buffer; then it is
skipped (the next one tries again)."""


async def table_writes_sent(producer: Any, timeout: float) -> bool:
    """Wait until Faust's producer buffer handed every message put in it so far to the
    Kafka client (table writes are put there); ``False`` if some are left after ``timeout``.

    Faust commits a consumer's offsets after ``producer.flush()``, whose buffer flush gives up
    after 0.1 s without a message sent, and then flushes only what the client holds. A
    commit could then pass the offset of a partial whose table write was still in the buffer;
    a worker killed right after lost that write, and its successor resumed past the partial
    with the state from before it. Stage 1 commits once a partial is acknowledged, so the
    events of a chunk completed there were then counted by no one (``kill -9`` tests).
    """
    # The messages put so far, not "until the buffer is empty": it may never be, while
    # partials keep coming.
    target = getattr(producer, "put_total", 0)
    deadline = time.monotonic() + timeout
    while getattr(producer, "sent_total", 0) < target and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return bool(getattr(producer, "sent_total", 0) >= target)


class _Producer(driver.Producer):
    """Faust's producer, counting the messages put in its buffer and those the buffer handed
    to the client (it does so one at a time, in order)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.put_total = 0
        self.sent_total = 0
        buffer: Any = self.buffer  # a ProducerBuffer: _send_pending is not in its protocol
        put, send = buffer.put, buffer._send_pending

        def counted_put(fut: Any) -> None:
            put(fut)
            self.put_total += 1

        async def counted_send(fut: Any) -> None:
            try:
                await send(fut)
            finally:  # handed over, or failed: out of the buffer either way
                self.sent_total += 1

        buffer.put, buffer._send_pending = counted_put, counted_send

    @property
    def unsent(self) -> int:
        """Messages in the buffer, or on their way from it to the client."""
        return self.put_total - self.sent_total


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its fetcher; Faust passes 1500.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _commit_offsets(self, offsets: Any, start_new_transaction: bool = True) -> bool:
        if not await table_writes_sent(self.app.producer, TABLE_WRITES_WAIT_SECONDS):
            log.warning(
                "stage 2: table writes still in the producer buffer after %g s: offsets not "
                "committed (the next commit tries again)",
                TABLE_WRITES_WAIT_SECONDS,
            )
            return False
        done: bool = await super()._commit_offsets(offsets, start_new_transaction)
        return done


class Transport(driver.Transport):
    """``kafka://`` as Faust's aiokafka driver, but for the consumer's fetch wait."""

    Consumer = _Consumer
    Producer = _Producer
