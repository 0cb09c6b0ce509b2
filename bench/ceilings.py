"""Ceilings for stage 1, written independently of the product: bare fetch and a lean loop.

Nothing here imports ``stream_drift``: the point of a ceiling is that it does not share code
(or mistakes) with what it bounds. Two readers of a topic, each assigned every partition from
the beginning, with no consumer group and no commits:

- **aiokafka**: ``getmany(max_records=10000)``, as the worker's stage-1 consumer fetches;
- **librdkafka** (``confluent_kafka.Consumer``): ``consume(10000)`` with
  ``fetch.queue.backoff.ms=10`` (its 1 s default stalls a consumer that drains faster than
  the broker refills its queue, KAFKA-LOCAL.md).

Each reader hands every fetched batch (values and their partitions) to a ``work`` callable:
:func:`count_only` for the bare fetch, or :meth:`LeanLoop.add` for the lean columnar loop — one
``msgspec.json.decode`` per batch (the values joined into one JSON array) into a
``msgspec.Struct`` typed from the reference's feature names, one numpy array per series,
``np.searchsorted`` on the reference's fine bin edges and ``np.bincount`` per series, summed
per (source partition, step). The lean loop assumes valid events (the benchmark produces
nothing else): it is the common-case cost, not a validator.

A rate is the events read divided by the time from the first non-empty batch to the end of
the work on the last one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

Work = Callable[[list[bytes], npt.NDArray[np.int64]], None]
"""What a reader calls with each fetched batch: the values and their source partitions."""

MAX_RECORDS = 10_000
"""Records per fetch call, as the worker's stage-1 consumer asks for."""


def count_only(values: list[bytes], partitions: npt.NDArray[np.int64]) -> None:
    """The bare fetch: the reader has already counted the records; nothing else to do."""


@dataclass
class LeanLoop:
    """Decode → columns → bins for one model's numeric series, per (partition, step).

    Parameters
    ----------
    features
        Feature names, as the events' ``features`` object holds them (all numeric).
    edges
        Fine bin edges of every series (the features and ``prediction``): value ``x`` falls in
        bin ``searchsorted(edges, x, side="right")``, so a series has ``len(edges) + 1`` bins.
    step_seconds
        Events are counted per step ``floor(ts / step_seconds)``.

    Examples
    --------
    >>> loop = LeanLoop(["a"], {"a": np.array([0.0]), "prediction": np.array([0.5])}, 60.0)
    >>> ev = b'{"model":"m","model_version":"1","ts":61.0,"features":{"a":%s},"prediction":0.9}'
    >>> loop.add([ev % b"-1", ev % b"2", ev % b"0"], np.array([0, 0, 1]))
    >>> loop.events, loop.totals()["a"].tolist(), loop.totals()["prediction"].tolist()
    (3, [1, 2], [0, 3])
    >>> sorted(loop.counts["a"]), loop.counts["a"][(0, 1)].tolist()
    ([(0, 1), (1, 1)], [1, 1])
    """

    features: Sequence[str]
    edges: Mapping[str, npt.NDArray[np.float64]]
    step_seconds: float
    events: int = 0
    counts: dict[str, dict[tuple[int, int], npt.NDArray[np.int64]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.series = [*self.features, "prediction"]
        missing = set(self.series) - set(self.edges)
        if missing:
            raise ValueError(f"no bin edges for {sorted(missing)}")
        feature_struct = msgspec.defstruct(
            "LeanFeatures", [(name, float) for name in self.features], gc=False
        )
        event_struct = msgspec.defstruct(
            "LeanEvent",
            [
                ("model", str),
                ("model_version", str),
                ("ts", float),
                ("features", feature_struct),
                ("prediction", float),
            ],
            gc=False,
        )
        batch_type: Any = list[event_struct]  # type: ignore[valid-type]  # built at run time
        self._decoder = msgspec.json.Decoder(batch_type)
        self.counts = {name: {} for name in self.series}

    def add(self, values: list[bytes], partitions: npt.NDArray[np.int64]) -> None:
        """Bin one fetched batch: one decode call, then numpy per series."""
        events = self._decoder.decode(b"[" + b",".join(values) + b"]")
        n = len(events)
        ts = np.fromiter((e.ts for e in events), np.float64, n)
        steps = np.floor(ts / self.step_seconds).astype(np.int64)
        # One group per (source partition, step); a batch usually holds a handful.
        keys, group = np.unique(np.stack([partitions, steps]), axis=1, return_inverse=True)
        group = group.reshape(-1)
        n_groups = keys.shape[1]
        feats = [e.features for e in events]
        for name in self.series:
            if name == "prediction":
                column = np.fromiter((e.prediction for e in events), np.float64, n)
            else:
                column = np.fromiter(map(_getter(name), feats), np.float64, n)
            edges = self.edges[name]
            n_bins = len(edges) + 1
            bins = np.searchsorted(edges, column, side="right")
            per_group = np.bincount(group * n_bins + bins, minlength=n_groups * n_bins)
            per_group = per_group.reshape(n_groups, n_bins)
            acc = self.counts[name]
            for g in range(n_groups):
                key = (int(keys[0, g]), int(keys[1, g]))
                if key in acc:
                    acc[key] += per_group[g]
                else:
                    acc[key] = per_group[g].copy()
        self.events += n

    def totals(self) -> dict[str, npt.NDArray[np.int64]]:
        """Counts per series summed over every (partition, step)."""
        return {
            name: np.sum(list(self.counts[name].values()), axis=0, dtype=np.int64)
            for name in self.series
        }


def _getter(name: str) -> Callable[[Any], float]:
    from operator import attrgetter

    return attrgetter(name)


@dataclass(frozen=True)
class ReadResult:
    """What one pass over the topic did: records read and the time they took."""

    records: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        return self.records / max(self.seconds, 1e-9)


async def _read_aiokafka(
    bootstrap: str, topic: str, partitions: int, n: int, work: Work, timeout: float
) -> ReadResult:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,  # as the worker's stage-1 consumer
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        start: float | None = None
        deadline = time.monotonic() + timeout
        while seen < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"aiokafka read {seen:,} of {n:,} records")
            batch = await consumer.getmany(timeout_ms=500, max_records=MAX_RECORDS)
            if not batch:
                continue
            if start is None:
                start = time.perf_counter()
            values: list[bytes] = []
            counts: list[int] = []
            parts: list[int] = []
            for tp, msgs in batch.items():
                values.extend(m.value for m in msgs if m.value is not None)
                counts.append(len(msgs))
                parts.append(tp.partition)
            work(values, np.repeat(np.asarray(parts, np.int64), counts))
            seen += len(values)
        assert start is not None
        return ReadResult(seen, time.perf_counter() - start)
    finally:
        await consumer.stop()


def read_aiokafka(
    bootstrap: str, topic: str, partitions: int, n: int, work: Work = count_only
) -> ReadResult:
    """Read ``n`` records of ``topic`` with aiokafka, handing each batch to ``work``."""
    return asyncio.run(_read_aiokafka(bootstrap, topic, partitions, n, work, timeout=300))


def read_librdkafka(
    bootstrap: str, topic: str, partitions: int, n: int, work: Work = count_only
) -> ReadResult:
    """Read ``n`` records of ``topic`` with librdkafka, handing each batch to ``work``."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-ceiling-{time.time_ns()}",  # required; assign() never joins it
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "fetch.queue.backoff.ms": 10,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        seen = 0
        start: float | None = None
        deadline = time.monotonic() + 300
        while seen < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"librdkafka read {seen:,} of {n:,} records")
            msgs = consumer.consume(MAX_RECORDS, timeout=0.5)
            if not msgs:
                continue
            if start is None:
                start = time.perf_counter()
            values: list[bytes] = []
            parts: list[int] = []
            for m in msgs:
                if m.error() is not None:
                    raise RuntimeError(f"librdkafka: {m.error()}")
                value = m.value()
                if value is not None:
                    values.append(value)
                    parts.append(m.partition() or 0)
            work(values, np.asarray(parts, np.int64))
            seen += len(values)
        assert start is not None
        return ReadResult(seen, time.perf_counter() - start)
    finally:
        consumer.close()


READERS: dict[str, Callable[[str, str, int, int, Work], ReadResult]] = {
    "aiokafka": read_aiokafka,
    "librdkafka": read_librdkafka,
}
"""The clients a ceiling is measured with, by name."""
