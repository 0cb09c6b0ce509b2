"""Realised model performance from (prediction, label) pairs: mergeable accumulators.

Three tasks, one accumulator class each, all with the same small interface
(:class:`PerformanceAccumulator`): ``add(predictions, labels)``, ``merge(other)`` (counts
add, so accumulators built on different workers or window steps combine), ``metrics()``,
``n`` (pairs seen) and a JSON-ready state (``to_dict`` / :func:`accumulator_from_dict`) for a
table row. Merging is *exact*: every sum is kept as an exact binary fraction
(:class:`ExactSum`), so ``a.merge(b)`` equals one accumulator fed the concatenation,
whatever the order (the tests check equality, not closeness).

Which task a model has (:func:`infer_task`)
-------------------------------------------
Decided from a batch of pairs, first matching rule wins:

1. **binary** -- every prediction is a number (not a bool) in ``[0, 1]`` (a score) and every
   label is one of ``0, 1, True, False, "true", "false"`` (the decoder turns JSON bools
   into ``"true"``/``"false"``). Ambiguous on purpose: 0/1 labels with 0/1 predictions are
   binary (a hard classifier is a score of 0 or 1), and so is a regression whose labels
   happen to be 0/1 and predictions in ``[0, 1]``.
2. **regression** -- every prediction and every label is a number (bools are not numbers).
3. **multiclass** -- anything else: string labels (class names), bool labels with string
   predictions, mixed kinds. Predictions and labels are compared as class names
   (:func:`class_name`: ``"true"`` for ``True``, ``"2"`` for ``2.0``, ``"0.5"`` for 0.5),
   so a numeric class code must be sent as a string to be read as a class (rule 2 first).

Call it once per model version (on the first batch) and keep the answer: a batch of a
regression model whose labels happen to be all 0 or 1 would read as binary.

Metrics (``metrics()``, empty while ``n == 0``)
-----------------------------------------------
- binary (score ``>= 0.5`` predicts the positive class): ``accuracy``, ``precision``,
  ``recall``, ``f1`` (0 when undefined, as scikit-learn's ``zero_division=0``),
  ``log_loss`` (mean of ``-log q``, ``q`` the probability the score gives the true class,
  clipped to ``[1e-15, 1 - 1e-15]``, so a confident mistake costs ``-log(1e-15) ≈ 34.5``
  instead of infinity) and ``roc_auc`` (``None`` while one class is
  absent). AUC comes from per-class score histograms on :data:`AUC_BINS` equal bins over
  ``[0, 1]`` (Mann--Whitney: a positive above a negative counts 1, in the same bin ½). It
  differs from the exact AUC only through positive/negative pairs sharing a bin, so
  ``|grid AUC - exact AUC| <= BinaryPerformance.auc_error_bound()`` ``= ½ · Σ pos_i ·
  neg_i / (P · N)``; with scores spread over ``[0, 1]`` this is about ``1 / (2 ·
  AUC_BINS)`` (0.0005), and it is 0 when no bin holds both classes.
- multiclass: ``accuracy``, ``macro_f1`` (unweighted mean of per-class F1 over the classes
  seen as label or prediction, as scikit-learn's ``f1_score(average="macro")``), and while
  at most :data:`PER_CLASS_MAX` classes were seen, ``precision:<class>``,
  ``recall:<class>``, ``f1:<class>``. At most :data:`MAX_CLASSES` classes are kept: the
  ``MAX_CLASSES`` *smallest names* (in sort order) of all classes seen -- a choice that
  depends only on the set of classes, not on arrival order, so merges stay exact; the rest
  are pooled as ``"(other)"``. Accuracy stays exact (counted before pooling); ``macro_f1``
  then averages the kept classes only.
- regression: ``mae``, ``rmse``.

Numbers must be finite (the decoder refuses ``NaN``/``Infinity`` already); ``add`` raises
``ValueError`` otherwise, and on labels a binary accumulator cannot read.

Examples
--------
>>> acc = BinaryPerformance().add([0.9, 0.2, 0.6, 0.4], [1, 0, 0, 1])
>>> m = acc.metrics()
>>> m["accuracy"], m["precision"], m["recall"], m["roc_auc"]
(0.5, 0.5, 0.5, 0.75)
>>> infer_task([0.9, 0.2], ["true", "false"]), infer_task(["a"], ["b"]), infer_task([3.5], [4])
('binary', 'multiclass', 'regression')
>>> errors("regression", [3.5, 1.0], [4.0, 1.0]).tolist()
[0.5, 0.0]
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any, Final, Literal, Protocol, TypeAlias, get_args

import numpy as np
import numpy.typing as npt

__all__ = [
    "AUC_BINS",
    "LOG_LOSS_EPS",
    "MAX_CLASSES",
    "OTHER_CLASS",
    "PER_CLASS_MAX",
    "TASKS",
    "BinaryPerformance",
    "ExactSum",
    "MulticlassPerformance",
    "PerformanceAccumulator",
    "RegressionPerformance",
    "Task",
    "accumulator_from_dict",
    "class_name",
    "errors",
    "infer_task",
    "new_accumulator",
]

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = get_args(Task)

Scalar: TypeAlias = float | int | str | bool
"""A prediction or a label as decoded (numbers, class names, bools)."""
Values: TypeAlias = "Sequence[Scalar] | npt.ArrayLike"
"""Predictions or labels: a sequence or a numpy array."""

AUC_BINS: Final = 1000
"""Equal score bins over ``[0, 1]`` of the ROC AUC histograms."""
LOG_LOSS_EPS: Final = 1e-15
"""The log loss clips the true class's probability to ``[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]``."""
MAX_CLASSES: Final = 50
"""Classes a multiclass accumulator keeps apart; the rest are pooled as :data:`OTHER_CLASS`."""
PER_CLASS_MAX: Final = 10
"""Per-class precision/recall/F1 are reported while at most this many classes were seen."""
OTHER_CLASS: Final = "(other)"
THRESHOLD: Final = 0.5
"""A binary score at or above this predicts the positive class."""

_POSITIVE: Final = frozenset({1, "true"})  # 1 == 1.0 == True
_NEGATIVE: Final = frozenset({0, "false"})  # 0 == 0.0 == False
_BINARY_LABELS: Final = _POSITIVE | _NEGATIVE
_BINARY_VALUE: Final = {1: True, "true": True, 0: False, "false": False}  # 1.0, True hit 1
FloatArray: TypeAlias = npt.NDArray[np.float64]


# --------------------------------------------------------------------------- helpers


def _is_number(v: object) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(
        v, bool | np.bool_
    )


def class_name(value: Scalar) -> str:
    """The class name a prediction or label stands for in a multiclass comparison.

    Examples
    --------
    >>> [class_name(v) for v in ("cat", True, 2.0, 0.5, 3)]
    ['cat', 'true', '2', '0.5', '3']
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    f = float(value)
    if f.is_integer():
        return str(int(f))
    return repr(f)


def infer_task(predictions: Sequence[Scalar], labels: Sequence[Scalar]) -> Task:
    """The task of a model from a batch of its pairs (rules in the module docstring).

    Raises
    ------
    ValueError
        If the batch is empty or the two sequences differ in length.

    Examples
    --------
    >>> infer_task([0, 1, 1], [0, 1, 0])  # hard 0/1 predictions: binary, decided explicitly
    'binary'
    >>> infer_task([0.2, 1.7], [0, 1])  # a score outside [0, 1]: regression
    'regression'
    >>> infer_task(["true", "false"], ["true", "true"])  # bool predictions: class names
    'multiclass'
    """
    preds, labs = _check_pairs(predictions, labels)
    if not preds:
        raise ValueError("infer_task needs at least one (prediction, label) pair")
    if all(_is_number(p) and 0.0 <= p <= 1.0 for p in preds) and all(
        isinstance(v, str | bool | int | float | np.number) and v in _BINARY_LABELS for v in labs
    ):
        return "binary"
    if all(_is_number(p) for p in preds) and all(_is_number(v) for v in labs):
        return "regression"
    return "multiclass"


def _check_pairs(predictions: Values, labels: Values) -> tuple[list[Any], list[Any]]:
    preds = predictions.tolist() if isinstance(predictions, np.ndarray) else list(predictions)  # type: ignore[arg-type]
    labs = labels.tolist() if isinstance(labels, np.ndarray) else list(labels)  # type: ignore[arg-type]
    if len(preds) != len(labs):
        raise ValueError(f"{len(preds)} predictions but {len(labs)} labels")
    return preds, labs


def _finite(values: Iterable[Any], what: str) -> FloatArray:
    try:
        arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, float)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected numbers") from None
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}: numbers must be finite")
    return arr


def _binary_labels(labels: Sequence[Any]) -> npt.NDArray[np.bool_]:
    table = _BINARY_VALUE
    try:
        return np.fromiter((table[v] for v in labels), dtype=bool, count=len(labels))
    except (KeyError, TypeError):
        bad = next(v for v in labels if not isinstance(v, Hashable) or v not in table)
        raise ValueError(f"binary label must be 0, 1, true or false, got {bad!r}") from None


def errors(task: Task, predictions: Sequence[Scalar], labels: Sequence[Scalar]) -> FloatArray:
    """The per-pair error stream for a concept-drift detector.

    ``binary``: 1.0 when the thresholded score (``>= 0.5`` is positive) misses the label,
    else 0.0; ``multiclass``: 1.0 when the class names differ; ``regression``: the absolute
    error.

    Examples
    --------
    >>> errors("binary", [0.9, 0.5, 0.1], [1, 0, "true"]).tolist()
    [0.0, 1.0, 1.0]
    >>> errors("multiclass", ["a", 2.0], ["a", "2"]).tolist()
    [0.0, 0.0]
    """
    preds, labs = _check_pairs(predictions, labels)
    if task == "binary":
        scores = _finite(preds, "predictions")
        missed: FloatArray = ((scores >= THRESHOLD) != _binary_labels(labs)).astype(np.float64)
        return missed
    if task == "multiclass":
        wrong = [class_name(p) != class_name(v) for p, v in zip(preds, labs, strict=True)]
        return np.asarray(wrong, dtype=np.float64)
    if task == "regression":
        return np.abs(_finite(preds, "predictions") - _finite(labs, "labels"))
    raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")


class ExactSum:
    """An exact sum of float64 values (a binary fraction ``m · 2**e``), mergeable exactly.

    Floating-point addition is not associative, so sums kept as floats would make merged
    accumulators differ from one fed the concatenation in the last bits. Every float64 is an
    integer times a power of two; this keeps the integer sum, vectorised (per exponent).

    Examples
    --------
    >>> s = ExactSum().add([0.1, 0.2, -0.3])
    >>> s.value() == math.fsum([0.1, 0.2, -0.3]), s.value() == 0.1 + 0.2 - 0.3
    (True, False)
    >>> ExactSum.from_json(s.to_json()) == s
    True
    """

    __slots__ = ("exp", "mant")

    def __init__(self, mant: int = 0, exp: int = 0) -> None:
        self.mant, self.exp = self._normal(mant, exp)

    @staticmethod
    def _normal(mant: int, exp: int) -> tuple[int, int]:
        if mant == 0:
            return 0, 0
        shift = (mant & -mant).bit_length() - 1  # trailing zero bits: one canonical form
        return mant >> shift, exp + shift

    def add(self, values: Iterable[float] | FloatArray) -> ExactSum:
        """Add values (finite float64); returns ``self``."""
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if not np.isfinite(v).all():
            raise ValueError("ExactSum: values must be finite")
        v = v[v != 0.0]
        if not v.size:
            return self
        frac, e2 = np.frexp(v)  # v = frac · 2**e2, 0.5 <= |frac| < 1
        ints = np.ldexp(frac, 53).astype(np.int64)  # exact: 53-bit integers
        exps = e2.astype(np.int64) - 53
        order = np.argsort(exps, kind="stable")
        exps, ints = exps[order], ints[order]
        starts = np.flatnonzero(np.r_[True, exps[1:] != exps[:-1]])
        # Split into 26-bit halves so the per-exponent int64 sums cannot overflow.
        hi = np.add.reduceat(ints >> 26, starts).tolist()
        lo = np.add.reduceat(ints & ((1 << 26) - 1), starts).tolist()
        group_exps = exps[starts].tolist()
        base = group_exps[0]
        total = 0
        for h, lw, e in zip(hi, lo, group_exps, strict=True):
            total += ((h << 26) + lw) << (e - base)
        self._merge_parts(total, base)
        return self

    def _merge_parts(self, mant: int, exp: int) -> None:
        if mant == 0:
            return
        if self.mant == 0:
            self.mant, self.exp = self._normal(mant, exp)
            return
        base = min(self.exp, exp)
        total = (self.mant << (self.exp - base)) + (mant << (exp - base))
        self.mant, self.exp = self._normal(total, base)

    def merge(self, other: ExactSum) -> ExactSum:
        """Add another sum; returns ``self``."""
        self._merge_parts(other.mant, other.exp)
        return self

    def value(self) -> float:
        """The sum, correctly rounded to float."""
        if self.exp >= 0:
            return float(self.mant << self.exp)
        return float(Fraction(self.mant, 1 << -self.exp))

    def copy(self) -> ExactSum:
        return ExactSum(self.mant, self.exp)

    def to_json(self) -> list[Any]:
        """``[mantissa as a decimal string, exponent]`` (big integers travel as text)."""
        return [str(self.mant), self.exp]

    @classmethod
    def from_json(cls, data: Sequence[Any]) -> ExactSum:
        return cls(int(data[0]), int(data[1]))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExactSum):
            return NotImplemented
        return (self.mant, self.exp) == (other.mant, other.exp)

    def __hash__(self) -> int:
        return hash((self.mant, self.exp))

    def __repr__(self) -> str:
        return f"ExactSum({self.value()!r})"


def _sparse(counts: npt.NDArray[np.int64]) -> list[list[int]]:
    idx = np.flatnonzero(counts)
    return [[int(i), int(counts[i])] for i in idx]


def _dense(pairs: Iterable[Sequence[int]], size: int) -> npt.NDArray[np.int64]:
    out = np.zeros(size, dtype=np.int64)
    for i, c in pairs:
        out[int(i)] = int(c)
    return out


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


# ------------------------------------------------------------------------ accumulators


class PerformanceAccumulator(Protocol):
    """What stage 2 needs of an accumulator, whatever the task."""

    task: Task

    @property
    def n(self) -> int: ...

    def add(self, predictions: Values, labels: Values) -> PerformanceAccumulator: ...

    def merge(self, other: Any) -> PerformanceAccumulator: ...

    def metrics(self) -> dict[str, float | None]: ...

    def to_dict(self) -> dict[str, Any]: ...


class BinaryPerformance:
    """Binary classification from scores in ``[0, 1]`` (metrics in the module docstring).

    Examples
    --------
    >>> a = BinaryPerformance().add([0.8, 0.3], ["true", "false"])
    >>> b = BinaryPerformance().add([0.55], [0])
    >>> m = a.merge(b).metrics()
    >>> m["accuracy"], m["precision"], m["recall"], round(m["log_loss"], 4)
    (0.6666666666666666, 0.5, 1.0, 0.4594)
    >>> BinaryPerformance.from_dict(a.to_dict()) == a
    True
    >>> BinaryPerformance().add([0.7], [1]).metrics()["roc_auc"] is None  # one class only
    True
    """

    task: Task = "binary"
    __slots__ = ("fn", "fp", "log_loss_sum", "neg_hist", "pos_hist", "tn", "tp")

    def __init__(self) -> None:
        self.tp = self.fp = self.tn = self.fn = 0
        self.log_loss_sum = ExactSum()
        self.pos_hist = np.zeros(AUC_BINS, dtype=np.int64)
        self.neg_hist = np.zeros(AUC_BINS, dtype=np.int64)

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    def add(self, predictions: Values, labels: Values) -> BinaryPerformance:
        """Add pairs: scores in ``[0, 1]``, labels 0/1/true/false; returns ``self``."""
        preds, labs = _check_pairs(predictions, labels)
        scores = _finite(preds, "predictions")
        if scores.size and not ((scores >= 0.0) & (scores <= 1.0)).all():
            raise ValueError("binary predictions must be scores in [0, 1]")
        y = _binary_labels(labs)
        hit = scores >= THRESHOLD
        tp = int(np.count_nonzero(hit & y))
        fp = int(np.count_nonzero(hit & ~y))
        fn = int(np.count_nonzero(~hit & y))
        self.tp += tp
        self.fp += fp
        self.fn += fn
        self.tn += int(y.size) - tp - fp - fn
        # Clip the probability given to the true class (not the score): a confident mistake
        # then costs exactly -log(1e-15), whichever class it missed.
        truth = np.clip(np.where(y, scores, 1.0 - scores), LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
        self.log_loss_sum.add(-np.log(truth))
        # Multiplying by AUC_BINS is monotone in floating point, so bins keep score order.
        bins = np.minimum((scores * AUC_BINS).astype(np.int64), AUC_BINS - 1)
        self.pos_hist += np.bincount(bins[y], minlength=AUC_BINS)
        self.neg_hist += np.bincount(bins[~y], minlength=AUC_BINS)
        return self

    def merge(self, other: BinaryPerformance) -> BinaryPerformance:
        """Add another accumulator's counts; returns ``self``."""
        self.tp += other.tp
        self.fp += other.fp
        self.tn += other.tn
        self.fn += other.fn
        self.log_loss_sum.merge(other.log_loss_sum)
        self.pos_hist += other.pos_hist
        self.neg_hist += other.neg_hist
        return self

    def _auc_parts(self) -> tuple[int, int, int] | None:
        """``(2 · Σ pos_i · neg_below_i + Σ pos_i · neg_i, Σ pos_i · neg_i, P · N)``."""
        pos = self.pos_hist.tolist()
        neg = self.neg_hist.tolist()
        n_pos, n_neg = sum(pos), sum(neg)
        if not n_pos or not n_neg:
            return None
        below = 0
        twice = 0
        ties = 0
        for p, q in zip(pos, neg, strict=True):  # Python ints: exact for any count
            twice += p * (2 * below + q)
            ties += p * q
            below += q
        return twice, ties, n_pos * n_neg

    def roc_auc(self) -> float | None:
        """The grid ROC AUC, ``None`` while one class is absent."""
        parts = self._auc_parts()
        return None if parts is None else parts[0] / (2 * parts[2])

    def auc_error_bound(self) -> float | None:
        """Largest possible ``|grid AUC - exact AUC|`` for the scores seen (see module doc)."""
        parts = self._auc_parts()
        return None if parts is None else parts[1] / (2 * parts[2])

    def metrics(self) -> dict[str, float | None]:
        n = self.n
        if not n:
            return {}
        precision = _ratio(self.tp, self.tp + self.fp)
        recall = _ratio(self.tp, self.tp + self.fn)
        return {
            "accuracy": (self.tp + self.tn) / n,
            "precision": precision,
            "recall": recall,
            "f1": _f1(precision, recall),
            "log_loss": self.log_loss_sum.value() / n,
            "roc_auc": self.roc_auc(),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "tp": self.tp,
            "fp": self.fp,
            "tn": self.tn,
            "fn": self.fn,
            "log_loss_sum": self.log_loss_sum.to_json(),
            "pos_hist": _sparse(self.pos_hist),
            "neg_hist": _sparse(self.neg_hist),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BinaryPerformance:
        out = cls()
        out.tp, out.fp, out.tn, out.fn = (int(data[k]) for k in ("tp", "fp", "tn", "fn"))
        out.log_loss_sum = ExactSum.from_json(data["log_loss_sum"])
        out.pos_hist = _dense(data["pos_hist"], AUC_BINS)
        out.neg_hist = _dense(data["neg_hist"], AUC_BINS)
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BinaryPerformance):
            return NotImplemented
        return (
            (self.tp, self.fp, self.tn, self.fn, self.log_loss_sum)
            == (other.tp, other.fp, other.tn, other.fn, other.log_loss_sum)
            and bool(np.array_equal(self.pos_hist, other.pos_hist))
            and bool(np.array_equal(self.neg_hist, other.neg_hist))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BinaryPerformance(n={self.n}, tp={self.tp}, fp={self.fp}, fn={self.fn})"


class MulticlassPerformance:
    """Multiclass classification from class names (metrics in the module docstring).

    State: a sparse confusion matrix ``(label, prediction) -> count`` over the kept classes
    and ``"(other)"``, plus the exact count of correct pairs.

    Examples
    --------
    >>> acc = MulticlassPerformance().add(["a", "b", "b", "c"], ["a", "b", "c", "c"])
    >>> m = acc.metrics()
    >>> m["accuracy"], m["recall:c"], m["precision:b"], round(m["macro_f1"], 4)
    (0.75, 0.5, 0.5, 0.7778)
    """

    task: Task = "multiclass"
    __slots__ = ("confusion", "correct", "kept")

    def __init__(self) -> None:
        self.confusion: Counter[tuple[str, str]] = Counter()
        self.correct = 0
        self.kept: set[str] = set()  # the MAX_CLASSES smallest class names seen

    @property
    def n(self) -> int:
        return sum(self.confusion.values())

    def _keep(self, names: Iterable[str]) -> None:
        """Update the kept set to the smallest names of all seen; pool evicted classes."""
        candidates = self.kept | set(names)
        if len(candidates) <= MAX_CLASSES:
            self.kept = candidates
            return
        kept = set(sorted(candidates)[:MAX_CLASSES])
        evicted = self.kept - kept
        self.kept = kept
        if evicted:
            pooled: Counter[tuple[str, str]] = Counter()
            for (lab, pred), c in self.confusion.items():
                lab = OTHER_CLASS if lab in evicted else lab
                pred = OTHER_CLASS if pred in evicted else pred
                pooled[lab, pred] += c
            self.confusion = pooled

    def _pool(self, name: str) -> str:
        return name if name in self.kept else OTHER_CLASS

    def add(self, predictions: Values, labels: Values) -> MulticlassPerformance:
        """Add pairs (compared as :func:`class_name`); returns ``self``."""
        preds, labs = _check_pairs(predictions, labels)
        p = [class_name(v) for v in preds]
        y = [class_name(v) for v in labs]
        self.correct += sum(a == b for a, b in zip(p, y, strict=True))
        self._keep(p)
        self._keep(y)
        pool = self._pool
        self.confusion.update((pool(a), pool(b)) for a, b in zip(y, p, strict=True))
        return self

    def merge(self, other: MulticlassPerformance) -> MulticlassPerformance:
        """Add another accumulator's counts; returns ``self``."""
        self._keep(other.kept)
        pool = self._pool
        for (lab, pred), c in other.confusion.items():
            self.confusion[pool(lab), pool(pred)] += c
        self.correct += other.correct
        return self

    def metrics(self) -> dict[str, float | None]:
        n = self.n
        if not n:
            return {}
        row: Counter[str] = Counter()  # per true class
        col: Counter[str] = Counter()  # per predicted class
        diag: Counter[str] = Counter()
        for (lab, pred), c in self.confusion.items():
            row[lab] += c
            col[pred] += c
            if lab == pred:
                diag[lab] += c
        classes = sorted((set(row) | set(col)) - {OTHER_CLASS})
        out: dict[str, float | None] = {"accuracy": self.correct / n}
        per_class: dict[str, float | None] = {}
        f1s = []
        for name in classes:
            precision = _ratio(diag[name], col[name])
            recall = _ratio(diag[name], row[name])
            f1 = _f1(precision, recall)
            f1s.append(f1)
            per_class[f"precision:{name}"] = precision
            per_class[f"recall:{name}"] = recall
            per_class[f"f1:{name}"] = f1
        out["macro_f1"] = sum(f1s) / len(f1s) if f1s else 0.0
        if len(classes) <= PER_CLASS_MAX and OTHER_CLASS not in row | col:
            out.update(per_class)
        return out

    def to_dict(self) -> dict[str, Any]:
        cells = sorted(self.confusion.items())
        return {
            "task": self.task,
            "correct": self.correct,
            "kept": sorted(self.kept),
            "confusion": [[lab, pred, c] for (lab, pred), c in cells if c],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MulticlassPerformance:
        out = cls()
        out.correct = int(data["correct"])
        out.kept = {str(k) for k in data["kept"]}
        out.confusion = Counter({(str(a), str(b)): int(c) for a, b, c in data["confusion"]})
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MulticlassPerformance):
            return NotImplemented
        return (self.correct, self.kept, +self.confusion) == (
            other.correct,
            other.kept,
            +other.confusion,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MulticlassPerformance(n={self.n}, classes={len(self.kept)})"


class RegressionPerformance:
    """Regression from numeric predictions and labels: MAE and RMSE, sums kept exactly.

    Examples
    --------
    >>> acc = RegressionPerformance().add([2.0, 5.0], [1.0, 1.0])
    >>> acc.metrics()  # errors 1 and 4: MAE 2.5, RMSE sqrt(17 / 2)
    {'mae': 2.5, 'rmse': 2.9154759474226504}
    """

    task: Task = "regression"
    __slots__ = ("abs_sum", "count", "sq_sum")

    def __init__(self) -> None:
        self.count = 0
        self.abs_sum = ExactSum()
        self.sq_sum = ExactSum()

    @property
    def n(self) -> int:
        return self.count

    def add(self, predictions: Values, labels: Values) -> RegressionPerformance:
        """Add pairs of numbers; returns ``self``."""
        preds, labs = _check_pairs(predictions, labels)
        diff = _finite(preds, "predictions") - _finite(labs, "labels")
        if not np.isfinite(diff).all():
            raise ValueError("regression error overflows float64")
        sq = diff * diff
        if not np.isfinite(sq).all():
            raise ValueError("regression squared error overflows float64")
        self.count += int(diff.size)
        self.abs_sum.add(np.abs(diff))
        self.sq_sum.add(sq)
        return self

    def merge(self, other: RegressionPerformance) -> RegressionPerformance:
        """Add another accumulator's sums; returns ``self``."""
        self.count += other.count
        self.abs_sum.merge(other.abs_sum)
        self.sq_sum.merge(other.sq_sum)
        return self

    def metrics(self) -> dict[str, float | None]:
        if not self.count:
            return {}
        return {
            "mae": self.abs_sum.value() / self.count,
            "rmse": math.sqrt(self.sq_sum.value() / self.count),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "n": self.count,
            "abs_sum": self.abs_sum.to_json(),
            "sq_sum": self.sq_sum.to_json(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegressionPerformance:
        out = cls()
        out.count = int(data["n"])
        out.abs_sum = ExactSum.from_json(data["abs_sum"])
        out.sq_sum = ExactSum.from_json(data["sq_sum"])
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RegressionPerformance):
            return NotImplemented
        return (self.count, self.abs_sum, self.sq_sum) == (
            other.count,
            other.abs_sum,
            other.sq_sum,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RegressionPerformance(n={self.count})"


_CLASSES: Final[
    dict[str, type[BinaryPerformance | MulticlassPerformance | RegressionPerformance]]
] = {
    "binary": BinaryPerformance,
    "multiclass": MulticlassPerformance,
    "regression": RegressionPerformance,
}


def new_accumulator(
    task: Task,
) -> BinaryPerformance | MulticlassPerformance | RegressionPerformance:
    """An empty accumulator for ``task``.

    Examples
    --------
    >>> new_accumulator("regression").n
    0
    """
    try:
        return _CLASSES[task]()
    except KeyError:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}") from None


def accumulator_from_dict(
    data: Mapping[str, Any],
) -> BinaryPerformance | MulticlassPerformance | RegressionPerformance:
    """Rebuild any accumulator from its ``to_dict()`` (the ``"task"`` key says which).

    Examples
    --------
    >>> acc = MulticlassPerformance().add(["x"], ["y"])
    >>> accumulator_from_dict(acc.to_dict()) == acc
    True
    """
    task = data.get("task")
    if task not in _CLASSES:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    return _CLASSES[task].from_dict(data)
