"""Messages on ``drift.partials``: stage 1's partial histograms, stage 2's ticks, and the
label join's pairs (:class:`~stream_drift.pipeline.labels.LabelOutcomes`, ``"kind":
"labels"``).

A *partial* carries, for one model version and one source partition, the histograms of every
series per event-time step accumulated since the last flush, the source partition's
watermark (largest event time seen on it) and how many events it counted. Histograms add, so
stage 2 merges partials from any number of workers exactly. A *tick* carries only the
processing time; the evaluator uses it to close windows of idle models.

Both are tagged records (``"kind": "partial"`` or ``"tick"``) encoded as JSON by msgspec. The
JSON is the one earlier versions wrote, field for field, and a field added since has a
default that says "unknown", so a worker reads what an earlier version left on the topic.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from stream_drift.pipeline.counts import HistogramCounts, StepCounts
from stream_drift.pipeline.labels import LabelOutcomes
from stream_drift.stats.histogram import Histogram

__all__ = ["Partial", "Tick", "decode_message"]


class Partial(msgspec.Struct, tag_field="kind", tag="partial"):
    """Partial histograms of one model version from one source partition.

    Examples
    --------
    >>> from stream_drift.stats.binning import NumericBinning
    >>> p = Partial("fraud", "7", "sha256:ab", "drift.events/0", watermark=130.0,
    ...             events={120.0: 3})
    >>> p.add_step(120.0, "x", Histogram(NumericBinning([0.0])).add([1.0, 2.0, None]))
    >>> wire = msgspec.json.decode(p.to_bytes())
    >>> wire["kind"], wire["steps"], wire["events"]
    ('partial', {'120.0': {'x': {'n_bins': 2, 'missing': 1, 'bins': [1], 'counts': [2]}}},
     {'120.0': 3})
    >>> decode_message(p.to_bytes()) == p
    True
    """

    model: str
    model_version: str
    reference_id: str
    source: str
    watermark: float
    steps: StepCounts = msgspec.field(default_factory=dict)
    """Step start -> series -> histogram counts, of the steps that changed (see below)."""
    events: dict[float, int] = msgspec.field(default_factory=dict)
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
    sample: dict[float, list[list[int]]] | msgspec.UnsetType = msgspec.UNSET
    """Step start -> sampled rows ``[offset, code, code, ...]`` of the steps that changed: the
    chunk's bottom-k rows per step by :func:`~stream_drift.pipeline.domain.sample_priority`,
    their codes in the layout of :func:`~stream_drift.pipeline.domain.sample_series`
    (multivariate drift). Unset (not written, so a partial without a sample has the bytes of
    earlier releases) when stage 1 samples nothing; an older partial reads as unset."""

    def to_bytes(self) -> bytes:
        return _ENCODER.encode(self)

    @property
    def n_events(self) -> int:
        return sum(self.events.values())

    def add_step(self, step: float, series: str, histogram: Histogram) -> None:
        self.steps.setdefault(step, {})[series] = HistogramCounts.of(histogram)


class Tick(msgspec.Struct, tag_field="kind", tag="tick"):
    """Processing-time heartbeat for one partials partition.

    Examples
    --------
    >>> Tick(1764213000.25).to_bytes()
    b'{"kind":"tick","now":1764213000.25}'
    """

    now: float

    def to_bytes(self) -> bytes:
        return _ENCODER.encode(self)


_ENCODER: Final = msgspec.json.Encoder()
_DECODER: Final = msgspec.json.Decoder(Partial | Tick | LabelOutcomes)


def decode_message(data: bytes | str | dict[str, Any]) -> Partial | Tick | LabelOutcomes:
    """Parse a message of ``drift.partials`` (its bytes, text, or JSON object).

    Raises
    ------
    ValueError
        When it is neither a partial, a tick nor labelled pairs, or a field has the wrong
        type.
    msgspec.DecodeError
        When it is not JSON (a subclass of ``ValueError``).

    Examples
    --------
    >>> decode_message(b'{"kind": "tick", "now": 5}')
    Tick(now=5.0)
    >>> decode_message({"kind": "other"})
    Traceback (most recent call last):
    ...
    ValueError: not a partials message: Invalid value 'other' - at `$.kind`
    """
    try:
        if isinstance(data, dict):
            message: Partial | Tick | LabelOutcomes = msgspec.convert(
                data, Partial | Tick | LabelOutcomes, str_keys=True
            )
            return message
        decoded: Partial | Tick | LabelOutcomes = _DECODER.decode(data)
        return decoded
    except msgspec.ValidationError as exc:
        raise ValueError(f"not a partials message: {exc}") from None
