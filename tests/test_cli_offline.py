"""The command line without Kafka: `reference build`, `reference show`, `report`."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from stream_drift.cli import cli
from stream_drift.pipeline.reference import ReferenceProfile

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
N = 2000
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


def _write(path: Path, seed: int, n: int = N, shift: dict[str, float] | None = None) -> Path:
    shift = shift or {}
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {
        "a": rng.normal(shift.get("a", 0.0), 1, n),
        "b": rng.normal(5 + shift.get("b", 0.0), 2, n),
        "c": rng.exponential(1 + shift.get("c", 0.0), n),
        "color": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
        "score": rng.uniform(0, 1, n),
    }
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for i in range(n):
            w.writerow([f"{v[i]:.6f}" if isinstance(v[i], float) else v[i] for v in cols.values()])
    return path


def _run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def ref_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    train = _write(d / "train.csv", seed=0, n=5000)
    out = d / "m.ref.json"
    r = _run(
        "reference", "build", "--model", "m", "--version", "3", "--from", train,
        "--prediction", "score", "-o", out,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert f"Wrote {out}" in r.output
    assert "4 feature(s) + 1 prediction output(s)" in r.output
    return out


def _report_json(ref: Path, current: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    r = _run("report", "--reference", ref, "--current", current, "--json", *extra)
    return r.exit_code, json.loads(r.stdout)


def test_built_reference_is_loadable(ref_path: Path) -> None:
    profile = ReferenceProfile.load(ref_path)
    assert (profile.model, profile.model_version, profile.source) == ("m", "3", "train.csv")
    assert sorted(profile.series) == ["a", "b", "c", "color", "prediction"]
    assert profile.series["prediction"].source == "score"
    assert profile.series["color"].kind == "categorical"
    assert profile.series["a"].histogram.n == 5000


@pytest.mark.parametrize("column", ["b", "color"])
def test_report_flags_exactly_the_shifted_column(
    ref_path: Path, tmp_path: Path, column: str
) -> None:
    if column == "color":  # a categorical shift: rewrite the column's mix
        path = _write(tmp_path / "cur.csv", seed=1)
        rows = list(csv.reader(path.open()))
        rng = np.random.default_rng(1)
        for row in rows[1:]:
            row[3] = rng.choice(["red", "green", "blue"], p=[0.2, 0.3, 0.5])
        with path.open("w", newline="") as fh:
            csv.writer(fh).writerows(rows)
    else:
        path = _write(tmp_path / "cur.csv", seed=1, shift={column: 1.0})
    code, out = _report_json(ref_path, path)
    assert code == 0
    assert out["drifted"] == [column]
    assert {n: f["drift"] for n, f in out["features"].items()} == {
        n: n == column for n in ("a", "b", "c", "color", "prediction")
    }


def test_report_on_a_fresh_sample_flags_nothing(ref_path: Path, tmp_path: Path) -> None:
    for seed in (2, 3):
        code, out = _report_json(ref_path, _write(tmp_path / f"cur{seed}.csv", seed=seed))
        assert code == 0
        assert out["drifted"] == []
        assert not any(f["drift"] for f in out["features"].values())


def test_report_json_fields(ref_path: Path, tmp_path: Path) -> None:
    code, out = _report_json(ref_path, _write(tmp_path / "cur.csv", seed=1, shift={"a": 1.0}))
    assert code == 0
    profile = ReferenceProfile.load(ref_path)
    assert out["model"] == "m"
    assert out["reference_id"] == profile.id
    assert set(out["features"]) == {"a", "b", "c", "color", "prediction"}
    for name, f in out["features"].items():
        assert set(f) >= FIELDS, name
        assert (f["n_reference"], f["n_current"]) == (5000, N)
        if f["kind"] == "numeric":
            assert f["chi2_p_value"] is None
            assert f["ks"] is not None and f["ks_p_value"] is not None
        else:
            assert f["ks"] is None and f["ks_p_value"] is None
            assert f["chi2_p_value"] is not None
    assert out["features"]["color"]["kind"] == "categorical"
    assert out["features"]["a"]["severity"] in ("warning", "critical")
    assert out["features"]["b"]["severity"] == "ok"


def test_report_html(ref_path: Path, tmp_path: Path) -> None:
    cur = _write(tmp_path / "cur.csv", seed=1, shift={"c": 1.0})
    page = tmp_path / "report.html"
    r = _run("report", "--reference", ref_path, "--current", cur, "--html", page)
    assert r.exit_code == 0
    assert f"HTML report: {page}" in r.output
    html = page.read_text()
    assert html.count("<svg") == 5
    headings = re.findall(r"<h2>([^<]+) <span", html)
    assert headings[0] == "c"
    assert sorted(headings) == ["a", "b", "c", "color", "prediction"]
    # With --json as well, stdout stays one JSON object.
    page.unlink()
    code, out = _report_json(ref_path, cur, "--html", str(page))
    assert code == 0 and out["drifted"] == ["c"]
    assert page.read_text().count("<svg") == 5


def test_report_text_output(ref_path: Path, tmp_path: Path) -> None:
    r = _run("report", "--reference", ref_path, "--current", _write(tmp_path / "c.csv", 1))
    assert r.exit_code == 0
    assert "No drift in 5 series." in r.output
    for name in ("a", "b", "c", "color", "prediction"):
        assert re.search(rf"\b{name}\b", r.output)


def test_fail_on_drift_exit_codes(ref_path: Path, tmp_path: Path) -> None:
    drifted = _write(tmp_path / "d.csv", seed=1, shift={"a": 1.0})
    clean = _write(tmp_path / "ok.csv", seed=2)
    base = ["report", "--reference", str(ref_path), "--fail-on-drift"]
    assert _run(*base, "--current", drifted).exit_code == 1
    assert _run(*base, "--current", clean).exit_code == 0
    assert _run(*base, "--current", drifted, "--json").exit_code == 1
    # Without the flag, drift is not an error.
    assert _run("report", "--reference", ref_path, "--current", drifted).exit_code == 0


def test_reference_show(ref_path: Path) -> None:
    r = _run("reference", "show", ref_path)
    assert r.exit_code == 0
    profile = ReferenceProfile.load(ref_path)
    assert profile.id in r.output
    for name, role in [("a", "feature"), ("color", "feature"), ("prediction", "prediction")]:
        assert re.search(rf"\b{re.escape(name)}\b.*\b{role}\b", r.output), name
    assert "5,000" in r.output
    assert "blue" in r.output and "red" in r.output


def _error(r: Result, *needles: str) -> None:
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("error: ") or "Error" in r.stderr, r.stderr
    for needle in needles:
        assert needle in r.stderr, (needle, r.stderr)
    assert "Traceback" not in r.output


def test_errors(ref_path: Path, tmp_path: Path) -> None:
    train = _write(tmp_path / "t.csv", seed=0, n=50)
    out = tmp_path / "x.json"
    build = ["reference", "build", "--model", "m", "-o", str(out)]
    _error(_run(*build, "--from", tmp_path / "missing.csv"), "missing.csv", "no such file")
    _error(
        _run(*build, "--from", train, "--prediction", "nope"),
        "column 'nope' not found",
        "available: a, b, c, color, score",
    )
    _error(_run(*build, "--from", train, "--numeric", "a", "--categorical", "a"), "'a'")
    assert not out.exists()
    bad = tmp_path / "t.xlsx"
    bad.write_text("x")
    _error(_run(*build, "--from", bad), "unknown format")
    _error(
        _run("report", "--reference", tmp_path / "nope.json", "--current", train),
        "nope.json",
        "no such file",
    )
    _error(
        _run("report", "--reference", ref_path, "--current", tmp_path / "nope.csv"),
        "nope.csv",
        "no such file",
    )
    other = tmp_path / "other.csv"
    other.write_text("q,r\n1,2\n")
    _error(
        _run("report", "--reference", ref_path, "--current", other),
        "none of the reference's series",
    )
    _error(_run("reference", "show", tmp_path / "nope.json"), "no such file")
    tampered = tmp_path / "tampered.json"
    data = json.loads(ref_path.read_text())
    data["series"]["a"]["counts"][0] += 1
    tampered.write_text(json.dumps(data))
    _error(_run("reference", "show", tampered), "does not match its content")
    _error(_run("report", "--reference", tampered, "--current", train), "does not match")


def test_shipped_examples(tmp_path: Path) -> None:
    ref = tmp_path / "fraud.ref.json"
    r = _run(
        "reference", "build", "--model", "fraud", "--from", EXAMPLES / "train.csv",
        "--prediction", "score", "-o", ref,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    profile = ReferenceProfile.load(ref)
    assert "event_id" not in profile.series
    assert profile.series["age"].histogram.missing > 0  # empty cells are missing
    code, out = _report_json(ref, EXAMPLES / "current_drift.csv")
    assert code == 0
    # Only amount shifted; the score is computed from the amount, so the prediction follows.
    assert out["drifted"] == ["amount", "prediction"]
    assert out["features"]["amount"]["severity"] == "critical"
    code, out = _report_json(ref, EXAMPLES / "current_ok.csv")
    assert code == 0
    assert out["drifted"] == []


def test_console_entry_point_in_a_subprocess(tmp_path: Path) -> None:
    """The real process: `python -m stream_drift.cli` exit codes and streams."""
    ref = tmp_path / "fraud.ref.json"
    build = subprocess.run(
        [sys.executable, "-m", "stream_drift.cli", "reference", "build", "--model", "fraud",
         "--from", str(EXAMPLES / "train.csv"), "--prediction", "score", "-o", str(ref)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    report = subprocess.run(
        [sys.executable, "-m", "stream_drift.cli", "report", "--reference", str(ref),
         "--current", str(EXAMPLES / "current_drift.csv"), "--json", "--fail-on-drift"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert report.returncode == 1, report.stderr
    assert json.loads(report.stdout)["drifted"][0] == "amount"
    missing = subprocess.run(
        [sys.executable, "-m", "stream_drift.cli", "report", "--reference", str(ref),
         "--current", str(tmp_path / "gone.parquet")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode == 2
    assert missing.stdout == ""
    assert "error:" in missing.stderr and "gone.parquet: no such file" in missing.stderr


# --- degenerate references and windows -------------------------------------------------------


def _write_rows(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _empty_inputs(d: Path) -> list[Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    header = d / "header.csv"
    header.write_text("a,b,color\n")
    empty_csv = d / "empty.csv"
    empty_csv.write_text("")
    jsonl = d / "empty.jsonl"
    jsonl.write_text("\n")
    parquet = d / "empty.parquet"
    pq.write_table(pa.table({"a": pa.array([], pa.float64())}), parquet)
    return [header, empty_csv, jsonl, parquet]


def test_reference_build_refuses_an_empty_input(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    for path in _empty_inputs(tmp_path):
        r = _run("reference", "build", "--model", "m", "--from", path, "-o", out)
        _error(r, f"{path}: no rows", "a reference needs at least one row")
        assert r.stderr.count("\n") == 1, r.stderr  # one line
        assert r.stdout == ""
        assert not out.exists()


@pytest.fixture(scope="module")
def constant_ref(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    d = tmp_path_factory.mktemp("constant")
    rng = np.random.default_rng(0)
    rows = [[5.0, f"{rng.normal():.6f}", "DE"] for _ in range(20_000)]
    train = _write_rows(d / "train.csv", ["x", "y", "country"], rows)
    out = d / "c.ref.json"
    r = _run("reference", "build", "--model", "m", "--from", train, "-o", out)
    return out, r


def test_reference_build_warns_about_constant_columns(constant_ref: tuple[Path, Result]) -> None:
    out, r = constant_ref
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines() == [
        "warning: x: constant: all 20000 values are 5.0",
        "warning: country: constant: all 20000 values are 'DE'",
    ]
    assert f"Wrote {out}" in r.stdout and "2 warning(s)" in r.stdout
    assert ReferenceProfile.load(out).warnings == {
        "x": ["constant: all 20000 values are 5.0"],
        "country": ["constant: all 20000 values are 'DE'"],
    }
    show = _run("reference", "show", out)
    assert show.exit_code == 0
    assert "x: constant: all 20000 values are 5.0" in show.stdout
    assert "country: constant: all 20000 values are 'DE'" in show.stdout
    assert "[5, 5]" in show.stdout  # the constant's bins are shown as they are
    # A clean profile shows no warning section.
    assert "warning" not in _run("reference", "show", _built_clean(out.parent)).stdout


def _built_clean(d: Path) -> Path:
    train = _write(d / "clean.csv", seed=0, n=500)
    out = d / "clean.ref.json"
    r = _run("reference", "build", "--model", "m", "--from", train, "-o", out)
    assert r.exit_code == 0 and r.stderr == "", r.stderr
    return out


def test_report_finds_a_constant_that_moved(
    constant_ref: tuple[Path, Result], tmp_path: Path
) -> None:
    out, _ = constant_ref
    rng = np.random.default_rng(1)
    rows = [[500.0, f"{rng.normal():.6f}", "DE"] for _ in range(2000)]
    cur = _write_rows(tmp_path / "cur.csv", ["x", "y", "country"], rows)
    code, data = _report_json(out, cur, "--fail-on-drift")
    assert code == 1
    assert data["drifted"] == ["x"]
    assert data["features"]["x"]["severity"] == "critical"
    assert data["features"]["x"]["psi"] > 10
    r = _run("report", "--reference", out, "--current", cur)
    assert r.exit_code == 0
    assert "1 of 3 series drifted: x" in r.stdout


@pytest.mark.parametrize("as_json", [False, True])
def test_report_on_an_empty_current_input_judges_nothing(
    ref_path: Path, tmp_path: Path, as_json: bool
) -> None:
    extra = ["--json"] if as_json else []
    for path in _empty_inputs(tmp_path):
        base = ["report", "--reference", ref_path, "--current", path, *extra]
        r = _run(*base)
        assert r.exit_code == 0, (path, r.output)
        failing = _run(*base, "--fail-on-drift")
        assert failing.exit_code == 3, (path, failing.output)
        assert "Traceback" not in failing.output
        if as_json:
            data = json.loads(failing.stdout)
            assert (data["judged"], data["n_judged"], data["n_series"]) == (False, 0, 5)
            assert data["not_judged_reason"] == "the current data has no rows"
            assert data["drifted"] == []
        else:
            assert "Nothing judged: the current data has no rows." in failing.stdout
            assert "No drift" not in failing.stdout


def test_report_with_too_few_values_judges_nothing(ref_path: Path, tmp_path: Path) -> None:
    small = _write(tmp_path / "small.csv", seed=1, n=40)
    r = _run("report", "--reference", ref_path, "--current", small, "--fail-on-drift")
    assert r.exit_code == 3
    assert "Nothing judged: no series has enough values." in r.stdout
    assert "a: only 40 current values, fewer than 100" in r.stdout
    assert "No drift" not in r.stdout
    code, data = _report_json(ref_path, small)
    assert code == 0
    assert data["judged"] is False
    assert data["not_judged"]["color"] == "only 40 current values, fewer than 100"


def test_reference_build_help_names_the_excluded_columns() -> None:
    """The default of ``--exclude`` is written when the help is shown (the CLI does not import
    the profile module to start)."""
    from stream_drift.pipeline.reference import DEFAULT_EXCLUDED

    result = CliRunner().invoke(cli, ["reference", "build", "--help"], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert f"Column to leave out (default: {', '.join(DEFAULT_EXCLUDED)})." in result.output
