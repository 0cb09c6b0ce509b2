"""End to end with the real programs: a drifting stream pages the on-call engineer.

One real worker on the embedded broker, Debian's real Prometheus loading the shipped rules
(``deploy/prometheus/rules``, unchanged; only the scrape and evaluation intervals are short)
and Debian's real Alertmanager loading the shipped config (``deploy/alertmanager``, only the
webhook receivers pointed at a server run by this test). A producer thread sends a live
stream of two models (event time = now):

* ``fraud``: its feature ``amount`` shifts by 4 standard deviations at a known time;
* ``churn``: never changes (the "stream with no drift").

Then:

1. ``StreamDriftCritical`` for ``fraud``/``amount`` fires in Prometheus and reaches the
   paging webhook through Alertmanager, with its labels, summary and runbook link; the
   unshifted features and the steady model never fire, nor does any detector-health alert;
2. every Grafana dashboard query runs against this Prometheus, and the main panels have data;
3. the worker is killed: ``StreamDriftWorkerDown`` reaches the paging webhook and the drift
   alert of the dead worker is inhibited in Alertmanager.

Every wait is bounded; a failure prints the worker, Prometheus and Alertmanager logs.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from grafana_queries import dashboard_files, panel_queries, render

from stream_drift.app.kafka_io import publish_reference
from stream_drift.config import Settings
from stream_drift.pipeline.reference import build_reference
from stream_drift.tools.embedded import EmbeddedBroker, find_free_port
from stream_drift.tools.supervisor import WorkerProcess

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "stream-drift.rules.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
RUNBOOK_BASE = "https://runbooks.example.org/stream-drift/runbook.md"
VERSION = "7"
MODELS = ("fraud", "churn")
FEATURES = ("amount", "age", "country")
COUNTRIES = ["DE", "FR", "US", "ES"]
COUNTRY_P = [0.4, 0.3, 0.2, 0.1]
EVENTS_PER_SECOND = 150  # per model
SHIFT = 80.0  # 4 sigma of amount
ROLES = ("events", "labels", "partials", "alerts", "results", "references", "deadletter")


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} not found: install Debian's prometheus and prometheus-alertmanager "
            "(apt-get install -y prometheus prometheus-alertmanager; .ci/run does)"
        )
    return path


# ------------------------------------------------------------------------ processes


@dataclass
class Process:
    """A program this test started, stopped by its PID."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start(name: str, argv: list[str], workdir: Path) -> Process:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    return Process(name, proc, log)


def http_json(url: str, data: Any = None, timeout: float = 5.0) -> Any:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"} if body else {}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


# ------------------------------------------------------------------------- webhook


@dataclass
class Webhook:
    """An Alertmanager webhook receiver: remembers every notification with its path."""

    port: int = field(default_factory=find_free_port)
    received: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                payload = json.loads(self.rfile.read(length))
                hook.received.append((time.time(), self.path, payload))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def alerts(self, path: str | None = None) -> list[tuple[float, str, dict[str, Any]]]:
        """(time received, path, alert) of every alert in every notification."""
        return [
            (t, p, alert)
            for t, p, payload in list(self.received)
            if path is None or p == path
            for alert in payload.get("alerts", [])
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------ producer


class LiveStream:
    """Sends both models' events in real time (ts = now) from a thread; ``drift()`` shifts
    fraud's amount from then on."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.drift_at: float | None = None
        self.sent = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._rng = np.random.default_rng(11)
        self._ids = itertools.count()

    def start(self) -> None:
        self._thread.start()

    def drift(self) -> float:
        self.drift_at = time.time()
        return self.drift_at

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _event(self, model: str, ts: float) -> bytes:
        rng = self._rng
        amount = float(rng.normal(100.0, 20.0))
        if model == "fraud" and self.drift_at is not None and ts >= self.drift_at:
            amount += SHIFT
        event = {
            "model": model,
            "model_version": VERSION,
            "event_id": f"{model}-{next(self._ids)}",
            "ts": ts,
            "features": {
                "amount": amount,
                "age": float(rng.uniform(18.0, 80.0)),
                "country": str(rng.choice(COUNTRIES, p=COUNTRY_P)),
            },
            "prediction": float(rng.beta(2.0, 5.0)),
        }
        return json.dumps(event).encode()

    def _junk(self) -> bytes:
        """A bad record naming a new model each time: dead-lettered, never a new label."""
        n = next(self._ids)
        if n % 2:
            return json.dumps({"model": f"junk-{n}", "features": {"amount": [n]}}).encode()
        return json.dumps({"model": f"nobody-{n}", "features": {"amount": 1.0}}).encode()

    async def _run(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        try:
            await producer.start()
            tick = 0.2
            per_tick = max(1, int(EVENTS_PER_SECOND * tick))
            partitions = itertools.cycle(range(4))
            while not self._stop.is_set():
                began = time.time()
                await producer.send(self.topic, self._junk(), partition=next(partitions))
                for i in range(per_tick):
                    ts = began + i * tick / per_tick
                    for model in MODELS:
                        await producer.send(
                            self.topic, self._event(model, ts), partition=next(partitions)
                        )
                        self.sent += 1
                await producer.flush()
                await asyncio.sleep(max(0.0, tick - (time.time() - began)))
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            await producer.stop()


# ------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    worker: WorkerProcess
    prometheus: Process
    alertmanager: Process
    webhook: Webhook
    stream: LiveStream
    prometheus_url: str
    alertmanager_url: str

    def logs(self) -> str:
        parts = [
            f"\n----- worker (running={self.worker.is_running()}) -----\n"
            f"{self.worker.log_tail(60)}",
            f"\n----- prometheus -----\n{self.prometheus.tail(40)}",
            f"\n----- alertmanager -----\n{self.alertmanager.tail(40)}",
            f"\n----- webhook received -----\n{json.dumps(self.webhook.received)[-4000:]}",
            f"\n----- producer: sent {self.stream.sent}, error {self.stream.error!r} -----",
        ]
        return "".join(parts)

    def wait(self, condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            for p in (self.prometheus, self.alertmanager):
                if p.proc.poll() is not None:
                    pytest.fail(f"{p.name} exited while waiting for {what}{self.logs()}")
            if self.stream.error is not None:
                pytest.fail(f"producer failed while waiting for {what}{self.logs()}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{self.logs()}")
            time.sleep(1.0)

    def prometheus_alerts(self) -> list[dict[str, Any]]:
        data = http_json(f"{self.prometheus_url}/api/v1/alerts")
        return list(data["data"]["alerts"])

    def query(self, expr: str) -> dict[str, Any]:
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            return dict(http_json(url))
        except urllib.error.HTTPError as exc:
            return dict(json.loads(exc.read()))

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        return list(http_json(f"{self.alertmanager_url}/api/v2/alerts"))


def prometheus_config(path: Path, worker_port: int, alertmanager_port: int) -> Path:
    """The test's prometheus.yml: short intervals, the shipped rules file as it is."""
    config = {
        "global": {
            "scrape_interval": "1s",
            "evaluation_interval": "1s",
            "external_labels": {"runbook_base_url": RUNBOOK_BASE},
        },
        "rule_files": [str(RULES)],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
        },
        "scrape_configs": [
            {
                "job_name": "stream-drift",
                "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}],
            }
        ],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def alertmanager_config(path: Path, webhook_port: int) -> Path:
    """The shipped Alertmanager config with every webhook URL pointed at the test's server
    (same path); routes, grouping and inhibitions untouched."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    n = 0
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            url = urllib.parse.urlsplit(hook["url"])
            hook["url"] = f"http://127.0.0.1:{webhook_port}{url.path}"
            n += 1
    assert n >= 2, "the shipped config should have a paging and a ticket webhook"
    path.write_text(yaml.safe_dump(config))
    return path


def reference_columns(seed: int, n: int = 20_000) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "amount": rng.normal(100.0, 20.0, n),
        "age": rng.uniform(18.0, 80.0, n),
        "country": list(rng.choice(COUNTRIES, n, p=COUNTRY_P)),
        "score": rng.beta(2.0, 5.0, n),
    }


@pytest.fixture
def stack(kafka_broker: EmbeddedBroker, tmp_path: Path) -> Iterator[Stack]:
    prometheus_bin, alertmanager_bin = binary("prometheus"), binary("prometheus-alertmanager")
    bootstrap = kafka_broker.bootstrap_servers
    app_id = f"oncall-{int(time.time())}"
    settings = Settings().override(
        {
            "app_id": app_id,
            "kafka": {
                "bootstrap_servers": bootstrap,
                "session_timeout_seconds": 6.0,
                "heartbeat_interval_seconds": 1.0,
                "rebalance_timeout_seconds": 6.0,
            },
            "topics": {role: f"{app_id}.{role}" for role in ROLES},
            "window": {
                "size_seconds": 10,
                "step_seconds": 5,
                "allowed_lateness_seconds": 1.0,
                "idle_timeout_seconds": 8.0,
            },
            "alerts": {"runbook_base_url": RUNBOOK_BASE},
            "web": {"port": find_free_port()},
            "worker": {"data_dir": str(tmp_path / "data")},
        }
    )
    worker = WorkerProcess(settings, tmp_path, name="worker")
    webhook = Webhook()
    am_port, prom_port = find_free_port(), find_free_port()
    alertmanager = start(
        "alertmanager",
        [
            alertmanager_bin,
            f"--config.file={alertmanager_config(tmp_path / 'alertmanager.yml', webhook.port)}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ],
        tmp_path,
    )
    prometheus_yml = prometheus_config(tmp_path / "prometheus.yml", settings.web.port, am_port)
    prometheus = start(
        "prometheus",
        [
            prometheus_bin,
            f"--config.file={prometheus_yml}",
            f"--storage.tsdb.path={tmp_path / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        tmp_path,
    )
    stream = LiveStream(bootstrap, settings.topics.events)
    s = Stack(
        worker,
        prometheus,
        alertmanager,
        webhook,
        stream,
        f"http://127.0.0.1:{prom_port}",
        f"http://127.0.0.1:{am_port}",
    )
    try:
        for model in MODELS:
            profile = build_reference(
                reference_columns(seed=7), model=model, model_version=VERSION, prediction=["score"]
            )
            asyncio.run(
                publish_reference(bootstrap, settings.topics.references, profile, partitions=1)
            )
        worker.start()
        worker.wait_ready(90)
        s.wait(lambda: ready(f"{s.prometheus_url}/-/ready"), timeout=60, what="Prometheus")
        s.wait(lambda: ready(f"{s.alertmanager_url}/-/ready"), timeout=60, what="Alertmanager")
        yield s
    finally:
        stream.stop()
        worker.kill()
        prometheus.stop()
        alertmanager.stop()
        webhook.close()


# --------------------------------------------------------------------------- the test


def firing(alerts: list[dict[str, Any]], name: str, **labels: str) -> list[dict[str, Any]]:
    return [
        a
        for a in alerts
        if a["labels"].get("alertname") == name
        and all(a["labels"].get(k) == v for k, v in labels.items())
    ]


def test_drift_pages_through_prometheus_and_alertmanager(stack: Stack) -> None:
    s = stack
    s.wait(
        lambda: s.query('up{job="stream-drift"} == 1')["data"]["result"],
        timeout=60,
        what="Prometheus scraping the worker",
    )
    s.stream.start()
    # Clean traffic first: both models judged and quiet.
    s.wait(
        lambda: all(
            s.query(f'stream_drift_statistic{{model="{m}",feature="amount",statistic="psi"}}')[
                "data"
            ]["result"]
            for m in MODELS
        ),
        timeout=90,
        what="the first judged windows of both models",
    )
    injected = s.stream.drift()

    # 1. The page: StreamDriftCritical for fraud/amount through Alertmanager.
    def paged() -> list[tuple[float, str, dict[str, Any]]]:
        return [
            (t, p, a)
            for t, p, a in s.webhook.alerts("/page")
            if a["labels"].get("alertname") == "StreamDriftCritical" and a["status"] == "firing"
        ]

    [(received, _, alert), *_] = s.wait(
        paged, timeout=240, what="StreamDriftCritical at the paging webhook"
    )
    delay = received - injected
    print(f"\ndrift injected -> page received at the webhook: {delay:.1f} s")
    print(f"summary: {alert['annotations'].get('summary')}")
    labels, annotations = alert["labels"], alert["annotations"]
    context = s.logs()
    assert (labels["model"], labels["feature"], labels["statistic"]) == (
        "fraud",
        "amount",
        "psi",
    ), context
    assert (labels["severity"], labels["model_version"]) == ("critical", VERSION), context
    assert annotations["runbook_url"] == f"{RUNBOOK_BASE}#streamdriftcritical", context
    summary = annotations["summary"]
    assert "fraud" in summary and "amount" in summary and "threshold" in summary, summary
    assert any(ch.isdigit() for ch in summary), summary
    assert annotations.get("description"), annotations
    prometheus_firing = firing(s.prometheus_alerts(), "StreamDriftCritical", model="fraud")
    assert any(
        a["state"] == "firing" and a["labels"]["feature"] == "amount" for a in prometheus_firing
    ), prometheus_firing

    # 2. Dashboards: every query runs here; the main panels have data.
    check_dashboards(s)
    check_labels_are_bounded(s)

    # Nothing else fired: not the steady model, not fraud's other features, no health alert.
    others = [
        a
        for a in s.prometheus_alerts()
        if not (
            a["labels"].get("alertname") in ("StreamDriftCritical", "StreamDriftWarning")
            and a["labels"].get("model") == "fraud"
            and a["labels"].get("feature") == "amount"
        )
    ]
    assert others == [], f"unexpected alerts {others}{s.logs()}"
    noise = [
        a
        for _, _, a in s.webhook.alerts()
        if a["labels"].get("model") != "fraud" or a["labels"].get("feature") != "amount"
    ]
    assert noise == [], f"unexpected notifications {noise}"

    # 3. The worker dies: the detector's own alert pages, its drift alert is inhibited.
    s.worker.kill()
    killed = time.time()

    def worker_down() -> list[tuple[float, str, dict[str, Any]]]:
        return [
            (t, p, a)
            for t, p, a in s.webhook.alerts("/page")
            if a["labels"].get("alertname") == "StreamDriftWorkerDown" and a["status"] == "firing"
        ]

    [(down_at, _, down), *_] = s.wait(
        worker_down, timeout=240, what="StreamDriftWorkerDown at the paging webhook"
    )
    print(f"worker killed -> StreamDriftWorkerDown received: {down_at - killed:.1f} s")
    assert down["annotations"]["runbook_url"] == f"{RUNBOOK_BASE}#streamdriftworkerdown"

    def drift_inhibited() -> list[dict[str, Any]]:
        return [
            a
            for a in firing(s.alertmanager_alerts(), "StreamDriftCritical", model="fraud")
            if a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]
        ]

    s.wait(drift_inhibited, timeout=120, what="the drift alert inhibited by the worker-down")


# --------------------------------------------------------------------------- dashboards

#: Panels that must show data while a drifting stream flows (title substrings, lowercase).
MAIN_PANELS = (
    "psi",
    "events/s",
    "alert state",
    "window samples",
    "threshold",
    "consumer lag",
    "watermark lag",
    "evaluation latency",
    "time since last evaluation",
)


def check_dashboards(s: Stack) -> None:
    variables = {
        "model": "fraud",
        "version": VERSION,
        "feature": "amount",
        "datasource": "prometheus",
    }
    errors, empty, with_data = [], [], []
    for path in dashboard_files():
        dashboard = json.loads(path.read_text())
        for title, expr in panel_queries(dashboard):
            promql = render(expr, variables, range_s=300)
            answer = s.query(promql)
            if answer.get("status") != "success":
                errors.append((path.name, title, promql, answer.get("error")))
            elif answer["data"]["result"]:
                with_data.append(title.lower())
            else:
                empty.append(title.lower())
    assert errors == [], errors
    missing = [p for p in MAIN_PANELS if not any(p in title for title in with_data)]
    assert missing == [], f"main panels without data: {missing}; empty panels: {empty}"


# ------------------------------------------------------------------------------ labels

#: Every label a stream_drift series may carry, with its allowed values (None: any of a
#: bounded set checked elsewhere, e.g. job/instance added by Prometheus).
ALLOWED_LABELS: dict[str, set[str] | None] = {
    "__name__": None,
    "job": None,
    "instance": None,
    "runbook_base_url": None,
    "model": {*MODELS, "_unknown"},
    "model_version": {VERSION},
    "feature": {*FEATURES, "prediction"},
    "statistic": {"psi", "kl", "js", "ks", "chi2", "missing_rate", "mismatch_rate"},
    "outcome": {"accepted", "invalid", "late"},
    "severity": {"warning", "critical"},
    "reason": {"malformed_json", "invalid_type", "unknown_model", "type_mismatch"},
    "kind": {"deadletter", "partial", "reference"},
    "topic": None,
    "partition": {"0", "1", "2", "3"},
    "version": None,
    "le": None,
}


def check_labels_are_bounded(s: Stack) -> None:
    """No series carries a raw value or a name a producer made up (the stream sends a bad
    record with a new model name five times a second)."""
    answer = s.query('{__name__=~"stream_drift_.+"}')
    assert answer["status"] == "success", answer
    series = [r["metric"] for r in answer["data"]["result"]]
    assert len(series) > 50, series
    bad = [
        (m["__name__"], k, v)
        for m in series
        for k, v in m.items()
        if k not in ALLOWED_LABELS or (ALLOWED_LABELS[k] is not None and v not in ALLOWED_LABELS[k])
    ]
    assert bad == [], bad
    invalid = s.query('sum(stream_drift_events_total{model="_unknown",outcome="invalid"})')
    assert float(invalid["data"]["result"][0]["value"][1]) > 0, invalid
