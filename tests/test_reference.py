"""Reference profiles: build, kinds, naming, content-hash id, save/load and its errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stream_drift.pipeline.reference import (
    NEAR_CONSTANT_SHARE,
    ReferenceError,
    ReferenceProfile,
    build_reference,
)
from stream_drift.stats.histogram import Histogram


def _columns(seed: int = 0, n: int = 1000) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "amount": rng.lognormal(3, 0.8, n),
        "age": rng.integers(18, 90, n).astype(np.float64),
        "country": rng.choice(["DE", "FR", "US"], n).tolist(),
        "score": rng.uniform(0, 1, n),
        "p_fraud": rng.uniform(0, 1, n),
        "label": rng.integers(0, 2, n).astype(np.float64),
        "event_id": [f"e{i}" for i in range(n)],
    }


def test_kinds_are_inferred() -> None:
    ref = build_reference(_columns(), model="m")
    assert {n: s.kind for n, s in ref.series.items()} == {
        "amount": "numeric",
        "age": "numeric",
        "country": "categorical",
        "score": "numeric",
        "p_fraud": "numeric",
    }
    # Columns describing events rather than inputs are left out by default.
    assert "label" not in ref.series and "event_id" not in ref.series


def test_kinds_can_be_overridden() -> None:
    cols = _columns()
    cols["zip"] = ["10115", "75001", "10115"] * 333 + ["99999"]
    ref = build_reference(cols, model="m", categorical=["age"], numeric=["zip"])
    assert ref.series["age"].kind == "categorical"
    assert ref.series["zip"].kind == "numeric"
    # Forced numeric on strings: nothing parses, every value is of the wrong type (not missing).
    zip_ = ref.series["zip"].histogram
    assert (zip_.missing, zip_.mismatched) == (0, 1000)
    assert ReferenceProfile.from_dict(ref.to_dict()).series["zip"].histogram == zip_
    assert ref.series["age"].binning.categories[0].isdigit()  # 40.0 is the category "40"
    # Naming an excluded column forces it in.
    assert "label" in build_reference(cols, model="m", categorical=["label"]).series


def test_exclude_overrides_the_default() -> None:
    ref = build_reference(_columns(), model="m", exclude=["amount"])
    assert "amount" not in ref.series
    assert "label" in ref.series and "event_id" in ref.series


def test_one_prediction_is_series_prediction() -> None:
    ref = build_reference(_columns(), model="m", prediction=["score"])
    assert "score" not in ref.series
    s = ref.series["prediction"]
    assert (s.role, s.source, s.kind) == ("prediction", "score", "numeric")
    assert ref.series["amount"].role == "feature"


def test_several_predictions_are_prediction_dot_column() -> None:
    ref = build_reference(_columns(), model="m", prediction=["score", "p_fraud"])
    assert "prediction" not in ref.series
    assert {n: (s.role, s.source) for n, s in ref.series.items() if s.role == "prediction"} == {
        "prediction.score": ("prediction", "score"),
        "prediction.p_fraud": ("prediction", "p_fraud"),
    }


def test_columns_named_like_predictions_are_predictions() -> None:
    cols = {"a": np.arange(100.0), "prediction.p": np.arange(100.0), "prediction": ["x"] * 100}
    ref = build_reference(cols, model="m")
    assert {n: s.role for n, s in ref.series.items()} == {
        "a": "feature",
        "prediction.p": "prediction",
        "prediction": "prediction",
    }


def test_two_columns_making_one_series_is_an_error() -> None:
    cols = {"score": np.arange(100.0), "prediction": np.arange(100.0)}
    with pytest.raises(ReferenceError, match=r"'score' and 'prediction'|'prediction' and 'score'"):
        build_reference(cols, model="m", prediction=["score"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prediction": ["nope"]}, "column 'nope' not found; available: age, amount"),
        ({"categorical": ["nope"]}, "column 'nope' not found"),
        ({"numeric": ["nope"]}, "column 'nope' not found"),
        ({"categorical": ["age"], "numeric": ["age"]}, r"both categorical and numeric: \['age'\]"),
        ({"model": ""}, "model must be a non-empty name"),
        ({"exclude": list(_columns())}, "no column left to profile"),
    ],
)
def test_build_errors_name_the_problem(kwargs: dict[str, Any], match: str) -> None:
    kwargs = {"model": "m", **kwargs}
    with pytest.raises(ReferenceError, match=match):
        build_reference(_columns(), **kwargs)


def test_missing_values_are_counted() -> None:
    cols = {
        "x": np.array([1.0, np.nan, 3.0, np.inf, 5.0]),
        "c": ["a", None, "b", None, float("nan")],
    }
    ref = build_reference(cols, model="m")
    assert (ref.series["x"].histogram.n, ref.series["x"].histogram.missing) == (3, 2)
    assert (ref.series["c"].histogram.n, ref.series["c"].histogram.missing) == (2, 3)
    assert ref.series["x"].histogram.missing_ratio == pytest.approx(0.4)


def test_histograms_count_every_value() -> None:
    cols = _columns()
    ref = build_reference(cols, model="m")
    for name, s in ref.series.items():
        assert s.histogram == Histogram(s.histogram.binning).add(cols[name])
        assert s.histogram.total == 1000
        # Deciles, plus the two outer bins of a tied column such as the integer "age".
        assert s.binning.n_coarse <= 12


def test_id_depends_on_content_only() -> None:
    a = build_reference(_columns(), model="m", model_version="1", source="train.csv")
    b = build_reference(_columns(), model="m", model_version="1", source="elsewhere.parquet")
    b.created_at = "1999-01-01T00:00:00+00:00"
    assert a.id == b.id
    assert a.id.startswith("sha256:") and len(a.id) == len("sha256:") + 16
    cols = _columns()
    cols["amount"] = cols["amount"].copy()
    cols["amount"][0] += 1000.0  # one value moves to another bin
    assert build_reference(cols, model="m", model_version="1").id != a.id
    assert build_reference(_columns(), model="m", model_version="2").id != a.id
    assert build_reference(_columns(), model="other", model_version="1").id != a.id
    assert build_reference(_columns(), model="m", model_version="1", fine_bins=50).id != a.id
    assert build_reference(_columns(seed=1), model="m", model_version="1").id != a.id


def test_key() -> None:
    assert build_reference(_columns(), model="fraud", model_version="7").key == "fraud/7"


def test_save_load_round_trip(tmp_path: Path) -> None:
    ref = build_reference(_columns(), model="m", model_version="3", prediction=["score"])
    ref.source = "train.csv"
    path = ref.save(tmp_path / "m.ref.json")
    data = json.loads(path.read_text())
    assert data["id"] == ref.id
    assert data["format"] == 1
    loaded = ReferenceProfile.load(path)
    assert loaded.id == ref.id
    assert (loaded.model, loaded.model_version, loaded.source) == ("m", "3", "train.csv")
    assert loaded.created_at == ref.created_at
    for name, s in ref.series.items():
        t = loaded.series[name]
        assert (t.role, t.source, t.kind) == (s.role, s.source, s.kind)
        assert t.histogram == s.histogram
        assert t.histogram.binning == s.histogram.binning


def _saved(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    path = build_reference(_columns(), model="m").save(tmp_path / "r.json")
    return path, json.loads(path.read_text())


def test_load_rejects_a_tampered_file(tmp_path: Path) -> None:
    path, data = _saved(tmp_path)
    data["series"]["amount"]["counts"][0] += 1
    path.write_text(json.dumps(data))
    with pytest.raises(ReferenceError, match=r"does not match its content.*edited or corrupted"):
        ReferenceProfile.load(path)


def test_load_accepts_edits_outside_the_content(tmp_path: Path) -> None:
    path, data = _saved(tmp_path)
    data["created_at"] = "2000-01-01T00:00:00+00:00"
    data["source"] = "renamed.csv"
    path.write_text(json.dumps(data))
    assert ReferenceProfile.load(path).id == data["id"]


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.update(format=2), "reference format 2 is not supported"),
        (lambda d: d.pop("format"), "format None is not supported"),
        (lambda d: d.pop("series"), "not a valid reference profile"),
        (lambda d: d.pop("model"), "not a valid reference profile"),
        (
            lambda d: d["series"]["country"]["binning"].update(kind="weird"),
            "not a valid reference profile.*unknown binning kind",
        ),
        (
            lambda d: d["series"]["amount"].update(counts=[1, 2]),
            "not a valid reference profile",
        ),
    ],
)
def test_load_rejects_a_wrong_format(tmp_path: Path, edit: Any, match: str) -> None:
    path, data = _saved(tmp_path)
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ReferenceError, match=match):
        ReferenceProfile.load(path)


def test_load_errors_for_missing_and_non_json_files(tmp_path: Path) -> None:
    with pytest.raises(ReferenceError, match="no such file"):
        ReferenceProfile.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ReferenceError, match="not JSON"):
        ReferenceProfile.load(bad)
    arr = tmp_path / "arr.json"
    arr.write_text("[1, 2]")
    with pytest.raises(ReferenceError, match="not a valid reference profile"):
        ReferenceProfile.load(arr)


def test_current_histograms_read_source_or_series_name() -> None:
    ref = build_reference(_columns(), model="m", prediction=["score"])
    current = {"score": [0.5, 0.7], "amount": [10.0], "country": ["DE", None]}
    hists = ref.current_histograms(current)
    assert set(hists) == {"prediction", "amount", "country"}
    assert hists["prediction"].n == 2
    assert (hists["country"].n, hists["country"].missing) == (1, 1)
    # Flattened stream events carry the series name instead of the training column.
    assert ref.current_histograms({"prediction": [0.1]})["prediction"].n == 1


def test_load_rejects_series_of_the_wrong_shape(tmp_path: Path) -> None:
    path, data = _saved(tmp_path)
    data["series"] = ["amount"]
    path.write_text(json.dumps(data))
    with pytest.raises(ReferenceError, match="not a valid reference profile"):
        ReferenceProfile.load(path)


# --- degenerate references -------------------------------------------------------------------


@pytest.mark.parametrize(
    "columns",
    [{}, {"a": np.array([]), "b": []}, {"a": []}],
    ids=["no-columns", "header-only", "one-empty-column"],
)
def test_no_rows_is_refused(columns: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="no rows"):
        build_reference(columns, model="m")
    with pytest.raises(ReferenceError, match="no rows"):
        build_reference(columns, model="m", prediction=["score"])


def _warnings(columns: dict[str, Any], **kwargs: Any) -> dict[str, list[str]]:
    return build_reference(columns, model="m", **kwargs).warnings


def test_constant_and_near_constant_series_are_flagged() -> None:
    n = 20_000
    rng = np.random.default_rng(0)
    rare = np.zeros(n)
    rare[: n // 100] = rng.normal(size=n // 100)  # 99 % zeros: on the threshold
    below = np.zeros(n)
    below[: n // 100 + 1] = 1.0  # one value more than 1 % are ones: not flagged
    cols = {
        "x": np.full(n, 5.0),
        "y": rng.normal(size=n),
        "rare": rare,
        "below": below,
        "city": ["Berlin"] * n,
        "country": ["DE"] * (n - 50) + ["FR"] * 50,
        "gone": np.full(n, np.nan),
    }
    assert NEAR_CONSTANT_SHARE == 0.99
    assert _warnings(cols) == {
        "x": ["constant: all 20000 values are 5.0"],
        "rare": ["near-constant: 19800 of 20000 values (99.0%) are 0.0"],
        "city": ["constant: all 20000 values are 'Berlin'"],
        "country": ["near-constant: 19950 of 20000 values (99.8%) are 'DE'"],
        "gone": ["no values: all 20000 are missing"],
    }


def test_missing_values_do_not_count_towards_the_share() -> None:
    x = np.r_[np.full(500, 7.0), np.full(500, np.nan)]
    assert _warnings({"x": x, "y": np.arange(1000.0)}) == {
        "x": ["constant: all 500 values are 7.0"]
    }


def test_few_values_are_flagged() -> None:
    w = _warnings({"x": np.arange(40.0), "y": np.arange(40.0) % 2, "p": [0.5]})
    assert w["x"] == ["few values: 40, below the 100 the statistics need by default to judge"]
    assert w["y"] == w["x"]
    assert w["p"] == [
        "constant: its one value is 0.5",
        "few values: 1, below the 100 the statistics need by default to judge",
    ]


def test_warnings_are_saved_hashed_and_loaded(tmp_path: Path) -> None:
    cols = {"x": np.full(300, 5.0), "y": np.arange(300.0)}
    ref = build_reference(cols, model="m")
    assert ref.series["x"].warnings == ["constant: all 300 values are 5.0"]
    assert ref.series["y"].warnings == []
    path = ref.save(tmp_path / "r.json")
    data = json.loads(path.read_text())
    assert data["series"]["x"]["warnings"] == ["constant: all 300 values are 5.0"]
    assert "warnings" not in data["series"]["y"]  # written only when there are some
    loaded = ReferenceProfile.load(path)
    assert loaded.id == ref.id
    assert loaded.warnings == {"x": ["constant: all 300 values are 5.0"]}
    # The warnings are content: hidden or edited, the id no longer matches.
    for edit in (lambda d: d.pop("warnings"), lambda d: d.update(warnings=["fine"])):
        changed = json.loads(path.read_text())
        edit(changed["series"]["x"])
        path.write_text(json.dumps(changed))
        with pytest.raises(ReferenceError, match="does not match its content"):
            ReferenceProfile.load(path)
    data["series"]["x"]["warnings"] = "constant"
    data.pop("id")
    path.write_text(json.dumps(data))
    with pytest.raises(ReferenceError, match=r"not a valid reference profile.*warnings"):
        ReferenceProfile.load(path)


OLD_PROFILE = (
    '{"id": "sha256:4a52692237845370", "created_at": "2025-01-01T00:00:00+00:00", '
    '"source": "train.csv", "format": 1, "model": "fraud", "model_version": "7", "series": '
    '{"country": {"role": "feature", "source": "country", "binning": {"kind": "categorical", '
    '"categories": ["DE", "FR"]}, "n": 1000, "missing": 5, "counts": [600, 400, 0]}, '
    '"x": {"role": "feature", "source": "x", "binning": {"kind": "numeric", "edges": [], '
    '"coarse_edges": []}, "n": 20000, "missing": 0, "counts": [20000]}}}'
)
"""A profile written before series warnings existed (a constant ``x`` in a single bin)."""


def test_profiles_without_warnings_still_load_with_their_id(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(OLD_PROFILE)
    ref = ReferenceProfile.load(path)
    assert ref.id == "sha256:4a52692237845370"
    assert ref.warnings == {}
    assert ref.series["x"].binning.n_bins == 1
    assert json.loads(ref.to_json()) == json.loads(OLD_PROFILE)
