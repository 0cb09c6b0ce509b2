"""Realised-performance accumulators against independent computations, and their algebra."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import mannwhitneyu

from stream_drift.stats.performance import (
    AUC_BINS,
    LOG_LOSS_EPS,
    MAX_CLASSES,
    OTHER_CLASS,
    BinaryPerformance,
    ExactSum,
    MulticlassPerformance,
    RegressionPerformance,
    accumulator_from_dict,
    errors,
    infer_task,
    new_accumulator,
)

FAST = settings(max_examples=60, deadline=None)


# --- independent computations ----------------------------------------------------------------


def _exact_auc(scores: np.ndarray, y: np.ndarray) -> float:
    """Mann--Whitney U / (P N) by scipy (ties ½)."""
    u = mannwhitneyu(scores[y], scores[~y], alternative="two-sided", method="asymptotic")
    return float(u.statistic) / (int(y.sum()) * int((~y).sum()))


def _binary_by_hand(scores: np.ndarray, y: np.ndarray) -> dict[str, float]:
    hit = scores >= 0.5
    tp, fp = np.sum(hit & y), np.sum(hit & ~y)
    fn = np.sum(~hit & y)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    q = np.clip(np.where(y, scores, 1 - scores), 1e-15, 1 - 1e-15)
    ll = -np.mean(np.log(q))
    return {
        "accuracy": float(np.mean(hit == y)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "log_loss": float(ll),
    }


def _multiclass_by_hand(preds: list[str], labels: list[str]) -> dict[str, float]:
    classes = sorted(set(preds) | set(labels))
    out = {"accuracy": float(np.mean([a == b for a, b in zip(preds, labels, strict=True)]))}
    f1s = []
    for c in classes:
        tp = sum(p == c and y == c for p, y in zip(preds, labels, strict=True))
        npred = sum(p == c for p in preds)
        ntrue = sum(y == c for y in labels)
        prec = tp / npred if npred else 0.0
        rec = tp / ntrue if ntrue else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        f1s.append(f1)
        out[f"precision:{c}"], out[f"recall:{c}"], out[f"f1:{c}"] = prec, rec, f1
    out["macro_f1"] = float(np.mean(f1s))
    return out


# --- task inference and error stream ---------------------------------------------------------


@pytest.mark.parametrize(
    ("preds", "labels", "task"),
    [
        ([0.1, 0.9], [0, 1], "binary"),
        ([0.1, 0.9], [True, False], "binary"),
        ([0.1, 0.9], ["true", "false"], "binary"),
        ([0, 1], [1, 1], "binary"),  # hard 0/1 predictions: decided binary
        ([1.0, 0.0], [1.0, 0.0], "binary"),  # 0/1 "regression": decided binary
        ([0.1, 1.2], [0, 1], "regression"),  # a score above 1
        ([0.1, 0.9], [0, 2], "regression"),  # a label other than 0/1
        ([3.5, -1.0], [4.0, 0.0], "regression"),
        (["a", "b"], ["a", "c"], "multiclass"),
        (["true", "false"], [True, False], "multiclass"),  # bool labels, string predictions
        ([0.2, 0.7], ["cat", "dog"], "multiclass"),
        ([True, False], [True, True], "multiclass"),  # bools are not numbers
    ],
)
def test_infer_task(preds: list, labels: list, task: str) -> None:
    assert infer_task(preds, labels) == task


def test_infer_task_refuses_empty_or_unequal() -> None:
    with pytest.raises(ValueError, match="at least one"):
        infer_task([], [])
    with pytest.raises(ValueError, match="2 predictions but 1 labels"):
        infer_task([0.1, 0.2], [1])


def test_errors_per_task() -> None:
    assert errors("binary", [0.5, 0.49, 0.99, 0.0], [1, 1, "false", False]).tolist() == [
        0.0,
        1.0,
        1.0,
        0.0,
    ]
    assert errors("multiclass", ["a", "b", True, 1.0], ["a", "c", "true", "1"]).tolist() == [
        0.0,
        1.0,
        0.0,
        0.0,
    ]
    assert errors("regression", [1.0, -2.0], [1.5, 2.0]).tolist() == [0.5, 4.0]
    with pytest.raises(ValueError, match="unknown task"):
        errors("ranking", [1], [1])  # type: ignore[arg-type]


@given(
    st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=1, max_size=50),
)
@FAST
def test_binary_error_mean_is_one_minus_accuracy(pairs: list[tuple[float, bool]]) -> None:
    preds, labels = zip(*pairs, strict=True)
    err = errors("binary", preds, labels)
    acc = BinaryPerformance().add(preds, labels).metrics()["accuracy"]
    assert acc is not None
    assert math.isclose(1.0 - float(err.mean()), acc)


# --- binary ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_binary_metrics_match_independent_computation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 3000))
    y = rng.random(n) < rng.uniform(0.05, 0.95)
    scores = np.clip(rng.normal(0.5 + 0.2 * (y - 0.5), 0.25), 0.0, 1.0)
    acc = BinaryPerformance()
    for chunk in np.array_split(np.arange(n), 4):  # batches add up
        acc.add(scores[chunk], y[chunk].tolist())
    m = acc.metrics()
    want = _binary_by_hand(scores, y)
    for name, value in want.items():
        assert m[name] == pytest.approx(value, rel=1e-12, abs=1e-15), name
    exact = _exact_auc(scores, y)
    bound = acc.auc_error_bound()
    assert m["roc_auc"] is not None and bound is not None
    assert abs(m["roc_auc"] - exact) <= bound + 1e-12
    # With scores spread over [0, 1] the bound is about 1 / (2 * AUC_BINS) or less.
    assert bound < 2.0 / AUC_BINS


@given(
    st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=2, max_size=200),
)
@FAST
def test_grid_auc_within_stated_bound(pairs: list[tuple[float, bool]]) -> None:
    scores = np.array([s for s, _ in pairs])
    y = np.array([b for _, b in pairs])
    acc = BinaryPerformance().add(scores, y.tolist())
    auc, bound = acc.roc_auc(), acc.auc_error_bound()
    if y.all() or not y.any():
        assert auc is None and bound is None
        return
    assert auc is not None and bound is not None
    assert abs(auc - _exact_auc(scores, y)) <= bound + 1e-12


def test_grid_auc_is_exact_when_no_bin_holds_both_classes() -> None:
    centres = (np.arange(AUC_BINS) + 0.5) / AUC_BINS
    rng = np.random.default_rng(1)
    y = rng.random(AUC_BINS) < 0.3
    acc = BinaryPerformance().add(centres, y.tolist())
    assert acc.auc_error_bound() == 0.0
    assert acc.roc_auc() == pytest.approx(_exact_auc(centres, y), abs=1e-12)


def test_binary_worked_example_and_clipping() -> None:
    # Scores 1.0 and 0.0 for the wrong class: each costs -log(1e-15).
    m = BinaryPerformance().add([1.0, 0.0, 0.75], [0, 1, 1]).metrics()
    assert m["log_loss"] == pytest.approx((2 * -math.log(LOG_LOSS_EPS) - math.log(0.75)) / 3)
    assert m["accuracy"] == pytest.approx(1 / 3)
    assert (m["precision"], m["recall"]) == (0.5, 0.5)
    # By hand, pairs (positive, negative): (0.0, 1.0) -> 0, (0.75, 1.0) -> 0: AUC 0.
    assert m["roc_auc"] == 0.0


def test_binary_degenerate_cases() -> None:
    assert BinaryPerformance().metrics() == {}
    m = BinaryPerformance().add([0.1, 0.2], [0, 0]).metrics()
    assert m["roc_auc"] is None
    assert (m["precision"], m["recall"], m["f1"]) == (0.0, 0.0, 0.0)  # zero_division=0
    with pytest.raises(ValueError, match=r"scores in \[0, 1\]"):
        BinaryPerformance().add([1.5], [1])
    with pytest.raises(ValueError, match="binary label"):
        BinaryPerformance().add([0.5], ["cat"])
    with pytest.raises(ValueError, match="finite"):
        BinaryPerformance().add([math.nan], [1])


# --- multiclass ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_multiclass_metrics_match_independent_computation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 9))
    classes = [f"c{i}" for i in range(k)]
    n = int(rng.integers(10, 500))
    labels = rng.choice(classes, n).tolist()
    preds = [y if rng.random() < 0.6 else str(rng.choice(classes)) for y in labels]
    m = MulticlassPerformance().add(preds[: n // 2], labels[: n // 2])
    m.add(preds[n // 2 :], labels[n // 2 :])
    got = m.metrics()
    want = _multiclass_by_hand(preds, labels)
    assert set(got) == set(want)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=1e-12), name


def test_multiclass_per_class_only_for_small_label_sets() -> None:
    names = [f"k{i:02d}" for i in range(11)]
    got = MulticlassPerformance().add(names, names).metrics()
    assert set(got) == {"accuracy", "macro_f1"}
    assert got["macro_f1"] == 1.0


def test_multiclass_pools_beyond_max_classes_whatever_the_order() -> None:
    rng = np.random.default_rng(3)
    names = [f"c{i:03d}" for i in range(MAX_CLASSES + 20)]
    labels = rng.choice(names, 2000).tolist()
    preds = [y if rng.random() < 0.7 else str(rng.choice(names)) for y in labels]
    forward = MulticlassPerformance().add(preds, labels)
    backward = MulticlassPerformance()
    for i in range(len(preds) - 100, -1, -100):
        backward.add(preds[i : i + 100], labels[i : i + 100])
    assert forward == backward
    assert forward.kept == set(sorted(names)[:MAX_CLASSES])
    assert forward.n == 2000
    # Accuracy stays exact (counted before pooling).
    exact = np.mean([a == b for a, b in zip(preds, labels, strict=True)])
    assert forward.metrics()["accuracy"] == pytest.approx(exact)
    pooled = sum(c for (y, p), c in forward.confusion.items() if OTHER_CLASS in (y, p))
    want = sum(
        1
        for y, p in zip(labels, preds, strict=True)
        if y not in forward.kept or p not in forward.kept
    )
    assert pooled == want


# --- regression ------------------------------------------------------------------------------


def test_regression_matches_numpy_and_is_exactly_rounded() -> None:
    rng = np.random.default_rng(7)
    preds = rng.normal(0, 100, 5000)
    labels = rng.normal(0, 100, 5000)
    acc = RegressionPerformance().add(preds[:1234], labels[:1234]).add(preds[1234:], labels[1234:])
    m = acc.metrics()
    diff = preds - labels
    assert m["mae"] == pytest.approx(float(np.mean(np.abs(diff))), rel=1e-13)
    assert m["rmse"] == pytest.approx(float(np.sqrt(np.mean(diff**2))), rel=1e-13)
    assert m["mae"] == math.fsum(np.abs(diff).tolist()) / 5000  # the sum is exact
    assert RegressionPerformance().metrics() == {}
    with pytest.raises(ValueError, match="finite"):
        RegressionPerformance().add([math.inf], [1.0])


# --- exact sums ------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@given(st.lists(finite, max_size=40), st.lists(finite, max_size=40))
@FAST
def test_exact_sum_is_exact_and_merges_exactly(a: list[float], b: list[float]) -> None:
    want = sum((Fraction(x) for x in a + b), Fraction(0))
    s = ExactSum().add(a).merge(ExactSum().add(b))
    got = Fraction(s.mant) * Fraction(2) ** s.exp
    assert got == want
    assert s == ExactSum().add(a + b) == ExactSum().add(b).add(a)
    assert ExactSum.from_json(json.loads(json.dumps(s.to_json()))) == s
    if abs(want) < 1e300:
        assert s.value() == float(want)  # correctly rounded


def test_exact_sum_many_values_of_one_exponent() -> None:
    # 2**20 values with 53-bit mantissas sharing an exponent: no int64 overflow.
    v = np.full(1 << 20, 1.0 - 2.0**-53)
    assert ExactSum().add(v).value() == float(Fraction(1 - Fraction(1, 2**53)) * (1 << 20))


# --- accumulator algebra (hypothesis) --------------------------------------------------------

scores = st.floats(0, 1)
binary_pairs = st.lists(st.tuples(scores, st.sampled_from([0, 1, True, False, "true"])))
multi_pairs = st.lists(
    st.tuples(
        st.sampled_from([*"abcdef", 1.0, True]),
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=2),
    ),
    max_size=80,
)
reg_pairs = st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)))
TASK_PAIRS = {"binary": binary_pairs, "multiclass": multi_pairs, "regression": reg_pairs}


def _acc(
    task: str, pairs: list[tuple]
) -> BinaryPerformance | MulticlassPerformance | RegressionPerformance:
    acc = new_accumulator(task)  # type: ignore[arg-type]
    if pairs:
        preds, labels = zip(*pairs, strict=True)
        acc.add(list(preds), list(labels))
    return acc


@pytest.mark.parametrize("task", list(TASK_PAIRS))
@given(data=st.data())
@FAST
def test_merge_equals_add_of_concatenation_and_is_associative(
    task: str, data: st.DataObject
) -> None:
    strategy = TASK_PAIRS[task]
    a, b, c = (data.draw(strategy) for _ in range(3))
    whole = _acc(task, a + b + c)
    left = _acc(task, a).merge(_acc(task, b)).merge(_acc(task, c))  # type: ignore[arg-type]
    right = _acc(task, a).merge(_acc(task, b).merge(_acc(task, c)))  # type: ignore[arg-type]
    swapped = _acc(task, c).merge(_acc(task, a)).merge(_acc(task, b))  # type: ignore[arg-type]
    assert whole == left == right == swapped
    assert whole.n == len(a) + len(b) + len(c)
    assert whole.metrics() == left.metrics()


@pytest.mark.parametrize("task", list(TASK_PAIRS))
@given(data=st.data())
@FAST
def test_state_round_trips_through_json(task: str, data: st.DataObject) -> None:
    acc = _acc(task, data.draw(TASK_PAIRS[task]))
    back = accumulator_from_dict(json.loads(json.dumps(acc.to_dict())))
    assert back == acc
    assert back.metrics() == acc.metrics()
    assert type(back) is type(acc)


def test_multiclass_merge_pools_exactly_beyond_max_classes() -> None:
    names = [f"n{i:03d}" for i in range(MAX_CLASSES * 2)]
    a = MulticlassPerformance().add(names[::2], names[1::2])
    b = MulticlassPerformance().add(names[1::2], names[::2])
    whole = MulticlassPerformance().add(names[::2] + names[1::2], names[1::2] + names[::2])
    assert MulticlassPerformance.from_dict(a.to_dict()).merge(b) == whole


def test_from_dict_refuses_unknown_task() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        accumulator_from_dict({"task": "ranking"})
    with pytest.raises(ValueError, match="unknown task"):
        new_accumulator("ranking")  # type: ignore[arg-type]
