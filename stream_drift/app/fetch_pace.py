"""The broker's fetch wait of an aiokafka consumer: short while records flow, long when idle.

aiokafka keeps one fetch in flight per broker, and the embedded broker (Tansu) answers a
waiting fetch only when it looks again, not when a record arrives: it looks at the start and
then after half the wait (or all of it, under 250 ms). A record arriving meanwhile waits for
that look, so the wait is part of every hop's latency while records flow; an idle consumer
only saves wake-ups with a long one (``bench.resources``: its idle CPU).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any


class FetchPacer:
    """Sets a fetcher's wait to ``busy_ms`` when a poll returned records, back to ``idle_ms``
    after ``idle_after`` seconds without any.

    Parameters
    ----------
    busy_ms, idle_ms
        The broker's longest hold of a fetch while records flow, and once idle.
    idle_after
        Seconds without records after which the consumer counts as idle.
    clock
        Monotonic seconds.

    Examples
    --------
    >>> class Fetcher:
    ...     _fetch_max_wait_ms = 500
    >>> fetcher, now = Fetcher(), [0.0]
    >>> pacer = FetchPacer(100, 500, 1.0, clock=lambda: now[0])
    >>> pacer.note(True, fetcher), fetcher._fetch_max_wait_ms
    (100, 100)
    >>> now[0] = 0.5; pacer.note(False, fetcher)
    100
    >>> now[0] = 1.5; pacer.note(False, fetcher), fetcher._fetch_max_wait_ms
    (500, 500)
    """

    def __init__(
        self,
        busy_ms: int,
        idle_ms: int,
        idle_after: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.busy_ms = busy_ms
        self.idle_ms = idle_ms
        self.idle_after = idle_after
        self.wait_ms = idle_ms
        self._clock = clock
        self._last_records = -math.inf

    @property
    def busy(self) -> bool:
        """Whether the last :meth:`note` found records flowing."""
        return self.wait_ms == self.busy_ms

    def note(self, records: bool, fetcher: Any) -> int:
        """Note one poll's outcome and set ``fetcher``'s wait to match; returns the wait.

        aiokafka's ``Fetcher`` reads ``_fetch_max_wait_ms`` for every fetch request it builds
        (there is no public setter; ``tests/test_fetch_pace.py`` checks it still does). A
        fetcher without it is left alone.
        """
        now = self._clock()
        if records:
            self._last_records = now
        wait = self.busy_ms if now - self._last_records < self.idle_after else self.idle_ms
        if wait != self.wait_ms:
            self.wait_ms = wait
            if hasattr(fetcher, "_fetch_max_wait_ms"):
                fetcher._fetch_max_wait_ms = wait
        return wait
