"""Reference profiles with the model's reference performance, a row sample and metadata."""

from __future__ import annotations

import csv
import functools
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from stream_drift.cli import cli
from stream_drift.pipeline.reference import (
    DEFAULT_SAMPLE_ROWS,
    PUBLISH_LIMIT_BYTES,
    ReferenceError,
    ReferenceProfile,
    ReferenceSample,
    size_warning,
)
from stream_drift.pipeline.reference import build_reference as _build_reference
from stream_drift.tools.datasets import build_reference_from_file as _build_from_file

# Profiles here are built as `reference build` builds them: with its default row sample (the
# Python API keeps none unless asked).
build_reference = functools.partial(_build_reference, sample_rows=DEFAULT_SAMPLE_ROWS)
build_reference_from_file = functools.partial(_build_from_file, sample_rows=DEFAULT_SAMPLE_ROWS)

N = 600


def _rows(seed: int = 0, n: int = N) -> list[dict[str, Any]]:
    """Rows of a binary classifier: an id, two features, a score and a 0/1 label; a few
    missing scores and labels."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        y = int(rng.random() < 0.3)
        score = float(np.clip(0.35 * y + rng.uniform(0, 0.7), 0, 1).round(4))
        rows.append(
            {
                "rid": float(i),
                "amount": round(float(rng.gamma(2.0, 30.0)), 2),
                "country": str(rng.choice(["DE", "FR", "GB"])),
                "score": None if i % 97 == 5 else score,
                "y": None if i % 89 == 7 else y,
            }
        )
    return rows


def _write(path: Path, rows: list[dict[str, Any]], *, events: bool = False) -> Path:
    if path.suffix == ".csv":
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows([{k: "" if v is None else v for k, v in r.items()} for r in rows])
    elif path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        objs = (
            [
                {
                    "model": "fraud",
                    "features": {k: r[k] for k in ("rid", "amount", "country")},
                    "prediction": r["score"],
                    "y": r["y"],
                }
                for r in rows
            ]
            if events
            else rows
        )
        path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


def _binary_by_hand(rows: list[dict[str, Any]]) -> dict[str, float]:
    pairs = [(r["score"], r["y"]) for r in rows if r["score"] is not None and r["y"] is not None]
    p = np.array([s for s, _ in pairs])
    y = np.array([t for _, t in pairs], dtype=bool)
    hat = p >= 0.5
    tp, fp, fn = int((hat & y).sum()), int((hat & ~y).sum()), int((~hat & y).sum())
    q = np.clip(p, 1e-15, 1 - 1e-15)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    # Exact Mann-Whitney AUC (ties ½), as an independent check of the grid AUC.
    pos, neg = p[y], p[~y]
    auc = float(((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean())
    return {
        "n": len(pairs),
        "accuracy": float((hat == y).mean()),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall),
        "log_loss": float(-np.mean(np.where(y, np.log(q), np.log(1 - q)))),
        "roc_auc": auc,
    }


def test_binary_reference_performance_matches_an_independent_computation(tmp_path: Path) -> None:
    rows = _rows()
    ref = build_reference_from_file(
        _write(tmp_path / "train.csv", rows), model="fraud", prediction=["score"], label="y"
    )
    expected = _binary_by_hand(rows)
    perf = ref.performance
    assert perf is not None
    assert (perf.task, perf.n, perf.label, perf.prediction) == (
        "binary",
        expected.pop("n"),
        "y",
        "score",
    )
    assert perf.n == sum(r["score"] is not None and r["y"] is not None for r in rows) < N
    auc = expected.pop("roc_auc")
    for name, value in expected.items():
        assert perf.metrics[name] == pytest.approx(value, rel=1e-12), name
    # Scores have 4 decimals: pairs share a grid bin, the error stays within 1/1000.
    assert perf.metrics["roc_auc"] == pytest.approx(auc, abs=1e-3)
    # The label is never a series nor in the sample; the prediction is not in the sample.
    assert sorted(ref.series) == ["amount", "country", "prediction", "rid"]
    assert ref.sample is not None and ref.sample.features == ("amount", "country", "rid")


def test_regression_and_multiclass_performance() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(10, 2, 500)
    pred = y + rng.normal(0, 1, 500)
    pred[::50] = np.nan  # missing predictions are left out
    ref = build_reference(
        {"x": rng.normal(size=500), "yhat": pred, "target": y},
        model="m",
        prediction=["yhat"],
        label="target",
    )
    keep = ~np.isnan(pred)
    err = pred[keep] - y[keep]
    assert ref.performance is not None
    assert (ref.performance.task, ref.performance.n) == ("regression", int(keep.sum()))
    assert ref.performance.metrics["mae"] == pytest.approx(np.abs(err).mean(), rel=1e-12)
    assert ref.performance.metrics["rmse"] == pytest.approx(math.sqrt((err**2).mean()), rel=1e-12)

    labels = list(rng.choice(["cat", "dog", "owl"], 300))
    guess = [lab if i % 4 else "dog" for i, lab in enumerate(labels)]
    ref = build_reference(
        {"x": rng.normal(size=300), "prediction": guess, "label": labels}, model="m", label="label"
    )
    assert ref.performance is not None and ref.performance.task == "multiclass"
    accuracy = sum(g == lab for g, lab in zip(guess, labels, strict=True)) / 300
    assert ref.performance.metrics["accuracy"] == pytest.approx(accuracy, rel=1e-12)
    assert sorted(ref.series) == ["prediction", "x"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"label": "nope", "prediction": ["score"]}, r"label column 'nope' \(--label\) not found"),
        ({"label": "y"}, r"--label y needs the model's prediction column: .*--prediction COL"),
        (
            {"label": "y", "prediction": ["score", "amount"]},
            r"--label needs one prediction column to score, got 2",
        ),
        ({"label": "y", "prediction": ["y"]}, r"also named as a series"),
    ],
)
def test_label_errors_name_the_option(kwargs: dict[str, Any], match: str) -> None:
    rows = _rows(n=50)
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    with pytest.raises(ReferenceError, match=match):
        build_reference(columns, model="m", **kwargs)


def test_no_labelled_row_is_an_error() -> None:
    with pytest.raises(ReferenceError, match="no row has both a prediction"):
        build_reference(
            {"x": [1.0, 2.0], "p": [0.1, None], "y": [None, 1]},
            model="m",
            prediction=["p"],
            label="y",
        )


def test_every_format_gives_the_same_profile_with_label_and_sample(tmp_path: Path) -> None:
    rows = _rows(seed=5)
    files = {
        "csv": _write(tmp_path / "t.csv", rows),
        "parquet": _write(tmp_path / "t.parquet", rows),
        "rows": _write(tmp_path / "rows.jsonl", rows),
    }
    profiles = {
        fmt: build_reference_from_file(p, model="fraud", prediction=["score"], label="y")
        for fmt, p in files.items()
    }
    # Events: the label is a top-level field next to features and prediction.
    renamed = [{**r, "prediction": r["score"]} for r in rows]
    profiles["events"] = build_reference_from_file(
        _write(tmp_path / "ev.jsonl", renamed, events=True), model="fraud", label="y"
    )
    assert profiles["events"].series["prediction"].source == "prediction"
    assert len({p.id for fmt, p in profiles.items() if fmt != "events"}) == 1
    samples = {fmt: p.sample for fmt, p in profiles.items()}
    assert len({json.dumps(s.to_dict()) for s in samples.values() if s}) == 1
    perfs = {fmt: p.performance.content() for fmt, p in profiles.items() if p.performance}
    assert len(perfs) == 4 and len({json.dumps(v) for v in perfs.values()}) == 1


def test_sample_is_a_seeded_bounded_set_of_real_rows() -> None:
    rows = _rows(seed=1, n=2000)
    columns: dict[str, Any] = {k: [r[k] for r in rows] for k in rows[0]}
    columns["rid"] = np.array(columns["rid"])
    ref = build_reference(columns, model="m", prediction=["score"], exclude=["y"], seed=7)
    again = build_reference(columns, model="m", prediction=["score"], exclude=["y"], seed=7)
    other = build_reference(columns, model="m", prediction=["score"], exclude=["y"], seed=8)
    assert ref.sample is not None and other.sample is not None
    assert ref.id == again.id and ref.sample == again.sample
    assert ref.id != other.id and ref.sample.rows != other.sample.rows
    assert (len(ref.sample.rows), ref.sample.population, ref.sample.seed) == (1000, 2000, 7)
    rids = [int(r["rid"]) for r in ref.sample.rows]
    assert rids == sorted(set(rids))  # distinct, in data-set order
    for row in ref.sample.rows:  # each a real row, features only
        src = rows[int(row["rid"])]
        assert row == {k: src[k] for k in ("amount", "country", "rid")}
    small = build_reference(columns, model="m", sample_rows=3000, exclude=["y"])
    assert small.sample is not None and len(small.sample.rows) == 2000  # all rows
    assert build_reference(columns, model="m", sample_rows=0).sample is None


def test_sample_is_uniform() -> None:
    # Inclusion frequency of each of 20 rows over 4,000 seeds: k/n = 0.25 each.
    columns = {"i": np.arange(20.0)}
    hits: Counter[int] = Counter()
    for seed in range(4000):
        s = ReferenceSample.draw(columns, 5, seed=seed)
        assert s is not None
        hits.update(int(r["i"]) for r in s.rows)
    shares = np.array([hits[i] / 4000 for i in range(20)])
    # sd of one share = sqrt(.25 * .75 / 4000) = 0.0068: 5 sd.
    assert np.abs(shares - 0.25).max() < 0.035, shares


def test_sample_values_are_what_an_event_carries() -> None:
    s = ReferenceSample.draw(
        {
            "x": np.array([1.5, np.nan, np.inf]),
            "c": ["a", None, np.int64(3)],
            "b": [True, False, True],
        },
        10,
    )
    assert s is not None
    assert [tuple(r.values()) for r in s.rows] == [
        (True, "a", 1.5),
        (False, None, None),
        (True, 3, None),
    ]
    assert ReferenceSample.draw({"a": [1.0, 2.0], "b": [1.0]}, 10) is None  # not rows


def test_old_profiles_keep_their_id_and_new_fields_enter_it(tmp_path: Path) -> None:
    from tests.test_reference import OLD_PROFILE

    old = ReferenceProfile.from_dict(json.loads(OLD_PROFILE))
    assert old.id == "sha256:4a52692237845370"
    assert (old.performance, old.sample, old.metadata) == (None, None, {})
    assert "sample" not in old.content() and "performance" not in old.content()

    columns = {"x": np.arange(300.0), "p": np.tile([0.1, 0.8, 0.6], 100), "y": [0, 1, 0] * 100}
    plain = build_reference(columns, model="m", prediction=["p"], exclude=["y"], sample_rows=0)
    labelled = build_reference(columns, model="m", prediction=["p"], label="y", sample_rows=0)
    sampled = build_reference(columns, model="m", prediction=["p"], exclude=["y"])
    assert len({plain.id, labelled.id, sampled.id}) == 3
    meta = build_reference(
        columns,
        model="m",
        prediction=["p"],
        exclude=["y"],
        sample_rows=0,
        metadata={"owner": "risk", "intended_use": "fraud triage", "description": "v7"},
    )
    assert meta.id == plain.id  # metadata describes, it is not what drift is judged against

    path = labelled.save(tmp_path / "ref.json")
    loaded = ReferenceProfile.load(path)
    assert loaded.id == labelled.id and loaded.performance == labelled.performance
    path = sampled.save(tmp_path / "s.json")
    assert ReferenceProfile.load(path).sample == sampled.sample
    path = meta.save(tmp_path / "m.json")
    assert ReferenceProfile.load(path).metadata == meta.metadata
    data = json.loads(sampled.to_json())
    data["sample"]["rows"][0][0] = 1e9
    with pytest.raises(ReferenceError, match="does not match its content"):
        ReferenceProfile.from_dict(data)
    data = json.loads(labelled.to_json())
    data["performance"]["metrics"]["accuracy"] = 1.0
    with pytest.raises(ReferenceError, match="does not match its content"):
        ReferenceProfile.from_dict(data)
    data = json.loads(meta.to_json())
    data["metadata"]["owner"] = "someone else"
    assert ReferenceProfile.from_dict(data).metadata["owner"] == "someone else"
    data["metadata"]["colour"] = "red"
    with pytest.raises(ReferenceError, match="unknown key"):
        ReferenceProfile.from_dict(data)


def test_sample_json_is_one_line_per_row_and_round_trips() -> None:
    columns = {"x": np.arange(50.0), "s": ["\x00sample rows\x00", "b"] * 25}
    ref = build_reference(columns, model="m", sample_rows=4)
    text = ref.to_json()
    assert json.loads(text) == ref.to_dict()
    # A category holding the marker: the plain layout, still the same JSON.
    assert text == json.dumps(ref.to_dict(), indent=1)
    ref = build_reference({"x": np.arange(50.0), "s": ["a", "b"] * 25}, model="m", sample_rows=4)
    text = ref.to_json()
    assert json.loads(text) == ref.to_dict()
    assert sum(line.startswith("   [") for line in text.splitlines()) == 4


def test_size_of_a_1000_row_sample_of_10_features() -> None:
    rng = np.random.default_rng(0)
    columns = {f"f{i}": rng.normal(size=5000) for i in range(10)}
    ref = build_reference(columns, model="m")
    assert ref.sample is not None and len(ref.sample.rows) == 1000
    size = len(ref.to_json().encode())
    assert size < PUBLISH_LIMIT_BYTES // 3 and size_warning(ref) is None
    wide = build_reference({f"f{i}": rng.normal(size=1000) for i in range(60)}, model="m")
    warning = size_warning(wide)
    assert warning is not None and "--sample-rows" in warning and "message.max.bytes" in warning


def test_cli_reference_build_with_label_sample_and_metadata(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.csv", _rows())
    out = tmp_path / "ref.json"
    args = ["reference", "build", "--model", "fraud", "--from", str(train)]
    result = CliRunner().invoke(
        cli,
        [
            *args,
            *("--prediction", "score", "--label", "y", "--sample-rows", "50", "--seed", "3"),
            *("--owner", "risk-team", "--intended-use", "card fraud", "-o", str(out)),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "50 sampled row(s), binary performance over" in result.output
    ref = ReferenceProfile.load(out)
    assert ref.sample is not None and (len(ref.sample.rows), ref.sample.seed) == (50, 3)
    assert ref.metadata == {"owner": "risk-team", "intended_use": "card fraud"}
    assert ref.performance is not None and ref.performance.task == "binary"

    result = CliRunner().invoke(cli, [*args, "--label", "label", "-o", str(out)])
    assert result.exit_code == 2
    assert "label column 'label' (--label) not found" in result.output
    result = CliRunner().invoke(cli, [*args, "--label", "y", "-o", str(out)])
    assert result.exit_code == 2 and "--prediction COL" in result.output
    result = CliRunner().invoke(cli, [*args, "--sample-rows", "-1", "-o", str(out)])
    assert result.exit_code == 2 and "--sample-rows" in result.output
