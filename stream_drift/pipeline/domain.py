"""Multivariate drift: the row sample stage 1 draws, and the domain classifier of stage 2.

Per-series statistics miss a change of the *joint* distribution whose marginals stay put
(two features whose correlation flips). A domain classifier catches it: an online model
learns to tell current rows (label 1) from reference rows (label 0); when it cannot, its
AUC stays near 0.5; when the joint distribution moved, it can.

Rows travel as **bin codes** (:data:`IntArray`), one int per series of the *code layout*
(:func:`sample_series`): the reference's feature series (not its prediction series, which
are judged on their own), sorted by name; the code of a value is its fine bin in the
reference's binning, ``-1`` when the value is missing or of the wrong kind. A numeric code
is a rank (the fine bins are quantiles), a categorical one a category.

The sample. Stage 1 keeps, per (model version, source partition, window step), the
``sample_per_step`` rows whose :func:`sample_priority` (a hash of the source partition and
the record's offset) is smallest: a *bottom-k* sample, a uniform sample without
replacement of that step's rows of the partition. It depends only on which offsets the step
holds, not on batch boundaries, the path (columnar or per record) or a replay, and the
bottom-k of a union is the bottom-k of the bottom-k's: stage 2 merges the samples of a
step's chunks by offset (a row applied twice is one row) and keeps the ``k`` smallest.

Examples
--------
>>> p = sample_priority(np.array([0, 0, 1]), np.array([5, 6, 5]))
>>> p.dtype, len(set(p.tolist()))
(dtype('uint64'), 3)
>>> bottom_k([(9, 1, (0,)), (3, 2, (1,)), (3, 2, (1,)), (5, 3, (2,))], 2)
[(3, 2, (1,)), (5, 3, (2,))]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from statistics import NormalDist
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from stream_drift.pipeline.events import is_prediction_series
from stream_drift.pipeline.reference import ReferenceProfile
from stream_drift.stats.binning import NumericBinning

__all__ = [
    "DomainClassifier",
    "DomainResult",
    "SampleBlock",
    "SampleRow",
    "bottom_k",
    "mann_whitney_auc",
    "merge_blocks",
    "null_auc_sd",
    "reference_codes",
    "sample_priority",
    "sample_series",
    "select_bottom_k",
    "split_groups",
    "value_codes",
]

IntArray = npt.NDArray[np.int64]
UIntArray = npt.NDArray[np.uint64]
SampleRow = tuple[int, int, tuple[int, ...]]
"""``(priority, offset, codes)`` of one sampled row (stage 2)."""
SampleBlock = tuple[UIntArray, IntArray, IntArray]
"""Sampled rows of one source partition as arrays, in priority order: priorities, offsets,
codes (rows × layout). Stage 1 keeps rows so, with no Python object per row (those cost ~5 %
of the columnar path through allocation and garbage collection)."""

MISSING_CODE: Final = -1

_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)
_MIX1: Final = np.uint64(0xBF58476D1CE4E5B9)
_MIX2: Final = np.uint64(0x94D049BB133111EB)


def sample_series(reference: ReferenceProfile) -> tuple[str, ...]:
    """The code layout: the reference's feature series (no prediction series), sorted.

    Examples
    --------
    >>> from stream_drift.pipeline.reference import build_reference
    >>> ref = build_reference({"b": np.arange(200.0), "a": ["x", "y"] * 100,
    ...                        "p": np.arange(200.0)}, model="m", prediction=["p"])
    >>> sample_series(ref)
    ('a', 'b')
    """
    return tuple(sorted(n for n in reference.series if not is_prediction_series(n)))


def sample_priority(partitions: npt.ArrayLike, offsets: npt.ArrayLike) -> UIntArray:
    """Sampling priority of each record: splitmix64 of ``partition * golden + offset``.

    A bijection of 64-bit words, so two offsets of a partition never share a priority, and
    as good as uniform: the rows with the ``k`` smallest priorities are a uniform sample.
    """
    with np.errstate(over="ignore"):
        z = np.asarray(partitions, dtype=np.int64).astype(np.uint64) * _GOLDEN
        z = z + np.asarray(offsets, dtype=np.int64).astype(np.uint64)
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        out: UIntArray = z ^ (z >> np.uint64(31))
    return out


def bottom_k(rows: Iterable[SampleRow], k: int) -> list[SampleRow]:
    """The ``k`` rows of smallest priority, each offset once, in priority order."""
    unique = {row[1]: row for row in rows}
    return sorted(unique.values())[:k]


def merge_blocks(kept: SampleBlock | None, new: SampleBlock, k: int) -> SampleBlock:
    """The ``k`` rows of smallest priority of two blocks of one source partition, each offset
    once (an offset's priority is its own, so a row present in both sorts next to itself).

    Examples
    --------
    >>> a = (np.array([1, 5], dtype=np.uint64), np.array([10, 11]), np.array([[0], [1]]))
    >>> b = (np.array([3, 5], dtype=np.uint64), np.array([12, 11]), np.array([[2], [1]]))
    >>> [x.tolist() for x in merge_blocks(a, b, 3)]
    [[1, 3, 5], [10, 12, 11], [[0], [2], [1]]]
    """
    if kept is None:
        priorities, offsets, codes = new
    else:
        priorities = np.concatenate((kept[0], new[0]))
        offsets = np.concatenate((kept[1], new[1]))
        codes = np.concatenate((kept[2], new[2]))
    order = np.lexsort((offsets, priorities))
    o = offsets[order]
    fresh = np.r_[True, o[1:] != o[:-1]]  # equal offsets are adjacent (equal priorities)
    order = order[fresh][:k]
    return priorities[order], offsets[order], codes[order]


def split_groups(
    groups: IntArray, chosen: IntArray, priorities: UIntArray, offsets: IntArray, codes: IntArray
) -> dict[int, SampleBlock]:
    """The rows :func:`select_bottom_k` chose (``codes`` aligned with ``chosen``), as one
    block per group."""
    g = groups[chosen]
    p, o = priorities[chosen], offsets[chosen]
    bounds = [0, *(np.flatnonzero(g[1:] != g[:-1]) + 1).tolist(), len(g)]
    return {int(g[a]): (p[a:b], o[a:b], codes[a:b]) for a, b in pairwise(bounds) if b > a}


def block_rows(block: SampleBlock) -> list[list[int]]:
    """A block as ``Partial.sample`` writes it: ``[offset, code, ...]`` per row."""
    _, offsets, codes = block
    rows: list[list[int]] = np.column_stack((offsets, codes)).tolist()
    return rows


def select_bottom_k(groups: IntArray, priorities: UIntArray, k: int) -> IntArray:
    """Positions of the ``k`` smallest priorities within each group (vectorised), in
    (group, priority) order.

    Sorting every row costs ~10 % of stage 1's columnar path, so only *candidates* are
    sorted: the rows whose priority lies in the lowest ``(k + 4√k + 4) / m`` of the range
    (``m``: the group's rows; about 4 standard deviations above ``k`` expected). When a
    group has ``k`` candidates or more its ``k`` smallest are among them (every other row's
    priority is above every candidate's); a group with fewer (rare) has all its rows
    sorted. The result is exact.

    Examples
    --------
    >>> select_bottom_k(np.array([0, 0, 1, 0]), np.array([7, 3, 5, 1], dtype=np.uint64), 2)
    array([3, 1, 2])
    """
    if k > 0 and len(groups) > 8 * k:
        sizes = np.bincount(groups)
        share = np.minimum((k + 4.0 * math.sqrt(k) + 4.0) / np.maximum(sizes, 1), 1.0) * 2.0**53
        # The top 53 bits keep the order (non-strictly) and are exact as floats.
        top = (priorities >> np.uint64(11)).astype(np.float64)
        candidate = top < share[groups]
        short = np.bincount(groups[candidate], minlength=len(sizes)) < k
        candidate |= short[groups]
        if not candidate.all():
            rows = np.flatnonzero(candidate)
            picked: IntArray = rows[_bottom_k_all(groups[rows], priorities[rows], k)]
            return picked
    return _bottom_k_all(groups, priorities, k)


def _bottom_k_all(groups: IntArray, priorities: UIntArray, k: int) -> IntArray:
    # Two stable argsorts: by priority, then by group (faster than np.lexsort here).
    order = np.argsort(priorities, kind="stable")
    order = order[np.argsort(groups[order], kind="stable")]
    g = groups[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    rank = np.arange(len(g)) - np.repeat(starts, np.diff(np.r_[starts, len(g)]))
    selected: IntArray = order[rank < k]
    return selected


def value_codes(reference: ReferenceProfile, name: str, values: Sequence[Any]) -> IntArray:
    """Codes of raw values of series ``name`` (missing and wrong kind: ``-1``)."""
    codes = reference.series[name].binning.assign(values)
    codes[codes < 0] = MISSING_CODE
    return codes


def reference_codes(reference: ReferenceProfile, rows: Sequence[Mapping[str, object]]) -> IntArray:
    """Raw rows (``{feature: value}``) as codes over the layout of ``reference``.

    A feature a row lacks is missing (``-1``), like a value of the wrong kind.

    Examples
    --------
    >>> from stream_drift.pipeline.reference import build_reference
    >>> ref = build_reference({"x": np.arange(100.0), "c": ["a", "b"] * 50}, model="m")
    >>> reference_codes(ref, [{"x": 3.0, "c": "b"}, {"x": "3", "c": "zz"}, {}]).tolist()
    [[1, 3], [2, -1], [-1, -1]]
    """
    layout = sample_series(reference)
    out = np.full((len(rows), len(layout)), MISSING_CODE, dtype=np.int64)
    for j, name in enumerate(layout):
        if rows:
            out[:, j] = value_codes(reference, name, [row.get(name) for row in rows])
    return out


def mann_whitney_auc(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Area under the ROC curve of ``scores`` for ``labels`` (1 positive), ties counted
    half: the Mann–Whitney U of the positives over ``n_pos * n_neg``.

    Examples
    --------
    >>> mann_whitney_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # Average ranks of ties: the start and end of each run of equal scores.
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def null_auc_sd(n_pos: int, n_neg: int) -> float:
    """Standard deviation of the AUC of exchangeable scores (Mann–Whitney, no ties)."""
    return math.sqrt((n_pos + n_neg + 1) / (12.0 * n_pos * n_neg))


@dataclass(frozen=True)
class DomainResult:
    """One window's verdict.

    ``auc``: the prequential AUC of current (1) against reference (0) rows; ``threshold``:
    the AUC a null stream exceeds in ``false_alarm_rate`` of its windows; ``n_rows``:
    current rows judged; ``top_features``: the series that weigh most in the classifier.
    """

    auc: float
    threshold: float
    n_rows: int
    top_features: list[str] = field(default_factory=list)

    @property
    def is_drift(self) -> bool:
        return self.auc > self.threshold


class DomainClassifier:
    """The domain classifier of one model version.

    Each window gets a *fresh* online model (River: pairwise interactions of the features,
    then logistic regression), fed the window's current rows (label 1) interleaved in a
    seeded random order with as many rows drawn from the reference codes (label 0); each
    row is scored (``predict_proba_one``) before it is learnt, and the AUC of those scores
    is the window's. A window's result therefore depends only on its rows, the reference
    and the seed: nothing to persist but the calibration (:attr:`thresholds`), which is
    deterministic too.

    Features: a numeric code becomes its rank ``2 * code / (n_bins - 1) - 1`` in [-1, 1]
    (with an ``i=na`` indicator when missing), a categorical code the one-hot ``i=code``;
    their pairwise products let the logistic regression see a joint change that leaves
    every marginal alone (a correlation flip), which a linear model of the ranks cannot.

    Parameters
    ----------
    reference
        The profile the codes follow.
    reference_rows
        Reference rows as codes (:func:`reference_codes`), at least one.
    min_rows
        Fewer current rows: no verdict (``None``).
    false_alarm_rate
        Target share of null windows flagged.
    max_rows
        Current rows judged at most (a seeded uniform subsample beyond): bounds the cost
        of a window (~0.1 ms per row, twice: current and reference rows).
    calibration_splits
        Reference-vs-reference runs per row-count bucket (see :meth:`threshold`).
    learning_rate
        SGD step of the logistic regression.
    thresholds
        A calibration saved before (:attr:`thresholds`), to skip recomputing it.
    """

    def __init__(
        self,
        reference: ReferenceProfile,
        reference_rows: IntArray,
        *,
        min_rows: int = 200,
        false_alarm_rate: float = 0.001,
        max_rows: int = 1000,
        calibration_splits: int = 24,
        learning_rate: float = 0.1,
        thresholds: Mapping[int, float] | None = None,
    ) -> None:
        self.layout = sample_series(reference)
        rows = np.asarray(reference_rows, dtype=np.int64).reshape(-1, len(self.layout))
        if len(rows) == 0:
            raise ValueError("the domain classifier needs reference rows")
        if not 0 < false_alarm_rate < 1:
            raise ValueError("false_alarm_rate must be in (0, 1)")
        self.reference_rows = rows
        self.min_rows = max(int(min_rows), 2)
        self.max_rows = max(int(max_rows), self.min_rows)
        self.false_alarm_rate = float(false_alarm_rate)
        self.calibration_splits = max(int(calibration_splits), 2)
        self.learning_rate = float(learning_rate)
        self.thresholds: dict[int, float] = dict(thresholds or {})
        """Row-count bucket -> AUC threshold (see :meth:`threshold`)."""
        self._numeric = []
        for name in self.layout:
            binning = reference.series[name].binning
            if isinstance(binning, NumericBinning):
                self._numeric.append(max(binning.n_bins - 1, 1))
            else:
                self._numeric.append(0)
        self._features = [self._row_features(r) for r in rows.tolist()]

    # -- features ----------------------------------------------------------------------------
    def _row_features(self, codes: Sequence[int]) -> dict[str, float]:
        x: dict[str, float] = {}
        for i, (code, top) in enumerate(zip(codes, self._numeric, strict=True)):
            if code < 0:
                x[f"{i}=na"] = 1.0
            elif top:
                x[str(i)] = 2.0 * code / top - 1.0
            else:
                x[f"{i}={code}"] = 1.0
        return x

    def _model(self) -> Any:
        from river import compose, feature_extraction, linear_model, optim  # slow import

        return compose.Pipeline(
            feature_extraction.PolynomialExtender(  # type: ignore[no-untyped-call]
                degree=2, interaction_only=True, include_bias=False
            ),
            linear_model.LogisticRegression(optimizer=optim.SGD(self.learning_rate)),
        )

    def _run(
        self, current: list[dict[str, float]], reference: list[dict[str, float]], seed: int
    ) -> tuple[float, Any]:
        """Prequential AUC of current (1) vs reference (0) rows, and the trained model."""
        model = self._model()
        labels = np.r_[np.ones(len(current), dtype=bool), np.zeros(len(reference), dtype=bool)]
        np.random.default_rng(seed).shuffle(labels)
        cur, ref = iter(current), iter(reference)
        scores = np.empty(len(labels))
        predict, learn = model.predict_proba_one, model.learn_one
        for t, label in enumerate(labels.tolist()):
            x = next(cur) if label else next(ref)
            scores[t] = predict(x).get(True, 0.5)
            learn(x, label)
        return mann_whitney_auc(scores, labels), model

    def _draw(self, n: int, rng: np.random.Generator) -> list[dict[str, float]]:
        idx = rng.integers(0, len(self._features), n)
        return [self._features[i] for i in idx.tolist()]

    # -- calibration -------------------------------------------------------------------------
    def bucket(self, n_rows: int) -> int:
        """The row-count bucket of ``n_rows``: the largest ``min_rows * 2**(k/2)`` not above
        it, or ``max_rows`` from there on (evaluations judge at most ``max_rows`` rows). A
        bucket is calibrated at its lower bound, where the null AUC spreads most, so its
        threshold is conservative for every count inside it."""
        if n_rows >= self.max_rows:
            return self.max_rows
        k = math.floor(2 * math.log2(max(n_rows, self.min_rows) / self.min_rows) + 1e-9)
        return min(int(self.min_rows * 2 ** (k / 2)), self.max_rows)

    def threshold(self, n_rows: int) -> float:
        """AUC threshold for a window of ``n_rows`` current rows (cached per bucket).

        At the bucket's row count, ``calibration_splits`` runs of the window's procedure with
        *both* sides drawn from the reference rows give the null AUC's mean and spread; the
        threshold is the normal ``1 - false_alarm_rate`` quantile of that null, and never
        below the Mann–Whitney bound of exchangeable scores (``0.5 + z * sd``). A normal tail
        rather than the empirical quantile: a 0.999 quantile would take thousands of runs
        (``bench.multivariate`` measures the resulting false-alarm rate on a null stream).
        """
        b = self.bucket(n_rows)
        cached = self.thresholds.get(b)
        if cached is not None:
            return cached
        rng = np.random.default_rng(b)
        aucs = [
            self._run(self._draw(b, rng), self._draw(b, rng), seed=s)[0]
            for s in range(self.calibration_splits)
        ]
        z = NormalDist().inv_cdf(1.0 - self.false_alarm_rate)
        mean = float(np.mean(aucs))
        sd = float(np.std(aucs, ddof=1))
        value = max(mean + z * sd, 0.5 + z * null_auc_sd(b, b))
        self.thresholds[b] = value
        return value

    # -- evaluation --------------------------------------------------------------------------
    def evaluate(self, current: npt.ArrayLike, *, seed: int = 0) -> DomainResult | None:
        """The verdict on a window's current rows (codes, rows × layout), or ``None`` below
        ``min_rows`` rows."""
        rows = np.asarray(current, dtype=np.int64).reshape(-1, len(self.layout))
        if len(rows) < self.min_rows:
            return None
        rng = np.random.default_rng(seed)
        if len(rows) > self.max_rows:
            rows = rows[np.sort(rng.choice(len(rows), self.max_rows, replace=False))]
        features = [self._row_features(r) for r in rows.tolist()]
        auc, model = self._run(features, self._draw(len(features), rng), seed)
        return DomainResult(auc, self.threshold(len(rows)), len(rows), self._top(model))

    def _top(self, model: Any, n: int = 3) -> list[str]:
        """The series whose weights, summed in absolute value over every term they appear
        in (alone or in a product), are largest."""
        weight = [0.0] * len(self.layout)
        for term, w in model["LogisticRegression"].weights.items():
            for factor in str(term).split("*"):
                weight[int(factor.split("=", 1)[0])] += abs(float(w))
        ranked = sorted(range(len(weight)), key=lambda i: -weight[i])
        return [self.layout[i] for i in ranked[:n] if weight[i] > 0]
