"""Offline drift report: figures, JSON fields, text and HTML rendering."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from stream_drift.pipeline.reference import ReferenceProfile, build_reference
from stream_drift.stats.evaluate import evaluate_window
from stream_drift.stats.psi import PSI
from stream_drift.tools.report import DriftReport, build_report, render_html, render_text

N = 2000
COUNTRIES = ["DE", "FR", "US", "GB"]
P = [0.4, 0.3, 0.2, 0.1]


def _data(seed: int, n: int = N, shift: float = 0.0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(shift, 1, n),
        "y": rng.normal(0, 1, n),
        "country": rng.choice(COUNTRIES, n, p=P).tolist(),
        "score": rng.uniform(0, 1, n),
    }


@pytest.fixture(scope="module")
def ref() -> ReferenceProfile:
    return build_reference(_data(0, 5000), model="fraud", model_version="7", prediction=["score"])


FIELDS = {
    "kind",
    "n_reference",
    "n_current",
    "psi",
    "kl",
    "js",
    "ks",
    "ks_p_value",
    "chi2_p_value",
    "severity",
    "drift",
}


def test_shifted_column_is_the_only_drift(ref: ReferenceProfile) -> None:
    rep = build_report(ref, _data(1, shift=0.5))
    assert rep.drifted == ["x"]
    assert rep.absent == []
    assert rep.ordered()[0][0] == "x"
    assert rep.evaluations["x"].severity.label in ("warning", "critical")


def test_no_drift_on_a_fresh_sample(ref: ReferenceProfile) -> None:
    for seed in (2, 3, 4):
        rep = build_report(ref, _data(seed))
        assert rep.drifted == [], seed
        assert all(e.severity.label == "ok" for e in rep.evaluations.values())


def test_categorical_drift_is_found(ref: ReferenceProfile) -> None:
    cur = _data(5)
    rng = np.random.default_rng(5)
    cur["country"] = rng.choice(COUNTRIES, N, p=[0.1, 0.2, 0.3, 0.4]).tolist()
    assert build_report(ref, cur).drifted == ["country"]


def test_json_has_every_documented_field(ref: ReferenceProfile) -> None:
    rep = build_report(ref, _data(1, shift=0.5))
    out = json.loads(rep.to_json())
    assert out["model"] == "fraud"
    assert out["model_version"] == "7"
    assert out["reference_id"] == ref.id
    assert out["drifted"] == ["x"]
    assert set(out["features"]) == {"x", "y", "country", "prediction"}
    assert next(iter(out["features"])) == "x"  # drifted first
    for name, f in out["features"].items():
        assert set(f) >= FIELDS, name
        assert f["n_reference"] == 5000
        assert f["n_current"] == N
        assert f["severity"] in ("ok", "warning", "critical")
        assert isinstance(f["drift"], bool)
        for stat in ("psi", "kl", "js"):
            assert isinstance(f[stat], float) and f[stat] >= 0
    num, cat = out["features"]["y"], out["features"]["country"]
    assert num["kind"] == "numeric" and cat["kind"] == "categorical"
    # Null where a statistic does not apply.
    assert num["chi2_p_value"] is None and num["chi2"] is None
    assert isinstance(num["ks"], float) and 0 <= num["ks_p_value"] <= 1
    assert cat["ks"] is None and cat["ks_p_value"] is None
    assert 0 <= cat["chi2_p_value"] <= 1
    assert out["features"]["x"]["drift"] is True
    assert out["features"]["x"]["psi"] > out["features"]["y"]["psi"]


def test_report_figures_are_the_streams(ref: ReferenceProfile) -> None:
    cur = _data(1, shift=0.5)
    rep = build_report(ref, cur)
    hist = ref.series["x"].empty().add(cur["x"])
    assert rep.currents["x"] == hist
    expected = PSI().value(ref.series["x"].histogram.coarse_counts(), hist.coarse_counts())
    assert rep.evaluations["x"].results["psi"].value == pytest.approx(expected)
    live = evaluate_window(
        {n: s.histogram for n, s in ref.series.items()},
        rep.currents,
        [PSI()],
    )
    assert live["x"].results["psi"].value == rep.evaluations["x"].results["psi"].value


def test_absent_series_are_listed(ref: ReferenceProfile) -> None:
    cur = _data(1)
    del cur["y"], cur["score"]
    rep = build_report(ref, cur)
    assert rep.absent == ["prediction", "y"]
    assert set(rep.evaluations) == {"x", "country"}
    assert json.loads(rep.to_json())["absent"] == ["prediction", "y"]


def test_missing_ratio_is_reported(ref: ReferenceProfile) -> None:
    cur = _data(1)
    cur["y"] = cur["y"].copy()
    cur["y"][:500] = np.nan
    f = json.loads(build_report(ref, cur).to_json())["features"]["y"]
    assert f["missing_ratio"] == pytest.approx(0.25)
    assert f["n_current"] == N - 500


def _text(rep: DriftReport) -> str:
    buf = io.StringIO()
    Console(file=buf, width=200, color_system=None).print(render_text(rep))
    return buf.getvalue()


def test_render_text(ref: ReferenceProfile) -> None:
    text = _text(build_report(ref, _data(1, shift=0.5)))
    assert ref.id in text
    assert "1 of 4 series drifted: x" in text
    rows = [line for line in text.splitlines() if re.match(r"\W*(x|y|country|prediction) ", line)]
    assert rows[0].split()[1] == "x"
    assert "DRIFT" in text
    assert "No drift in 4 series." in _text(build_report(ref, _data(2)))
    cur = _data(2)
    del cur["y"]
    assert "Not in the current data: y" in _text(build_report(ref, cur))


def test_render_html_one_svg_per_series_drifted_first(ref: ReferenceProfile) -> None:
    page = render_html(build_report(ref, _data(1, shift=0.5)))
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 4
    assert page.count("</svg>") == 4
    headings = re.findall(r"<h2>([^<]+) <span", page)
    assert headings[0] == "x"
    assert sorted(headings) == ["country", "prediction", "x", "y"]
    assert "DRIFT · " in page
    assert ref.id in page
    assert "1 of 4 series drifted" in page


def test_render_html_escapes_names() -> None:
    cols = {"<b>x&y</b>": np.arange(300.0), "c": ["<script>"] * 300}
    ref = build_reference(cols, model="m<1>")
    page = render_html(build_report(ref, cols))
    assert "<b>x" not in page and "<script>" not in page
    assert "&lt;b&gt;x&amp;y&lt;/b&gt;" in page
    assert "m&lt;1&gt;" in page


def test_empty_current_series_renders(ref: ReferenceProfile) -> None:
    cur = _data(1, n=10)
    cur["y"] = np.full(10, np.nan)
    rep = build_report(ref, cur)
    f = json.loads(rep.to_json())["features"]["y"]
    assert (f["n_current"], f["drift"], f["judged"]) == (0, False, False)
    assert render_html(rep).count("<svg") == 4
    assert "not judged" in _text(rep)


# --- degenerate references and windows -------------------------------------------------------


def test_constant_reference_moved_to_another_value_is_a_critical_drift() -> None:
    """The attack: a constant 5.0 in training, 500.0 now. One bin used to make PSI 0."""
    ref = build_reference({"x": np.full(20_000, 5.0), "y": np.arange(20_000.0)}, model="m")
    assert ref.warnings == {"x": ["constant: all 20000 values are 5.0"]}
    rep = build_report(ref, {"x": np.full(2000, 500.0), "y": np.arange(0.0, 20_000.0, 10.0)})
    assert rep.drifted == ["x"]
    e = rep.evaluations["x"]
    assert e.severity.label == "critical" and e.judged
    # Independent PSI: bins (-inf, 5) [5, 5] (5, +inf); the one empty on both sides is dropped
    # and the others get a pseudo-count of 0.5 on each side.
    r = np.array([20_000.5, 0.5]) / 20_001
    c = np.array([0.5, 2000.5]) / 2001
    assert e.results["psi"].value == pytest.approx(float(np.sum((c - r) * np.log(c / r))))
    assert e.top_bins[:2] == [
        {"bin": "[5, 5]", "reference": 1.0, "current": 0.0},
        {"bin": "(5, +inf)", "reference": 0.0, "current": 1.0},
    ]
    assert build_report(ref, {"x": np.full(2000, 5.0)}).drifted == []


@pytest.mark.parametrize("moved", [5.0, -1.0])
def test_a_discrete_value_leaving_the_reference_range_is_a_drift(moved: float) -> None:
    rng = np.random.default_rng(9)
    ref = build_reference({"flag": rng.integers(0, 2, 10_000).astype(float)}, model="m")
    cur = rng.integers(0, 2, 2000).astype(float)
    cur[cur == (1.0 if moved > 1 else 0.0)] = moved
    assert build_report(ref, {"flag": cur}).drifted == ["flag"]


def test_nothing_judged_when_every_window_is_too_small(ref: ReferenceProfile) -> None:
    cur = _data(1, n=50)
    cur["y"] = np.full(50, np.nan)
    rep = build_report(ref, cur)
    assert not rep.any_judged and rep.judged_series == []
    assert rep.not_judged == {
        "country": "only 50 current values, fewer than 100",
        "prediction": "only 50 current values, fewer than 100",
        "x": "only 50 current values, fewer than 100",
        "y": "no current values (all 50 missing)",
    }
    out = json.loads(rep.to_json())
    assert (out["judged"], out["n_series"], out["n_judged"], out["current_rows"]) == (
        False,
        4,
        0,
        50,
    )
    assert out["not_judged"] == rep.not_judged
    assert out["not_judged_reason"] == "no series has enough values"
    text = _text(rep)
    assert "Nothing judged: no series has enough values" in text
    assert "No drift" not in text
    assert "y: no current values (all 50 missing)" in text


@pytest.mark.parametrize(
    "columns",
    [{}, {"x": np.array([]), "y": np.array([]), "country": [], "score": np.array([])}],
    ids=["no-columns", "header-only"],
)
def test_nothing_judged_on_an_empty_current_data_set(
    ref: ReferenceProfile, columns: dict[str, Any]
) -> None:
    rep = build_report(ref, columns)
    assert not rep.any_judged and rep.drifted == []
    assert rep.current_rows == 0
    assert rep.not_judged_reason == "the current data has no rows"
    out = json.loads(rep.to_json())
    assert (out["judged"], out["n_judged"], out["current_rows"]) == (False, 0, 0)
    text = _text(rep)
    assert "Nothing judged: the current data has no rows." in text
    assert "No drift" not in text and "Not in the current data" not in text
    assert "Nothing judged: the current data has no rows." in render_html(rep)


def test_partly_judged_says_which_series_were_not(ref: ReferenceProfile) -> None:
    cur = _data(2)
    cur["y"] = np.full(N, np.nan)
    rep = build_report(ref, cur)
    assert rep.any_judged and rep.drifted == []
    assert rep.judged_series == ["country", "prediction", "x"]
    assert rep.not_judged == {"y": f"no current values (all {N} missing)"}
    out = json.loads(rep.to_json())
    assert (out["judged"], out["n_series"], out["n_judged"]) == (True, 4, 3)
    assert out["not_judged_reason"] is None
    text = _text(rep)
    assert "No drift in the 3 judged series of 4." in text
    assert f"Not judged: y: no current values (all {N} missing)" in text
    # Fully judged: the plain verdict, no "not judged" line.
    assert "Not judged" not in _text(build_report(ref, _data(2)))


def test_a_thin_reference_is_a_reason_too() -> None:
    ref = build_reference({"x": np.arange(30.0)}, model="m")
    rep = build_report(ref, {"x": np.arange(500.0)})
    assert rep.not_judged == {"x": "only 30 reference values, fewer than 100"}
