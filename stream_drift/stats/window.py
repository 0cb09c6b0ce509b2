"""Sliding windows made of step histograms."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

from stream_drift.stats.binning import Binning
from stream_drift.stats.histogram import Histogram


class SlidingWindow:
    """The last ``size`` step histograms and their running total.

    Sliding costs O(bins): the newest step is added to the total and, once the window is
    full, the oldest is subtracted (bins, missing and mismatched counts alike); nothing is
    recomputed from raw values. A tumbling window is ``size=1`` (each step is a whole window).

    Parameters
    ----------
    binning
        Bin layout of every step.
    size
        Number of steps in a full window.

    Examples
    --------
    >>> from stream_drift.stats.binning import NumericBinning
    >>> b = NumericBinning([0.0])
    >>> w = SlidingWindow(b, size=2)
    >>> for batch in ([-1.0], [1.0, 2.0], [3.0]):
    ...     _ = w.push(Histogram(b).add(batch))
    >>> w.total.counts.tolist(), w.is_full
    ([0, 3], True)
    """

    def __init__(self, binning: Binning, size: int) -> None:
        if size < 1:
            raise ValueError("size must be >= 1 step")
        self.binning = binning
        self.size = size
        self.reset()

    def reset(self) -> None:
        """Forget every step."""
        self._steps: deque[Histogram] = deque()
        self.total = Histogram(self.binning)

    @property
    def is_full(self) -> bool:
        return len(self._steps) == self.size

    def __len__(self) -> int:
        return len(self._steps)

    def __iter__(self) -> Iterator[Histogram]:
        return iter(self._steps)

    def push(self, step: Histogram) -> Histogram | None:
        """Add the newest step; return the step evicted to make room, if any."""
        evicted = self._steps.popleft() if self.is_full else None
        if evicted is not None:
            self.total.subtract(evicted)
        self._steps.append(step)
        self.total.merge_in(step)
        return evicted

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "steps": [s.to_dict() for s in self._steps]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], binning: Binning) -> SlidingWindow:
        window = cls(binning, int(data["size"]))
        for step in data["steps"]:
            window.push(Histogram.from_dict(step, binning))
        return window
