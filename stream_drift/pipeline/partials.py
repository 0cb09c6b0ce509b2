"""Messages on ``drift.partials``: stage 1's partial histograms, and stage 2's ticks.

A *partial* carries, for one model version and one source partition, the histograms of every
series per event-time step accumulated since the last flush, the source partition's
watermark (largest event time seen on it) and how many events it counted. Histograms add, so
stage 2 merges partials from any number of workers exactly. A *tick* carries only the
processing time; the evaluator uses it to close windows of idle models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from stream_drift.stats.histogram import Histogram


@dataclass
class Partial:
    """Partial histograms of one model version from one source partition.

    Examples
    --------
    >>> p = Partial("fraud", "7", "sha256:ab", "drift.events/0", watermark=130.0,
    ...             steps={120.0: {"x": {"n_bins": 2, "missing": 0, "bins": [0], "counts": [3]}}},
    ...             events={120.0: 3})
    >>> decode_message(p.to_bytes()) == p
    True
    """

    model: str
    model_version: str
    reference_id: str
    source: str
    watermark: float
    steps: dict[float, dict[str, dict[str, Any]]] = field(default_factory=dict)
    events: dict[float, int] = field(default_factory=dict)
    offset_end: int = -1
    """Offset after the last source record this partial covers."""
    offset_start: int = -1
    """First source offset this partial covers: ``events`` counts *every* event of this model
    version in ``[offset_start, offset_end)`` of the source partition per step, and ``steps``
    holds the histograms of the steps that changed since the sender's previous partial of the
    range. Stage 1 cuts these ranges into fixed chunks of offsets and resends a chunk's
    partial, cumulative, until the chunk is complete; stage 2 applies only what it has not
    applied yet, so a replay after a crash is counted once. ``-1``: a partial of an older
    version (range unknown)."""
    source_partitions: int = 0
    """Partitions of the source topic (0: unknown); stage 2 waits for all of them."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "partial",
            "model": self.model,
            "model_version": self.model_version,
            "reference_id": self.reference_id,
            "source": self.source,
            "watermark": self.watermark,
            "steps": {repr(k): v for k, v in self.steps.items()},
            "events": {repr(k): v for k, v in self.events.items()},
            "offset_end": self.offset_end,
            "offset_start": self.offset_start,
            "source_partitions": self.source_partitions,
        }

    def to_bytes(self) -> bytes:
        return msgspec.json.encode(self.to_dict())

    @property
    def n_events(self) -> int:
        return sum(self.events.values())

    def add_step(self, step: float, series: str, histogram: Histogram) -> None:
        self.steps.setdefault(step, {})[series] = histogram.to_dict()


@dataclass
class Tick:
    """Processing-time heartbeat for one partials partition."""

    now: float

    def to_bytes(self) -> bytes:
        return msgspec.json.encode({"kind": "tick", "now": self.now})


def decode_message(data: bytes | str | dict[str, Any]) -> Partial | Tick:
    """Parse a message of ``drift.partials``.

    Raises
    ------
    ValueError
        When it is neither a partial nor a tick.
    """
    obj: Any = data if isinstance(data, dict) else msgspec.json.decode(data)
    kind = obj.get("kind") if isinstance(obj, dict) else None
    if kind == "tick":
        return Tick(float(obj["now"]))
    if kind != "partial":
        raise ValueError(f"not a partials message: kind={kind!r}")
    return Partial(
        model=obj["model"],
        model_version=obj["model_version"],
        reference_id=obj["reference_id"],
        source=obj["source"],
        watermark=float(obj["watermark"]),
        steps={float(k): v for k, v in obj["steps"].items()},
        events={float(k): int(v) for k, v in obj["events"].items()},
        offset_end=int(obj.get("offset_end", -1)),
        offset_start=int(obj.get("offset_start", -1)),
        source_partitions=int(obj.get("source_partitions", 0)),
    )
