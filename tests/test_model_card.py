"""``stream-drift model-card``: a card from files (hand-written results and alerts, a built
reference), HTML escaping of hostile names, the README command, and a card read from the
topics of the embedded broker."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from stream_drift.cli import cli
from stream_drift.pipeline.reference import ReferenceProfile, build_reference
from stream_drift.tools.model_card import (
    TABLE_ROWS,
    CardError,
    Selection,
    build_card,
    card_inputs_from_files,
    md_escape,
    numeric_quantiles,
    parse_since,
    read_jsonl,
    render_html,
    render_markdown,
)

REPO = Path(__file__).resolve().parents[1]
T0 = 1_764_237_600  # 2025-11-27T10:00:00Z


def _iso(ts: float) -> str:
    from stream_drift.pipeline.alert_text import format_timestamp

    return format_timestamp(ts)


def _reference(
    model: str = "fraud", version: str = "7", feature: str = "amount"
) -> ReferenceProfile:
    rng = np.random.default_rng(11)
    n = 3000
    y = (rng.random(n) < 0.2).astype(float)
    return build_reference(
        {
            feature: rng.gamma(2.0, 30.0, n),
            "country": list(rng.choice(["DE", "FR", "GB"], n, p=[0.5, 0.3, 0.2])),
            "score": np.clip(0.4 * y + rng.uniform(0, 0.6, n), 0, 1),
            "y": y,
        },
        model=model,
        model_version=version,
        prediction=["score"],
        label="y",
        sample_rows=200,
        metadata={"owner": "risk-team", "intended_use": "card fraud triage"},
        source="train.csv",
    )


def _result(
    i: int, *, model: str = "fraud", version: str = "7", drift: bool = False
) -> dict[str, Any]:
    end = T0 + 300 * (i + 1)
    psi = 0.31 if drift else 0.02
    out: dict[str, Any] = {
        "model": model,
        "model_version": version,
        "reference_id": "sha256:0123456789abcdef",
        "window": {"start": _iso(end - 300), "end": _iso(end)},
        "window_start_ts": end - 300,
        "window_end_ts": end,
        "evaluated_at": _iso(end + 5),
        "n_events": 1000 + i,
        "late_events": 0,
        "drifted": ["amount"] if drift else [],
        "features": {
            "amount": {
                "judged": True,
                "drift": drift,
                "severity": "critical" if drift else "none",
                "psi": psi,
            },
            "country": {"judged": True, "drift": False, "severity": "none", "psi": 0.01},
        },
    }
    if i % 2 == 0:
        out["performance"] = {
            "n_pairs": 100 + i,
            "metrics": {"accuracy": 0.9 - 0.01 * i, "roc_auc": 0.8, "f1:1": 0.5},
            "reference": {"accuracy": 0.91, "roc_auc": 0.82},
        }
        out["label_join"] = {"joined": 100 + i, "expired": i, "orphan_label": 1}
    if i % 3 == 0:
        out["domain"] = {
            "auc": 0.5 + 0.05 * i,
            "threshold": 0.6,
            "n_rows": 400,
            "top_features": ["amount", "country"],
        }
    return out


def _alert(
    i: int, status: str, feature: str = "amount", statistic: str = "psi", **extra: Any
) -> dict[str, Any]:
    return {
        "alert_id": f"a{i}",
        "status": status,
        "severity": "critical",
        "model": "fraud",
        "model_version": "7",
        "feature": feature,
        "statistic": statistic,
        "category": "drift",
        "value": 0.31,
        "threshold": 0.2,
        "evaluated_at": _iso(T0 + 300 * (i + 1) + 5),
        "dedup_key": f"fraud/{feature}/{statistic}",
        "summary": f"{feature} {statistic} {status}",
        **extra,
    }


def _files(tmp_path: Path) -> tuple[Path, Path, Path, list[dict[str, Any]], list[dict[str, Any]]]:
    ref = _reference().save(tmp_path / "fraud.ref.json")
    results = [_result(i, drift=i in (3, 4)) for i in range(8)]
    others = [_result(0, model="other"), _result(1, version="6")]
    alerts = [
        _alert(3, "firing"),
        _alert(4, "escalated"),
        _alert(5, "resolved"),
        _alert(6, "firing", "(predictions)", "concept_drift", category="concept_drift"),
    ]
    rpath = tmp_path / "results.jsonl"
    rpath.write_text("".join(json.dumps(r) + "\n" for r in [others[0], *results, others[1]]))
    apath = tmp_path / "alerts.jsonl"
    apath.write_text("".join(json.dumps(a) + "\n" for a in [*alerts, {**alerts[0], "model": "x"}]))
    return ref, rpath, apath, results, alerts


def _section(md: str, title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", md, re.S | re.M)
    assert m, f"no section {title!r} in\n{md}"
    return m.group(1)


def _table(section: str) -> list[list[str]]:
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in lines[2:]]


def test_card_from_files_has_every_section_and_figure(tmp_path: Path) -> None:
    ref_path, rpath, apath, results, alerts = _files(tmp_path)
    ref = ReferenceProfile.load(ref_path)
    inputs = card_inputs_from_files(
        Selection("fraud"), reference=ref_path, results=rpath, alerts=apath
    )
    assert inputs.selection.model_version == "7"  # from the reference
    assert inputs.results == results and inputs.alerts == alerts  # other model/version left out
    md = render_markdown(build_card(inputs, generated_at=T0))
    assert md.startswith("# Model card: fraud v7\n")

    overview = dict((r[0], r[1]) for r in _table(_section(md, "Overview")))
    assert overview["Owner"] == "risk-team"
    assert overview["Intended use"] == "card fraud triage"
    assert overview["Reference id"] == ref.id

    data = _section(md, "Reference data")
    assert (
        "Source: train.csv" in data and "3,000 rows; 2 feature(s), 1 prediction output(s)" in data
    )
    assert "Row sample: 200 of 3,000 rows (seed 0)" in data
    assert "classifier\n\n| series | role" in data  # a list ends before the table starts
    rows = {r[0]: r for r in _table(data)}
    assert set(rows) == {"amount", "country", "prediction"}  # the label is not a series
    assert rows["country"][5].startswith("DE ")
    share = ref.series["country"].histogram.counts[0] / 3000
    assert f"DE {share:.1%}" in rows["country"][5]

    perf = _section(md, "Reference performance")
    assert ref.performance is not None
    assert f"Task binary: {ref.performance.n:,} labelled rows (predictions score, labels y)" in perf
    metrics = dict((r[0], r[1]) for r in _table(perf))
    assert metrics["accuracy"] == f"{ref.performance.metrics['accuracy']:.4g}"

    realised = _section(md, "Realised performance")
    windows = [r for r in results if "performance" in r]
    pairs = sum(r["performance"]["n_pairs"] for r in windows)
    assert (
        f"{len(windows)} window(s) with joined labels, {pairs:,} (prediction, label) pairs"
        in realised
    )
    table = _table(realised)
    assert [r[0] for r in table] == [r["window"]["end"] for r in windows] + ["reference"]
    header = next(line for line in realised.splitlines() if line.startswith("|"))
    assert "f1:1" not in header and "accuracy" in header  # per-class metrics left out
    assert table[1][3] == f"{0.9 - 0.02:.4g}" and table[-1][3] == "0.91"

    drift = _section(md, "Drift")
    assert "8 window evaluation(s)" in drift and "2 with drift" in drift
    by_series = {r[0]: r for r in _table(drift)}
    assert by_series["amount"][1:5] == ["8", "2", "critical", "none"]
    assert by_series["country"][1:3] == ["8", "0"]

    domain = _section(md, "Multivariate drift (domain classifier)")
    judged = [r for r in results if "domain" in r]
    above = sum(r["domain"]["auc"] > r["domain"]["threshold"] for r in judged)
    assert f"{len(judged)} window(s) judged, {above} with the AUC above its threshold" in domain

    join = dict((r[0], r[1]) for r in _table(_section(md, "Label join")))
    expected: Counter[str] = Counter()
    for r in results:
        expected.update(r.get("label_join", {}))
    assert join == {md_escape(k): f"{v:,}" for k, v in expected.items()}

    alert_part = _section(md, "Alerts")
    assert (
        "4 state change(s) (1 escalated, 2 firing, 1 resolved); 1 incident(s) still open"
        in alert_part
    )
    assert r"(predictions)/concept\_drift" in alert_part
    assert len(_table(alert_part)) == 4


def test_last_and_since_bound_the_records(tmp_path: Path) -> None:
    _, rpath, apath, results, _ = _files(tmp_path)
    assert read_jsonl(rpath, Selection("fraud", "7", last=3)) == results[-3:]
    since = T0 + 300 * 6
    kept = read_jsonl(rpath, Selection("fraud", "7", since=since))
    assert kept == [r for r in results if r["window_end_ts"] + 5 >= since] and len(kept) == 3
    assert [a["alert_id"] for a in read_jsonl(apath, Selection("fraud", since=T0 + 1800))] == [
        "a5",
        "a6",
    ]
    assert parse_since("2d", now=T0) == T0 - 2 * 86400
    with pytest.raises(CardError, match="--since 'soon'"):
        parse_since("soon")


def test_long_histories_list_the_last_windows(tmp_path: Path) -> None:
    results = [_result(i) for i in range(2 * TABLE_ROWS + 4)]
    inputs = card_inputs_from_files(Selection("fraud", "7"))
    inputs.results = results
    md = render_markdown(build_card(inputs))
    realised = _section(md, "Realised performance")
    windows = [r for r in results if "performance" in r]
    assert f"The last {TABLE_ROWS} of {len(windows)} windows:" in realised
    table = _table(realised)
    assert len(table) == TABLE_ROWS + 1 and table[-1][0] == "reference"
    assert [r[0] for r in table[:-1]] == [r["window"]["end"] for r in windows[-TABLE_ROWS:]]


HOSTILE = '<script>alert("x")</script>'
HOSTILE_FEATURE = "<img src=x onerror=alert(1)>"


def test_html_and_markdown_escape_hostile_names(tmp_path: Path) -> None:
    ref = _reference(model=HOSTILE, version="</td><b>", feature=HOSTILE_FEATURE)
    path = ref.save(tmp_path / "evil.json")
    inputs = card_inputs_from_files(Selection(HOSTILE), reference=path)
    inputs.alerts = [_alert(1, "firing", HOSTILE_FEATURE, summary="<iframe src=//evil>")]
    inputs.alerts[0]["model"] = HOSTILE
    card = build_card(inputs)
    page = render_html(card)
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page.lower()
    for raw in ("<img", "<iframe", "</td><b>"):
        assert raw not in page
    assert html_escaped(HOSTILE_FEATURE) in page and html_escaped(HOSTILE) in page
    # Only the card's own tags: no script, image, frame or link (self-contained, inert).
    tags = set(re.findall(r"<\s*/?\s*([A-Za-z!][A-Za-z0-9]*)", page))
    assert tags <= {
        "!DOCTYPE",
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "h1",
        "h2",
        "p",
        "ul",
        "li",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    }, tags
    md = render_markdown(card)
    assert re.search(r"(?<!\\)<", md) is None  # every "<" is backslash-escaped: literal text
    assert md_escape(HOSTILE_FEATURE) in md


def html_escaped(text: str) -> str:
    import html

    return html.escape(text)


def test_numeric_quantiles_are_within_one_fine_bin() -> None:
    x = np.random.default_rng(2).lognormal(3, 1, 20_000)
    ref = build_reference({"x": x}, model="m", sample_rows=0)
    qs = [0.05, 0.25, 0.5, 0.75, 0.95]
    got = numeric_quantiles(ref.series["x"], qs)
    for q, v in zip(qs, got, strict=True):
        assert v is not None
        share_below = float((x < v).mean())
        assert abs(share_below - q) <= 0.01 + 1e-9, (q, v, share_below)


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cli_offline_markdown_and_html(tmp_path: Path) -> None:
    ref_path, rpath, apath, _, _ = _files(tmp_path)
    out = tmp_path / "card.html"
    done = _run(
        "model-card",
        "--model",
        "fraud",
        "--reference",
        str(ref_path),
        "--results",
        str(rpath),
        "--alerts",
        str(apath),
        "--html",
        "-o",
        str(out),
    )
    assert done.exit_code == 0, done.output
    assert "Wrote" in done.stderr and out.read_text().startswith("<!DOCTYPE html>")
    assert "<h2>Realised performance</h2>" in out.read_text()
    done = _run("model-card", "--model", "fraud", "--reference", str(ref_path), "--offline")
    assert done.exit_code == 0 and done.stdout.startswith("# Model card: fraud v7")
    assert "No results read." in done.stdout
    done = _run("model-card", "--model", "other", "--reference", str(ref_path), "--offline")
    assert done.exit_code == 2 and "is a reference of model 'fraud', not 'other'" in done.stderr
    done = _run(
        "model-card", "--model", "fraud", "--results", str(tmp_path / "no.jsonl"), "--offline"
    )
    assert done.exit_code == 2 and "no.jsonl: no such file" in done.stderr


def test_model_card_help_is_documented() -> None:
    done = _run("model-card", "--help")
    for option in (
        "--model",
        "--version",
        "--reference",
        "--results",
        "--alerts",
        "--since",
        "--last",
        "--offline",
        "--html",
        "--output",
    ):
        assert option in done.stdout


def _readme_commands(section: str) -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    body = _section(text, section)
    block = re.search(r"```bash\n(.*?)```", body, re.S)
    assert block, f"no bash block in README section {section!r}"
    joined = block.group(1).replace("\\\n", " ")
    return [shlex.split(line) for line in joined.splitlines() if line.strip() and "-c " not in line]


def test_readme_model_card_commands_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "examples").mkdir()
    shutil.copy(REPO / "examples" / "train.csv", tmp_path / "examples" / "train.csv")
    monkeypatch.chdir(tmp_path)
    commands = _readme_commands("Model cards")
    assert len(commands) >= 2
    for argv in commands:
        assert argv[0] == "stream-drift"
        done = _run(*argv[1:])
        assert done.exit_code == 0, (argv, done.output)
    cards = list(tmp_path.glob("*.md"))
    assert cards, "the README commands write a card"
    text = cards[0].read_text()
    assert "## Reference data" in text and "Owner | risk-team" in text


@pytest.mark.kafka
def test_card_from_the_embedded_broker(kafka_broker: Any, tmp_path: Path) -> None:
    from kafka_helpers import produce

    from stream_drift.config import Settings

    app = f"card-{uuid.uuid4().hex[:8]}"
    settings = Settings().override(
        {
            "app_id": app,
            "kafka.bootstrap_servers": kafka_broker.bootstrap_servers,
            "kafka.connect_timeout_seconds": 10.0,
            "topics": {
                role: f"{app}.{role}"
                for role in (
                    "events",
                    "labels",
                    "partials",
                    "alerts",
                    "results",
                    "references",
                    "deadletter",
                )
            },
        }
    )
    config = tmp_path / "stream-drift.yaml"
    config.write_text(settings.to_yaml())
    old7, v8, new7 = (
        _reference(version="7"),
        _reference(version="8"),
        _reference(version="7", feature="amt"),
    )
    for n, profile in enumerate((old7, v8, new7)):
        path = profile.save(tmp_path / f"ref{n}.json")
        done = _run("reference", "publish", str(path), "-c", str(config))
        assert done.exit_code == 0, done.output
    results = [_result(i, drift=i == 2) for i in range(5)] + [
        _result(i, version="8") for i in range(3)
    ]
    produce(
        settings.kafka.bootstrap_servers, settings.topics.results, [*results, _result(0, model="x")]
    )
    alerts = [_alert(1, "firing"), _alert(2, "resolved")]
    produce(settings.kafka.bootstrap_servers, settings.topics.alerts, alerts)

    done = _run("model-card", "--model", "fraud", "--version", "7", "-c", str(config))
    assert done.exit_code == 0, done.output
    md = done.stdout
    overview = dict((r[0], r[1]) for r in _table(_section(md, "Overview")))
    assert overview["Reference id"] == new7.id  # the current profile of v7
    assert overview["Reference published"].endswith("Z")
    assert "5 window evaluation(s)" in _section(md, "Drift")
    assert "1 with drift" in _section(md, "Drift")
    assert "2 state change(s) (1 firing, 1 resolved); 0 incident(s) still open" in _section(
        md, "Alerts"
    )
    assert "amt" in _section(md, "Reference data")

    # No version: the latest published profile's version (7, republished last).
    done = _run("model-card", "--model", "fraud", "-c", str(config), "--last", "2")
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("# Model card: fraud v7")
    assert "2 window evaluation(s)" in _section(done.stdout, "Drift")
    done = _run(
        "model-card",
        "--model",
        "fraud",
        "--version",
        "8",
        "-c",
        str(config),
        "--since",
        "2099-01-01T00:00:00Z",
    )
    assert done.exit_code == 0, done.output
    assert (
        dict((r[0], r[1]) for r in _table(_section(done.stdout, "Overview")))["Reference id"]
        == v8.id
    )
    assert "No results read." in done.stdout
    done = _run("model-card", "--model", "fraud", "--version", "8", "-c", str(config))
    assert "3 window evaluation(s)" in _section(done.stdout, "Drift")
