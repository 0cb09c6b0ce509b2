"""Offline drift report: figures, JSON fields, text and HTML rendering."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from stream_drift.reference import ReferenceProfile, build_reference
from stream_drift.report import DriftReport, build_report, render_html, render_text
from stream_drift.stats.evaluate import evaluate_window
from stream_drift.stats.psi import PSI

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
