"""Fetch order for stage 1's aiokafka consumer: the partition served longest ago asks first.

A broker fills a fetch answer partition by partition, in the order of the request, until its
byte budget is spent. aiokafka shuffles that order at random. While a backlog drains, the
first partition of the order then takes most of the answer: a partition with a few live
records gets nothing until luck puts it first. On the embedded broker, answers held one
backlog partition in most fetches, and the live partition's records waited up to 1.1–1.8 s
(``bench.resources``: step close → alert p99 above 1 s). The Java client rotates the order
(the partitions of the last answer go last); aiokafka does not, so this module does.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka.structs import TopicPartition

log = logging.getLogger(__name__)


class LeastServedFirst:
    """Orders the partitions of each fetch request by when they last handed out records.

    The oldest first, and those never served before all others. It reorders the request
    aiokafka's fetcher has just built; what is fetched, and from which offset, is unchanged.

    Examples
    --------
    >>> order = LeastServedFirst(clock=iter([1.0, 2.0]).__next__)
    >>> order.served([TopicPartition("ev", 0)])
    >>> order.served([TopicPartition("ev", 2)])
    >>> partitions = [(0, 10, 1024), (1, 5, 1024), (2, 7, 1024)]  # (partition, offset, bytes)
    >>> order.sort("ev", partitions)
    >>> [p[0] for p in partitions]
    [1, 0, 2]
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._served: dict[TopicPartition, float] = {}

    def served(self, tps: Iterable[TopicPartition]) -> None:
        """Note that ``tps`` handed out records now."""
        now = self._clock()
        for tp in tps:
            self._served[tp] = now

    def sort(self, topic: str, partitions: list[tuple[int, int, int]]) -> None:
        """Sort one topic's ``(partition, offset, max_bytes)`` entries in place."""
        served = self._served
        partitions.sort(key=lambda p: served.get(TopicPartition(topic, p[0]), -math.inf))

    def install(self, consumer: Any) -> bool:
        """Reorder every fetch request ``consumer`` builds from now on; ``False`` (and a
        warning) when its fetcher does not have the method this relies on.

        aiokafka has no public hook for the order: this wraps its fetcher's
        ``_get_actions_per_node``, whose first result is the list of ``(node, request)``
        to send. ``tests/test_fetch_order.py`` checks that it still is.
        """
        fetcher: Any = getattr(consumer, "_fetcher", None)
        build = getattr(fetcher, "_get_actions_per_node", None)
        if build is None:
            log.warning("aiokafka's fetcher changed: stage 1 keeps its random fetch order")
            return False

        def ordered(assignment: Any) -> Any:
            actions = build(assignment)
            for _node, request in actions[0]:
                for topic, partitions in request.topics:
                    self.sort(topic, partitions)
            return actions

        fetcher._get_actions_per_node = ordered
        return True
