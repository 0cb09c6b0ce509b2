"""Grafana dashboards: generated JSON is current, queries name exported metrics and parse.

The parse check starts a real Prometheus (Debian's ``prometheus`` binary) on a loopback
port with no scrape jobs and sends every rendered panel query to ``/api/v1/query``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

# tests/ is on sys.path (pytest's default "prepend" import mode, no __init__.py).
from grafana_queries import (
    DASHBOARD_DIR,
    dashboard_files,
    grouping_labels,
    iter_panels,
    label_matchers,
    load_dashboards,
    metric_names,
    panel_queries,
    render,
    variable_names,
    variable_queries,
)

REPO = Path(__file__).resolve().parent.parent
GRAFANA = REPO / "deploy" / "grafana"
GENERATOR = GRAFANA / "dashboards_src" / "generate.py"
RULES_FILE = REPO / "deploy" / "prometheus" / "rules" / "stream-drift.rules.yml"
DATASOURCE_FILE = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDER_FILE = GRAFANA / "provisioning" / "dashboards" / "stream-drift.yml"
DATASOURCE_UID = "prometheus"
EXPECTED_UIDS = {"stream-drift-overview", "stream-drift-model"}

STAT = frozenset({"model", "model_version", "feature", "statistic"})
WINDOW = frozenset({"model", "model_version", "feature"})
#: Metrics the worker exports -> their labels (Prometheus adds job and instance).
WORKER_METRICS: dict[str, frozenset[str]] = {
    "stream_drift_statistic": STAT,
    "stream_drift_threshold": STAT,
    "stream_drift_p_value": STAT,
    "stream_drift_alert_state": STAT,
    "stream_drift_window_samples": WINDOW,
    "stream_drift_missing_ratio": WINDOW,
    "stream_drift_events_total": frozenset({"model", "outcome"}),
    "stream_drift_alerts_total": frozenset({"model", "severity"}),
    "stream_drift_last_evaluation_timestamp_seconds": frozenset({"model"}),
    "stream_drift_evaluation_duration_seconds_bucket": frozenset({"le"}),
    "stream_drift_evaluation_duration_seconds_sum": frozenset(),
    "stream_drift_evaluation_duration_seconds_count": frozenset(),
    "stream_drift_deadletter_total": frozenset({"reason"}),
    "stream_drift_late_events_total": frozenset({"model"}),
    "stream_drift_series_dropped_total": frozenset({"metric"}),
    "stream_drift_consumer_lag_records": frozenset({"topic", "partition"}),
    "stream_drift_watermark_lag_seconds": frozenset({"model"}),
    "stream_drift_window_size_seconds": frozenset(),
    "stream_drift_window_step_seconds": frozenset(),
    "stream_drift_build_info": frozenset({"version"}),
    "stream_drift_model_performance": frozenset({"model", "model_version", "metric"}),
    "stream_drift_concept_drift_detections_total": frozenset({"model", "detector"}),
    "stream_drift_domain_auc": frozenset({"model", "model_version"}),
    "stream_drift_domain_auc_threshold": frozenset({"model", "model_version"}),
    "stream_drift_label_join_total": frozenset({"model", "outcome"}),
}
#: Series Prometheus itself makes: scrape health and the state of alerting rules.
PROMETHEUS_SERIES: dict[str, frozenset[str] | None] = {
    "up": frozenset(),
    "ALERTS": None,  # carries each alert's own labels
    "ALERTS_FOR_STATE": None,
}
TARGET_LABELS = frozenset({"job", "instance"})

#: Values for the dashboards' variables when rendering; multi-value variables are tried
#: both as "All" (".*") and as a selection of two values, one needing regex escaping.
VARIABLE_CHOICES: list[dict[str, str | list[str]]] = [
    {"datasource": DATASOURCE_UID, "model": "fraud", "version": ".*", "feature": ".*"},
    {
        "datasource": DATASOURCE_UID,
        "model": 'fr"aud',
        "version": "3",
        "feature": ["amount", "merchant.country"],
    },
]
RANGES_S = (3600, 7 * 86400)


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    found = load_dashboards()
    assert found, f"no dashboard JSON in {DASHBOARD_DIR}"
    return found


def recording_rule_names() -> set[str]:
    """``record:`` names of the Prometheus rules file; fails (never skips) if it is missing."""
    assert RULES_FILE.exists(), f"{RULES_FILE} is missing: the dashboards' check needs it"
    doc = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8")) or {}
    return {
        rule["record"]
        for group in doc.get("groups") or []
        for rule in group.get("rules") or []
        if "record" in rule
    }


# --- (1) generated JSON is current -----------------------------------------------------------


def test_generator_check_passes_on_committed_json() -> None:
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"stale dashboards:\n{proc.stdout}\n{proc.stderr}"


def test_generator_output_is_byte_identical(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    generated = sorted(p.name for p in tmp_path.glob("*.json"))
    assert generated == [p.name for p in dashboard_files()]
    for path in dashboard_files():
        text = path.read_text(encoding="utf-8")
        assert (tmp_path / path.name).read_text(encoding="utf-8") == text, path.name
        assert text.endswith("}\n") and not text.endswith("\n\n")
        assert (
            text
            == json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        )


def test_generator_check_reports_stale_json(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(tmp_path)], check=True, timeout=120
    )
    victim = tmp_path / dashboard_files()[0].name
    victim.write_text(victim.read_text(encoding="utf-8").replace('"title"', '"titel"', 1))
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert victim.name in proc.stderr and "stale" in proc.stderr


def test_dashboard_uids_and_ids(dashboards: dict[str, dict[str, Any]]) -> None:
    assert {d["uid"] for d in dashboards.values()} == EXPECTED_UIDS
    for name, dashboard in dashboards.items():
        assert name == f"{dashboard['uid']}.json"
        ids = [p["id"] for p in iter_panels(dashboard)]
        assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids), name
        names = variable_names(dashboard)
        assert len(names) == len(set(names)), name
        for variable in dashboard["templating"]["list"]:
            assert variable.get("id", variable["name"]) == variable["name"], variable


def test_panels_fit_the_grid_without_overlapping(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, dashboard in dashboards.items():
        taken: dict[tuple[int, int], str] = {}
        for panel in dashboard["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, (name, panel["title"])
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in taken, (name, panel["title"], taken[(x, y)])
                    taken[(x, y)] = panel["title"]


# --- (2) queries name only exported metrics or recording rules -------------------------------


def test_queries_name_only_exported_metrics_or_recording_rules(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    allowed = set(WORKER_METRICS) | set(PROMETHEUS_SERIES) | recording_rule_names()
    unknown = [
        (name, title, sorted(metric_names(expr) - allowed), expr)
        for name, dashboard in dashboards.items()
        for title, expr in panel_queries(dashboard)
        if metric_names(expr) - allowed
    ]
    assert not unknown, "unknown metrics:\n" + "\n".join(map(str, unknown))


def test_every_query_selects_a_metric(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, dashboard in dashboards.items():
        for title, expr in panel_queries(dashboard):
            assert metric_names(expr), (name, title, expr)


def test_queries_use_labels_their_metrics_have(dashboards: dict[str, dict[str, Any]]) -> None:
    """Label matchers and by/on clauses only name labels of the metrics involved."""
    problems = []
    for name, dashboard in dashboards.items():
        for title, expr in panel_queries(dashboard):
            metrics = metric_names(expr)
            known: dict[str, frozenset[str] | None] = {**WORKER_METRICS, **PROMETHEUS_SERIES}
            if any(known.get(m) is None for m in metrics):
                continue  # ALERTS or a recording rule: labels not known here
            for metric, labels in label_matchers(expr):
                assert metric is not None, (title, expr)
                extra = labels - (known[metric] or frozenset()) - TARGET_LABELS
                if extra:
                    problems.append((name, title, metric, sorted(extra)))
            union = frozenset().union(*(known[m] or frozenset() for m in metrics))
            extra = grouping_labels(expr) - union - TARGET_LABELS
            if extra:
                problems.append((name, title, "by/on", sorted(extra)))
    assert not problems, problems


def test_label_values_variables_are_turned_into_queries(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    model = dashboards["stream-drift-model.json"]
    by_name = {name: (expr, label) for name, expr, label in variable_queries(model)}
    assert by_name == {
        "model": ("stream_drift_window_samples", "model"),
        "version": ('stream_drift_window_samples{model="$model"}', "model_version"),
        "feature": (
            'stream_drift_statistic{model="$model", model_version=~"$version"}',
            "feature",
        ),
    }
    titles = [title for title, _ in panel_queries(model)]
    assert {"variable model", "variable version", "variable feature"} <= set(titles)


# --- (3) every rendered query parses on a real Prometheus ------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get_json(url: str, timeout: float = 10.0) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:  # 400/422 carry the error as JSON
        body = exc.read()
    result: dict[str, Any] = json.loads(body)
    return result


class Prometheus:
    """A throw-away Prometheus on a loopback port: ``query(expr)`` returns the API's JSON."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.log_path = workdir / "prometheus.log"
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout_s: float = 30.0) -> None:
        config = self.workdir / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n")
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.base}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready after {timeout_s}s:\n{self.log()}")

    def query(self, expr: str) -> dict[str, Any]:
        params = urllib.parse.urlencode({"query": expr, "time": f"{time.time():.3f}"})
        return _get_json(f"{self.base}/api/v1/query?{params}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # by PID: this process only
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    binary = os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus")
    assert binary, "the prometheus binary is needed (Debian package prometheus, or PROMETHEUS_BIN)"
    server = Prometheus(binary, tmp_path_factory.mktemp("prometheus"))
    try:
        try:
            server.start()
        except RuntimeError as exc:
            pytest.fail(str(exc))
        yield server
    finally:
        server.stop()


def test_every_rendered_query_parses_on_prometheus(
    prometheus: Prometheus, dashboards: dict[str, dict[str, Any]]
) -> None:
    failures: list[str] = []
    checked = 0
    for name, dashboard in dashboards.items():
        for title, expr in panel_queries(dashboard):
            for variables in VARIABLE_CHOICES:
                for range_s in RANGES_S:
                    rendered = render(expr, variables, range_s)
                    answer = prometheus.query(rendered)
                    checked += 1
                    if answer.get("status") != "success":
                        failures.append(
                            f"{name} / {title}: {answer.get('errorType')}: {answer.get('error')}"
                            f"\n  {rendered}"
                        )
    if failures:
        print(prometheus.log())
    assert not failures, "\n".join(failures)
    assert checked >= 2 * len(RANGES_S) * 20


def test_prometheus_rejects_a_broken_query(prometheus: Prometheus) -> None:
    """The parse check can fail: a syntax error is reported as an error, not an empty result."""
    assert prometheus.query("sum by (model) (rate(x[5m])")["status"] == "error"
    assert prometheus.query("vector(1)")["status"] == "success"


# --- (4) provisioning ------------------------------------------------------------------------


def test_datasource_provisioning() -> None:
    doc = yaml.safe_load(DATASOURCE_FILE.read_text(encoding="utf-8"))
    assert doc["apiVersion"] == 1
    [source] = doc["datasources"]
    assert source["name"] == DATASOURCE_UID and source["uid"] == DATASOURCE_UID
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert source["isDefault"] is True


def test_dashboard_provider_points_at_the_mounted_dashboards() -> None:
    text = PROVIDER_FILE.read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    assert doc["apiVersion"] == 1
    [provider] = doc["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert path.startswith("/var/lib/grafana/dashboards")
    # The comment tells where deploy/grafana/dashboards must be mounted.
    assert f"deploy/grafana/dashboards:{path}" in text


def _is_provisioned_datasource(ref: Any, dashboard: dict[str, Any]) -> bool:
    if not isinstance(ref, dict) or ref.get("type") != "prometheus":
        return False
    if ref.get("uid") == DATASOURCE_UID:
        return True
    if ref.get("uid") in ("${datasource}", "$datasource"):
        [variable] = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
        return bool(
            variable["type"] == "datasource"
            and variable["query"] == "prometheus"
            and variable["current"]["value"] == DATASOURCE_UID
        )
    return False


def test_every_panel_uses_the_provisioned_datasource(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    for name, dashboard in dashboards.items():
        for panel in iter_panels(dashboard):
            if panel["type"] == "row":
                assert not panel.get("targets"), (name, panel["title"])
                continue
            assert _is_provisioned_datasource(panel.get("datasource"), dashboard), (
                name,
                panel["title"],
                panel.get("datasource"),
            )
            assert panel.get("targets"), (name, panel["title"])
            for target in panel["targets"]:
                ref = target.get("datasource", panel["datasource"])
                assert _is_provisioned_datasource(ref, dashboard), (name, panel["title"])
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                assert _is_provisioned_datasource(variable["datasource"], dashboard), variable
        for annotation in dashboard["annotations"]["list"]:
            if annotation.get("expr"):
                assert _is_provisioned_datasource(annotation["datasource"], dashboard)


def test_model_dashboard_variables_are_chained(dashboards: dict[str, dict[str, Any]]) -> None:
    model = dashboards["stream-drift-model.json"]
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert list(variables) == ["datasource", "model", "version", "feature"]
    assert variables["feature"]["multi"] and variables["feature"]["includeAll"]
    assert "$model" in variables["version"]["query"]
    assert "$model" in variables["feature"]["query"] and "$version" in variables["feature"]["query"]
    for title, expr in panel_queries(model):
        if title.startswith("variable "):
            continue
        assert "$model" in expr or "${model}" in expr, (title, expr)


# --- (5) titles and descriptions -------------------------------------------------------------


def test_panels_have_titles_and_descriptions(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, dashboard in dashboards.items():
        assert dashboard["title"] and dashboard.get("description"), name
        for panel in iter_panels(dashboard):
            assert panel.get("title", "").strip(), (name, panel)
            if panel["type"] == "row":
                continue
            description = panel.get("description", "")
            assert len(description) > 20 and description.endswith("."), (name, panel["title"])
        titles = [p["title"] for p in iter_panels(dashboard)]
        assert len(titles) == len(set(titles)), (name, titles)


def test_model_dashboard_has_a_model_quality_row(dashboards: dict[str, dict[str, Any]]) -> None:
    """Performance, concept-drift detections, domain AUC with its threshold, label join."""
    panels = list(iter_panels(dashboards["stream-drift-model.json"]))
    rows = [i for i, p in enumerate(panels) if p["type"] == "row"]
    start = next(i for i in rows if panels[i]["title"] == "Model quality")
    end = min([i for i in rows if i > start], default=len(panels))
    metrics = set()
    for panel in panels[start + 1 : end]:
        for target in panel.get("targets", []):
            metrics |= metric_names(target["expr"])
    assert metrics == {
        "stream_drift_model_performance",
        "stream_drift_concept_drift_detections_total",
        "stream_drift_domain_auc",
        "stream_drift_domain_auc_threshold",
        "stream_drift_label_join_total",
    }
