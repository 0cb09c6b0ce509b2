"""Histogram counts as typed records: how histograms travel on ``drift.partials`` and rest in
the evaluator's table.

A :class:`~stream_drift.stats.histogram.Histogram` is counts over a binning; the binning is
the reference's, known to both stages, so only the counts are written. The JSON form is the
one :meth:`~stream_drift.stats.histogram.Histogram.to_dict` has always written (non-empty bins
only, ``mismatched`` only when non-zero), so that messages and table rows written by earlier
versions read unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

import msgspec

from stream_drift.stats.binning import Binning
from stream_drift.stats.histogram import Histogram
from stream_drift.stats.window import SlidingWindow

__all__ = [
    "HistogramCounts",
    "StepCounts",
    "WindowCounts",
    "step_counts",
    "step_histograms",
]


class HistogramCounts(msgspec.Struct, omit_defaults=True, gc=False):
    """The counts of one histogram: its non-empty bins and their counts.

    Parameters
    ----------
    n_bins
        Bins of the binning (checked against the reader's binning).
    missing
        Missing values (always written).
    bins, counts
        The non-empty bins' indices and their counts.
    mismatched
        Values of the wrong kind; written only when non-zero.

    Examples
    --------
    >>> from stream_drift.stats.binning import CategoricalBinning
    >>> binning = CategoricalBinning(["a", "b"])
    >>> hc = HistogramCounts.of(Histogram(binning, [0, 7, 0], missing=2))
    >>> msgspec.json.encode(hc)
    b'{"n_bins":3,"missing":2,"bins":[1],"counts":[7]}'
    >>> hc.to_histogram(binning) == Histogram(binning, [0, 7, 0], missing=2)
    True
    """

    n_bins: int
    missing: int
    bins: list[int]
    counts: list[int]
    mismatched: int = 0

    @classmethod
    def of(cls, histogram: Histogram) -> HistogramCounts:
        """The counts of ``histogram``."""
        return cls(**histogram.to_dict())

    def to_histogram(self, binning: Binning) -> Histogram:
        """The histogram over ``binning``; ``ValueError`` if its bin count differs."""
        return Histogram.from_dict(msgspec.structs.asdict(self), binning)


StepCounts: TypeAlias = dict[float, dict[str, HistogramCounts]]
"""Step start (event time, seconds) -> series name -> counts."""


def step_counts(steps: Mapping[float, Mapping[str, Histogram]]) -> StepCounts:
    """The counts of histograms by step and series.

    Examples
    --------
    >>> from stream_drift.stats.binning import NumericBinning
    >>> b = NumericBinning([0.0])
    >>> counts = step_counts({60.0: {"x": Histogram(b).add([1.0, None])}})
    >>> counts
    {60.0: {'x': HistogramCounts(n_bins=2, missing=1, bins=[1], counts=[1], mismatched=0)}}
    >>> step_histograms(counts, {"x": b})[60.0]["x"] == Histogram(b).add([1.0, None])
    True
    """
    return {
        step: {name: HistogramCounts.of(h) for name, h in series.items()}
        for step, series in steps.items()
    }


def step_histograms(
    counts: StepCounts, bins: Mapping[str, Binning]
) -> dict[float, dict[str, Histogram]]:
    """Histograms from :func:`step_counts`; series without a binning in ``bins`` are left out
    (a reference that no longer has them)."""
    return {
        step: {name: c.to_histogram(bins[name]) for name, c in series.items() if name in bins}
        for step, series in counts.items()
    }


class WindowCounts(msgspec.Struct):
    """A sliding window's step histograms, oldest first, and its size in steps.

    Examples
    --------
    >>> from stream_drift.stats.binning import NumericBinning
    >>> b = NumericBinning([0.0])
    >>> w = SlidingWindow(b, size=2)
    >>> _ = w.push(Histogram(b).add([1.0]))
    >>> wc = WindowCounts.of(w)
    >>> msgspec.json.encode(wc)
    b'{"size":2,"steps":[{"n_bins":2,"missing":0,"bins":[1],"counts":[1]}]}'
    >>> wc.to_window(b).total == w.total
    True
    """

    size: int
    steps: list[HistogramCounts]

    @classmethod
    def of(cls, window: SlidingWindow) -> WindowCounts:
        """The counts of ``window``."""
        return cls(window.size, [HistogramCounts.of(h) for h in window])

    def to_window(self, binning: Binning) -> SlidingWindow:
        """The window over ``binning``, its steps pushed in order (the total follows)."""
        window = SlidingWindow(binning, self.size)
        for step in self.steps:
            window.push(step.to_histogram(binning))
        return window
