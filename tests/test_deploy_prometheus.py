"""The Prometheus rules, Prometheus and Alertmanager configuration and the runbook of deploy/.

Runs Debian's ``promtool`` and ``amtool`` (check, unit tests, routing) and a real
``prometheus-alertmanager`` (inhibition), and checks the rules' structure: labels and
annotations of every alert, runbook anchors, metric names against DESIGN.md §3.4, recording
rule names. A missing binary is a failure, never a skip.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "stream-drift.rules.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"

INSTALL_HINT = (
    "install Debian's prometheus / prometheus-alertmanager "
    "(apt-get install prometheus prometheus-alertmanager)"
)

# DESIGN.md §3.4 and the worker's metric table, by exported name (histograms by base name).
WORKER_METRICS = frozenset(
    {
        "stream_drift_statistic",
        "stream_drift_threshold",
        "stream_drift_p_value",
        "stream_drift_alert_state",
        "stream_drift_window_samples",
        "stream_drift_missing_ratio",
        "stream_drift_events_total",
        "stream_drift_alerts_total",
        "stream_drift_last_evaluation_timestamp_seconds",
        "stream_drift_evaluation_duration_seconds",
        "stream_drift_deadletter_total",
        "stream_drift_invalid_values_total",
        "stream_drift_late_events_total",
        "stream_drift_series_dropped_total",
        "stream_drift_consumer_lag_records",
        "stream_drift_watermark_lag_seconds",
        "stream_drift_window_size_seconds",
        "stream_drift_window_step_seconds",
        "stream_drift_build_info",
        "stream_drift_model_performance",
        "stream_drift_concept_drift_detections_total",
        "stream_drift_domain_auc",
        "stream_drift_domain_auc_threshold",
        "stream_drift_label_join_total",
    }
)
HISTOGRAMS = frozenset({"stream_drift_evaluation_duration_seconds"})

# Upper bounds the end-to-end test relies on (it waits for these alerts, rules unchanged).
MAX_FOR = {"StreamDriftCritical": 60.0, "StreamDriftWorkerDown": 60.0}

RUNBOOK_URL = re.compile(
    r"^\{\{ with \$externalLabels\.runbook_base_url \}\}\{\{ \. \}\}#([a-z0-9-]+)\{\{ end \}\}$"
)
METRIC_NAME = re.compile(r"stream_drift_[a-z_]+")
# A recorded name (level:metric:operations) or any other name holding a colon.
COLON_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*:[A-Za-z0-9_:]*")
RECORD_NAME = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$")
AGGREGATION = re.compile(
    r"\b(by|without|sum|avg|min|max|count|group|stddev|stdvar|topk|bottomk|quantile|"
    r"count_values)\b"
)


# ------------------------------------------------------------------------------ helpers
def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` not found on PATH: {INSTALL_HINT}", pytrace=False)
    return path


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, (
        f"`{' '.join(proc.args)}` exited {proc.returncode}\n"
        f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )


def seconds(duration: str) -> float:
    """A Prometheus duration (``1m``, ``1h30m``, ``30s``) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return sum(int(n) * units[u] for n, u in parts)


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces -> '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def rule_groups() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    assert isinstance(groups, list)
    return groups


def alerting_rules() -> list[dict[str, Any]]:
    return [r for g in rule_groups() for r in g["rules"] if "alert" in r]


def recording_rules() -> list[dict[str, Any]]:
    return [r for g in rule_groups() for r in g["rules"] if "record" in r]


def runbook_anchors() -> dict[str, str]:
    """``{anchor: heading}`` of the runbook's ``## `` headings."""
    headings = re.findall(r"^## (.+?)\s*$", RUNBOOK.read_text(encoding="utf-8"), re.M)
    return {github_anchor(h): h for h in headings}


ALERTS = alerting_rules()
ALERT_NAMES = [r["alert"] for r in ALERTS]
# Alerts whose severity label is a template over the worker's state (1 warning, 2 critical).
SEVERITY_FROM_STATE = {
    "StreamDriftDataQuality": "{{ if ge $value 2.0 }}critical{{ else }}warning{{ end }}",
    "StreamDriftConceptDrift": "{{ if ge $value 2.0 }}critical{{ else }}warning{{ end }}",
    "StreamDriftMultivariateDrift": "{{ if ge $value 2.0 }}critical{{ else }}warning{{ end }}",
}
# Categories of the relays of the worker's alert state (the series' labels are kept).
RELAYED = ("drift", "data_quality", "concept_drift", "multivariate")


# ------------------------------------------------------------------- promtool / amtool
def test_promtool_check_rules() -> None:
    assert_ok(run(tool("promtool"), "check", "rules", str(RULES)))


def test_promtool_check_config() -> None:
    assert_ok(run(tool("promtool"), "check", "config", str(PROMETHEUS_CONFIG)))


def test_promtool_rule_unit_tests() -> None:
    files = sorted(RULE_TESTS.glob("*.yml"))
    assert files, f"no promtool unit tests in {RULE_TESTS}"
    assert_ok(run(tool("promtool"), "test", "rules", *map(str, files)))


def test_amtool_check_config() -> None:
    assert_ok(run(tool("amtool"), "check-config", str(ALERTMANAGER_CONFIG)))


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (
            {"alertname": "StreamDriftCritical", "severity": "critical", "category": "drift"},
            "pager",
        ),
        (
            {"alertname": "StreamDriftWarning", "severity": "warning", "category": "drift"},
            "tickets",
        ),
        (
            {"alertname": "StreamDriftWorkerDown", "severity": "critical", "category": "detector"},
            "pager",
        ),
        (
            {
                "alertname": "StreamDriftDataQuality",
                "severity": "critical",
                "category": "data_quality",
            },
            "pager",
        ),
        (
            {
                "alertname": "StreamDriftDataQuality",
                "severity": "warning",
                "category": "data_quality",
            },
            "tickets",
        ),
        (
            {
                "alertname": "StreamDriftLateEventsHigh",
                "severity": "warning",
                "category": "detector",
            },
            "tickets",
        ),
        ({"alertname": "SomethingWithoutSeverity"}, "tickets"),
    ],
)
def test_alertmanager_routes_by_severity(labels: dict[str, str], receiver: str) -> None:
    proc = run(
        tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"--verify.receivers={receiver}",
        *(f"{k}={v}" for k, v in labels.items()),
        timeout=30,
    )
    assert_ok(proc)
    assert proc.stdout.split() == [receiver], proc.stdout


# ---------------------------------------------------------------------------- structure
def test_rule_groups_and_alert_names() -> None:
    assert len(ALERT_NAMES) == len(set(ALERT_NAMES)), "duplicate alert names"
    assert set(ALERT_NAMES) >= {
        "StreamDriftCritical",
        "StreamDriftWarning",
        "StreamDriftDataQuality",
        "StreamDriftConceptDrift",
        "StreamDriftMultivariateDrift",
        "StreamDriftWorkerDown",
        "StreamDriftEvaluationStalled",
        "StreamDriftConsumerLagGrowing",
        "StreamDriftWatermarkStalled",
        "StreamDriftDeadLetterRatioHigh",
        "StreamDriftLateEventsHigh",
        "StreamDriftSeriesCapReached",
    }


@pytest.mark.parametrize("rule", ALERTS, ids=ALERT_NAMES)
def test_alert_labels_and_annotations(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    labels, annotations = rule.get("labels", {}), rule.get("annotations", {})
    severity = labels.get("severity")
    if name in SEVERITY_FROM_STATE:
        assert severity == SEVERITY_FROM_STATE[name], f"{name}: severity template"
    else:
        assert severity in {"critical", "warning"}, f"{name}: severity"
    assert labels.get("category") in {*RELAYED, "detector"}, f"{name}: category"
    for key in ("summary", "description", "runbook_url"):
        assert str(annotations.get(key, "")).strip(), f"{name}: annotation {key!r} missing"
    match = RUNBOOK_URL.match(annotations["runbook_url"].strip())
    assert match, (
        f"{name}: runbook_url must be built from the external label runbook_base_url only, "
        f"got {annotations['runbook_url']!r}"
    )
    anchor = match.group(1)
    assert anchor == name.lower(), f"{name}: runbook anchor #{anchor} is not #{name.lower()}"
    anchors = runbook_anchors()
    assert anchor in anchors, f"{name}: docs/runbook.md has no '## {name}' heading (#{anchor})"
    assert anchors[anchor] == name, f"{name}: heading {anchors[anchor]!r} is not the alert name"


def test_every_runbook_alert_section_is_an_alert() -> None:
    sections = {h for h in runbook_anchors().values() if h.startswith("StreamDrift")}
    assert sections == set(ALERT_NAMES)


def test_runbook_internal_links_resolve() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    anchors = {github_anchor(h) for h in re.findall(r"^#{1,6} (.+?)\s*$", text, re.M)}
    broken = set(re.findall(r"\]\(#([^)]+)\)", text)) - anchors
    assert not broken, f"docs/runbook.md links to missing sections: {sorted(broken)}"


def test_drift_alerts_keep_the_series_labels() -> None:
    drift = [r for r in ALERTS if r["labels"]["category"] in RELAYED]
    assert {r["alert"] for r in drift} == {
        "StreamDriftCritical",
        "StreamDriftWarning",
        "StreamDriftDataQuality",
        "StreamDriftConceptDrift",
        "StreamDriftMultivariateDrift",
    }
    for rule in drift:
        expr = rule["expr"]
        assert "stream_drift_alert_state" in expr
        found = AGGREGATION.search(expr)
        assert found is None, (
            f"{rule['alert']}: aggregation {found.group(0)!r} would drop instance "
            "(Alertmanager's WorkerDown inhibition needs it)"
        )
        assert "keep_firing_for" in rule, f"{rule['alert']}: keep_firing_for missing"
        assert seconds(rule["keep_firing_for"]) >= 300


def test_drift_and_data_quality_alerts_split_the_statistics() -> None:
    """The data-quality statistics' states raise StreamDriftDataQuality, never a drift alert;
    their names are the worker's (stream_drift.stats.QUALITY_STATISTICS)."""
    from stream_drift.stats import QUALITY_STATISTICS

    by_name = {r["alert"]: r for r in ALERTS}
    names = "|".join(sorted(QUALITY_STATISTICS, reverse=True))
    assert names == "missing_rate|mismatch_rate"
    for alert in ("StreamDriftCritical", "StreamDriftWarning"):
        assert f'statistic!~"{names}"' in by_name[alert]["expr"], alert
    assert by_name["StreamDriftDataQuality"]["expr"].strip() == (
        f'stream_drift_alert_state{{statistic=~"{names}"}} > 0'
    )
    # Both severities the template can give are seen in the promtool unit tests.
    seen = set()
    for path in RULE_TESTS.glob("*.yml"):
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                if check["alertname"] == "StreamDriftDataQuality":
                    for alert in check.get("exp_alerts") or []:
                        assert alert["exp_labels"]["category"] == "data_quality"
                        seen.add(alert["exp_labels"]["severity"])
    assert seen == {"warning", "critical"}


def test_model_quality_alerts_split_the_statistics() -> None:
    """concept_drift and domain_auc states raise their own alerts, never a drift alert; the
    names are the worker's (stream_drift.pipeline.alert_record)."""
    from stream_drift.pipeline.alert_record import CONCEPT_DRIFT, DOMAIN_AUC, alert_category

    by_name = {r["alert"]: r for r in ALERTS}
    for alert in ("StreamDriftCritical", "StreamDriftWarning"):
        assert f'statistic!~"{CONCEPT_DRIFT}|{DOMAIN_AUC}"' in by_name[alert]["expr"], alert
    for alert, statistic in (
        ("StreamDriftConceptDrift", CONCEPT_DRIFT),
        ("StreamDriftMultivariateDrift", DOMAIN_AUC),
    ):
        rule = by_name[alert]
        assert rule["expr"].strip() == f'stream_drift_alert_state{{statistic="{statistic}"}} > 0'
        assert rule["labels"]["category"] == alert_category(statistic)
    # Both severities the template can give are seen in the promtool unit tests.
    seen: dict[str, set[str]] = {
        "StreamDriftConceptDrift": set(),
        "StreamDriftMultivariateDrift": set(),
    }
    for path in RULE_TESTS.glob("*.yml"):
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                if check["alertname"] in seen:
                    for alert in check.get("exp_alerts") or []:
                        seen[check["alertname"]].add(alert["exp_labels"]["severity"])
    assert all(s == {"warning", "critical"} for s in seen.values()), seen


def test_for_durations_the_end_to_end_test_waits_for() -> None:
    by_name = {r["alert"]: r for r in ALERTS}
    for name, limit in MAX_FOR.items():
        assert seconds(by_name[name].get("for", "0s")) <= limit, f"{name}: for > {limit:g}s"
    assert by_name["StreamDriftWorkerDown"]["expr"].strip() == 'up{job="stream-drift"} == 0'


def test_detector_alerts_about_a_model_keep_the_model_label() -> None:
    """Their ``model`` label mutes the model's drift alerts in Alertmanager (rule b)."""
    per_model = {
        "StreamDriftEvaluationStalled",
        "StreamDriftWatermarkStalled",
        "StreamDriftLateEventsHigh",
    }
    seen = set()
    for path in RULE_TESTS.glob("*.yml"):
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                if check["alertname"] not in per_model:
                    continue
                for alert in check.get("exp_alerts") or []:
                    assert alert["exp_labels"].get("model"), f"{check['alertname']}: no model"
                    assert alert["exp_labels"]["category"] == "detector"
                    seen.add(check["alertname"])
    assert seen == per_model


def _metric_names(text: str) -> set[str]:
    return set(METRIC_NAME.findall(COLON_NAME.sub(" ", text)))


def test_rules_use_only_exported_metrics() -> None:
    unknown: dict[str, set[str]] = {}
    for group in rule_groups():
        for rule in group["rules"]:
            texts = [rule["expr"], *rule.get("annotations", {}).values()]
            for name in set().union(*map(_metric_names, texts)):
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                if name in WORKER_METRICS or (base in HISTOGRAMS and base != name):
                    continue
                unknown.setdefault(name, set()).add(rule.get("alert") or rule["record"])
    assert not unknown, f"metrics not exported by the worker: {unknown}"


def test_recording_rule_names_are_level_metric_operations() -> None:
    records = recording_rules()
    assert records
    recorded = {r["record"] for r in records}
    for name in recorded:
        assert RECORD_NAME.match(name), f"{name!r} is not level:metric:operations"
        assert name.split(":")[1].startswith("stream_drift_"), name
    # Every recorded series is used by an alert or tested (dashboards use the rest).
    tests = "\n".join(p.read_text(encoding="utf-8") for p in RULE_TESTS.glob("*.yml"))
    for name in recorded:
        assert name in tests, f"recording rule {name} has no promql_expr_test"


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS.glob("*.yml"):
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                exp = check.get("exp_alerts") or []
                (firing if exp else silent).add(check["alertname"])
                for alert in exp:
                    annotations = alert.get("exp_annotations", {})
                    assert {"summary", "description", "runbook_url"} <= set(annotations), (
                        f"{path.name}: {check['alertname']} at {check['eval_time']}"
                    )
    assert firing >= set(ALERT_NAMES), f"never seen firing: {set(ALERT_NAMES) - firing}"
    assert silent >= set(ALERT_NAMES), f"never checked silent: {set(ALERT_NAMES) - silent}"


def test_prometheus_config() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    assert "runbook_base_url" in config["global"]["external_labels"]
    assert config["rule_files"] == ["rules/*.yml"]
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) == {"stream-drift", "prometheus"}
    files = jobs["stream-drift"]["file_sd_configs"][0]["files"]
    targets = yaml.safe_load((PROMETHEUS_CONFIG.parent / files[0]).read_text(encoding="utf-8"))
    assert targets[0]["targets"] == ["worker-1:6066", "worker-2:6066"]
    am = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am == ["alertmanager:9093"]


# ------------------------------------------------------------- Alertmanager inhibition
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(url: str, body: object | None = None, timeout: float = 5) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read().decode()
    return json.loads(text) if text.strip() else None


@dataclass
class Alertmanager:
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    binary = tool("prometheus-alertmanager")
    port = free_port()
    log = tmp_path / "alertmanager.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={ALERTMANAGER_CONFIG}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    am = Alertmanager(f"http://127.0.0.1:{port}", log, process)
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                pytest.fail(f"alertmanager exited {process.returncode}:\n{am.log_text()}")
            try:
                urllib.request.urlopen(f"{am.url}/-/ready", timeout=1).close()
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"alertmanager not ready after 20s:\n{am.log_text()}")
                time.sleep(0.2)
        yield am
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def drift(alertname: str, model: str, feature: str, statistic: str, **extra: str) -> dict[str, str]:
    severity = "critical" if alertname == "StreamDriftCritical" else "warning"
    return {
        "alertname": alertname,
        "severity": severity,
        "category": "drift",
        "model": model,
        "feature": feature,
        "statistic": statistic,
        "job": "stream-drift",
        "instance": "worker-1:6066",
        **extra,
    }


def data_quality(
    severity: str, model: str, feature: str, statistic: str, **extra: str
) -> dict[str, str]:
    return {
        "alertname": "StreamDriftDataQuality",
        "severity": severity,
        "category": "data_quality",
        "model": model,
        "feature": feature,
        "statistic": statistic,
        "job": "stream-drift",
        "instance": "worker-1:6066",
        **extra,
    }


def model_quality(alertname: str, severity: str, model: str, **extra: str) -> dict[str, str]:
    concept = alertname == "StreamDriftConceptDrift"
    return {
        "alertname": alertname,
        "severity": severity,
        "category": "concept_drift" if concept else "multivariate",
        "model": model,
        "feature": "(predictions)" if concept else "(all features)",
        "statistic": "concept_drift" if concept else "domain_auc",
        "job": "stream-drift",
        "instance": "worker-1:6066",
        **extra,
    }


def detector(alertname: str, severity: str, **extra: str) -> dict[str, str]:
    return {"alertname": alertname, "severity": severity, "category": "detector", **extra}


# name -> (labels, expected state, name of the expected inhibiting alert or None)
SCENARIO: dict[str, tuple[dict[str, str], str, str | None]] = {
    # (a) a critical mutes the warning of the same model/version/feature/statistic only
    "crit": (
        drift("StreamDriftCritical", "fraud", "amount", "psi", model_version="7"),
        "active",
        None,
    ),
    "warn_same": (
        drift("StreamDriftWarning", "fraud", "amount", "psi", model_version="7"),
        "suppressed",
        "crit",
    ),
    "warn_other_stat": (
        drift("StreamDriftWarning", "fraud", "amount", "ks", model_version="7"),
        "active",
        None,
    ),
    "warn_other_version": (
        drift("StreamDriftWarning", "fraud", "amount", "psi", model_version="6"),
        "active",
        None,
    ),
    # (a) without model_version on both sides
    "crit_nover": (drift("StreamDriftCritical", "nover", "x", "psi"), "active", None),
    "warn_nover": (drift("StreamDriftWarning", "nover", "x", "psi"), "suppressed", "crit_nover"),
    # (c) a dead worker mutes the drift alerts it reported, not the others'
    "down": (
        detector("StreamDriftWorkerDown", "critical", job="stream-drift", instance="worker-2:6066"),
        "active",
        None,
    ),
    "crit_on_dead": (
        drift(
            "StreamDriftCritical",
            "credit",
            "age",
            "psi",
            model_version="3",
            instance="worker-2:6066",
        ),
        "suppressed",
        "down",
    ),
    # (b) a critical detector alert of a model mutes all its drift alerts
    "stalled": (
        detector(
            "StreamDriftEvaluationStalled",
            "critical",
            model="scoring",
            job="stream-drift",
            instance="worker-1:6066",
        ),
        "active",
        None,
    ),
    "crit_stalled": (
        drift("StreamDriftCritical", "scoring", "income", "psi", model_version="1"),
        "suppressed",
        "stalled",
    ),
    # (b) a warning detector alert mutes the model's drift warnings, never its pages
    "watermark": (
        detector(
            "StreamDriftWatermarkStalled",
            "warning",
            model="churn",
            job="stream-drift",
            instance="worker-1:6066",
        ),
        "active",
        None,
    ),
    "warn_churn": (
        drift("StreamDriftWarning", "churn", "tenure", "psi", model_version="2"),
        "suppressed",
        "watermark",
    ),
    "crit_churn": (
        drift("StreamDriftCritical", "churn", "plan", "chi2", model_version="2"),
        "active",
        None,
    ),
    # data quality: a critical mutes the warning of the same series only ...
    "dq_crit": (
        data_quality("critical", "fraud", "age", "mismatch_rate", model_version="7"),
        "active",
        None,
    ),
    "dq_warn_same": (
        data_quality("warning", "fraud", "age", "mismatch_rate", model_version="7"),
        "suppressed",
        "dq_crit",
    ),
    "dq_warn_other_stat": (
        data_quality("warning", "fraud", "age", "missing_rate", model_version="7"),
        "active",
        None,
    ),
    # ... a dead worker mutes the data-quality alerts it reported (c) ...
    "dq_on_dead": (
        data_quality(
            "critical",
            "credit",
            "income",
            "missing_rate",
            model_version="3",
            instance="worker-2:6066",
        ),
        "suppressed",
        "down",
    ),
    # ... and an unhealthy detector for the model mutes them like drift alerts (b).
    "dq_stalled": (
        data_quality("critical", "scoring", "zip", "mismatch_rate", model_version="1"),
        "suppressed",
        "stalled",
    ),
    "dq_warn_churn": (
        data_quality("warning", "churn", "age", "missing_rate", model_version="2"),
        "suppressed",
        "watermark",
    ),
    "dq_crit_churn": (
        data_quality("critical", "churn", "plan", "missing_rate", model_version="2"),
        "active",
        None,
    ),
    # model quality: muted like drift by a dead worker (c) and an unhealthy detector (b) ...
    "concept_on_dead": (
        model_quality(
            "StreamDriftConceptDrift",
            "critical",
            "credit",
            model_version="3",
            instance="worker-2:6066",
        ),
        "suppressed",
        "down",
    ),
    "mv_stalled": (
        model_quality("StreamDriftMultivariateDrift", "critical", "scoring", model_version="1"),
        "suppressed",
        "stalled",
    ),
    "mv_warn_churn": (
        model_quality("StreamDriftMultivariateDrift", "warning", "churn", model_version="2"),
        "suppressed",
        "watermark",
    ),
    "concept_crit_churn": (
        model_quality("StreamDriftConceptDrift", "critical", "churn", model_version="2"),
        "active",
        None,
    ),
    # ... and a concept-drift page mutes nothing of the same model.
    "concept_crit": (
        model_quality("StreamDriftConceptDrift", "critical", "fraud", model_version="7"),
        "active",
        None,
    ),
    # detector alerts without a model mute nothing
    "deadletter": (
        detector("StreamDriftDeadLetterRatioHigh", "warning", job="stream-drift"),
        "active",
        None,
    ),
    "lag": (
        detector("StreamDriftConsumerLagGrowing", "warning", topic="drift.events"),
        "active",
        None,
    ),
}


def _key(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def test_alertmanager_inhibitions(alertmanager: Alertmanager) -> None:
    now = datetime.now(UTC)
    posted = [
        {
            "labels": labels,
            "annotations": {"summary": name},
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(hours=1)).isoformat(),
            "generatorURL": "http://prometheus.test/graph",
        }
        for name, (labels, _, _) in SCENARIO.items()
    ]
    by_key = {_key(labels): name for name, (labels, _, _) in SCENARIO.items()}
    problems: list[str] = []
    try:
        http(f"{alertmanager.url}/api/v2/alerts", posted)
        deadline = time.monotonic() + 20
        while True:
            got = http(f"{alertmanager.url}/api/v2/alerts")
            states = {by_key.get(_key(a["labels"]), "?"): a for a in got}
            fingerprints = {a["fingerprint"]: by_key.get(_key(a["labels"]), "?") for a in got}
            problems = []
            for name, (_, state, source) in SCENARIO.items():
                alert = states.get(name)
                if alert is None:
                    problems.append(f"{name}: not in /api/v2/alerts")
                    continue
                status = alert["status"]
                inhibited_by = sorted(fingerprints.get(f, f) for f in status["inhibitedBy"])
                expected = [source] if source else []
                if status["state"] != state or inhibited_by != expected:
                    problems.append(
                        f"{name}: state {status['state']!r} inhibitedBy {inhibited_by}, "
                        f"expected {state!r} by {expected}"
                    )
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    except (urllib.error.URLError, OSError) as exc:
        pytest.fail(f"alertmanager API: {exc}\n--- log\n{alertmanager.log_text()}")
    assert not problems, "\n".join(problems) + f"\n--- alertmanager log\n{alertmanager.log_text()}"
