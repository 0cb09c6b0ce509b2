"""``stream-drift alerts --exec/--webhook`` against the session broker, as a real subprocess.

Alerts are produced straight to the app's alerts topic (the worker's shape, key
``model/feature/statistic``); the command runs with ``--idle-exit`` and its own consumer
group, and the hook (a Python script run through a shell command line) records each run.
"""

from __future__ import annotations

import http.server
import json
import shlex
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka_helpers import produce

from stream_drift.app.admin import create_topics_sync
from stream_drift.tools.embedded import EmbeddedBroker

pytestmark = pytest.mark.kafka

IDLE_EXIT = "6"  # > the group join on Tansu (half the 6 s session timeout)
RUN_TIMEOUT = 120.0

HOOK = """\
import json, os, pathlib, sys, time
out = pathlib.Path(sys.argv[1])
mode = sys.argv[2] if len(sys.argv) > 2 else "ok"
alert = json.load(sys.stdin)
attempts = out / f"attempts-{alert['alert_id']}-{alert['status']}"
n = int(attempts.read_text()) + 1 if attempts.exists() else 1
attempts.write_text(str(n))
if mode == "fail-twice" and n <= 2:
    sys.exit(1)
if mode == "hang-once" and n == 1:
    (out / "hung.pid").write_text(str(os.getpid()))
    time.sleep(60)
env = {k: v for k, v in os.environ.items() if k.startswith("STREAM_DRIFT_ALERT_")}
with open(out / "runs.jsonl", "a") as f:
    f.write(json.dumps({"alert": alert, "env": env}) + "\\n")
"""


def make_alert(
    alert_id: str, status: str, severity: str, model: str, **extra: Any
) -> dict[str, Any]:
    feature = extra.pop("feature", "amount")
    return {
        "alert_id": alert_id,
        "status": status,
        "severity": severity,
        "model": model,
        "model_version": "7",
        "feature": feature,
        "statistic": "psi",
        "category": "drift",
        "value": 0.31,
        "threshold": 0.2,
        "p_value": 1e-9,
        "window": {"start": "2026-12-01T10:00:00Z", "end": "2026-12-01T10:05:00Z"},
        "n_current": 2000,
        "n_reference": 20000,
        "reference_id": "ref-1",
        "top_bins": [],
        "first_detected_at": "2026-12-01T10:05:00Z",
        "evaluated_at": "2026-12-01T10:05:01Z",
        "runbook_url": "https://runbooks.example/stream-drift#streamdriftcritical",
        "dedup_key": f"{model}/{feature}/psi",
        "summary": f"{model} v7: feature '{feature}' drifted ({status})",
        **extra,
    }


class App:
    """One app id (topics and groups unique to the test), its config and hook directory."""

    def __init__(self, bootstrap: str, tmp_path: Path) -> None:
        self.bootstrap = bootstrap
        self.app_id = f"sdx-{uuid.uuid4().hex[:8]}"
        self.topic = f"{self.app_id}.alerts"
        self.out = tmp_path / "out"
        self.out.mkdir()
        self.hook = tmp_path / "hook.py"
        self.hook.write_text(HOOK)
        self.config = tmp_path / "stream-drift.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "app_id": self.app_id,
                    "kafka": {
                        "bootstrap_servers": bootstrap,
                        "session_timeout_seconds": 6,
                        "heartbeat_interval_seconds": 1,
                        "rebalance_timeout_seconds": 6,
                    },
                    "topics": {"alerts": self.topic},
                }
            )
        )
        create_topics_sync(bootstrap, {self.topic: 1})

    def send(self, alerts: Sequence[dict[str, Any] | str]) -> None:
        keys = [a["dedup_key"] if isinstance(a, dict) else "garbage/x/psi" for a in alerts]
        produce(self.bootstrap, self.topic, list(alerts), keys)

    def command(self, mode: str = "ok") -> str:
        return " ".join(
            shlex.quote(str(part)) for part in (sys.executable, self.hook, self.out, mode)
        )

    def run(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        cmd = [
            sys.executable,
            "-m",
            "stream_drift.cli",
            "alerts",
            "-c",
            str(self.config),
            "--from-beginning",
            "--idle-exit",
            IDLE_EXIT,
            *args,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        assert done.returncode == expect, (
            f"exit {done.returncode} (wanted {expect})\nstderr:\n{done.stderr}\n"
            f"stdout:\n{done.stdout}"
        )
        return done

    def runs(self) -> list[dict[str, Any]]:
        path = self.out / "runs.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def attempts(self, alert_id: str, status: str) -> int:
        path = self.out / f"attempts-{alert_id}-{status}"
        return int(path.read_text()) if path.exists() else 0

    def committed(self, group: str) -> int | None:
        import asyncio

        from aiokafka import AIOKafkaConsumer, TopicPartition

        async def main() -> int | None:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group)
            await consumer.start()
            try:
                offset = await consumer.committed(TopicPartition(self.topic, 0))
                return None if offset is None else int(offset)
            finally:
                await consumer.stop()

        return asyncio.run(asyncio.wait_for(main(), timeout=30))


@pytest.fixture
def app(kafka_broker: EmbeddedBroker, tmp_path: Path) -> App:
    return App(kafka_broker.bootstrap_servers, tmp_path)


def ran(app: App) -> list[tuple[str, str]]:
    return [(r["alert"]["alert_id"], r["alert"]["status"]) for r in app.runs()]


def test_exec_runs_once_per_firing_or_escalated_alert(app: App) -> None:
    fraud_firing = make_alert("a1", "firing", "warning", "fraud")
    alerts: list[dict[str, Any] | str] = [
        fraud_firing,
        dict(fraud_firing),  # the same state change twice: one run
        make_alert("a1", "escalated", "critical", "fraud"),
        "not json {",
        make_alert("a1", "resolved", "critical", "fraud"),
        make_alert("a2", "firing", "critical", "churn", feature="tenure"),
        make_alert("a3", "firing", "warning", "churn", feature="plan"),
    ]
    app.send(alerts)
    started = time.monotonic()
    done = app.run("--exec", app.command())
    took = time.monotonic() - started
    assert ran(app) == [("a1", "firing"), ("a1", "escalated"), ("a2", "firing"), ("a3", "firing")]
    first = app.runs()[0]
    assert first["alert"] == fraud_firing  # the alert's JSON on stdin, unchanged
    assert first["env"] == {
        "STREAM_DRIFT_ALERT_ID": "a1",
        "STREAM_DRIFT_ALERT_STATUS": "firing",
        "STREAM_DRIFT_ALERT_SEVERITY": "warning",
        "STREAM_DRIFT_ALERT_MODEL": "fraud",
        "STREAM_DRIFT_ALERT_MODEL_VERSION": "7",
        "STREAM_DRIFT_ALERT_FEATURE": "amount",
        "STREAM_DRIFT_ALERT_STATISTIC": "psi",
        "STREAM_DRIFT_ALERT_VALUE": "0.31",
        "STREAM_DRIFT_ALERT_THRESHOLD": "0.2",
        "STREAM_DRIFT_ALERT_SUMMARY": "fraud v7: feature 'amount' drifted (firing)",
        "STREAM_DRIFT_ALERT_RUNBOOK_URL": fraud_firing["runbook_url"],
        "STREAM_DRIFT_ALERT_CATEGORY": "drift",
    }
    assert "already handled" in done.stderr and "unreadable alert skipped" in done.stderr
    assert "status resolved" in done.stderr
    assert app.committed(f"{app.app_id}-alerts-exec") == len(alerts)
    print(f"exec run over {len(alerts)} alerts: {took:.1f} s")


def test_filters_by_severity_model_and_status(app: App) -> None:
    app.send(
        [
            make_alert("b1", "firing", "warning", "fraud"),
            make_alert("b1", "escalated", "critical", "fraud"),
            make_alert("b1", "resolved", "critical", "fraud"),
            make_alert("b2", "firing", "critical", "churn", feature="tenure"),
            make_alert("b3", "firing", "warning", "churn", feature="plan"),
        ]
    )
    outs = {name: app.out / name for name in ("critical-churn", "resolved")}
    for path in outs.values():
        path.mkdir()
    quoted = shlex.quote(sys.executable), shlex.quote(str(app.hook))
    procs = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stream_drift.cli",
                "alerts",
                "-c",
                str(app.config),
                "--from-beginning",
                "--idle-exit",
                IDLE_EXIT,
                "--group",
                f"{app.app_id}-{name}",
                "--exec",
                f"{quoted[0]} {quoted[1]} {shlex.quote(str(outs[name]))}",
                *args,
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in {
            "critical-churn": ["--severity", "critical", "--model", "churn"],
            "resolved": ["--on", "resolved", "--model", "fraud", "--model", "churn"],
        }.items()
    }
    for name, proc in procs.items():
        try:
            _, stderr = proc.communicate(timeout=RUN_TIMEOUT)
        finally:
            proc.kill()
        assert proc.returncode == 0, f"{name}: exit {proc.returncode}\n{stderr}"

    def ids(path: Path) -> list[tuple[str, str]]:
        lines = (path / "runs.jsonl").read_text().splitlines()
        return [(r["alert"]["alert_id"], r["alert"]["status"]) for r in map(json.loads, lines)]

    assert ids(outs["critical-churn"]) == [("b2", "firing")]
    assert ids(outs["resolved"]) == [("b1", "resolved")]


def test_a_failing_command_is_retried_until_it_succeeds_once(app: App) -> None:
    app.send([make_alert("c1", "firing", "critical", "fraud")])
    started = time.monotonic()
    done = app.run("--exec", app.command("fail-twice"), "--retries", "3")
    took = time.monotonic() - started
    assert app.attempts("c1", "firing") == 3
    assert ran(app) == [("c1", "firing")]  # one successful retraining run, not three
    assert "retrying in 1 s" in done.stderr and "retrying in 2 s" in done.stderr
    assert done.stderr.count("command succeeded") == 1
    assert app.committed(f"{app.app_id}-alerts-exec") == 1
    app.run("--exec", app.command())  # committed: nothing runs again
    assert app.attempts("c1", "firing") == 3
    print(f"fail twice then succeed: {took:.1f} s")


def test_retries_exhausted_exits_1_without_committing(app: App) -> None:
    app.send([make_alert("d1", "firing", "critical", "fraud")])
    done = app.run("--exec", app.command("fail-twice"), "--retries", "1", expect=1)
    assert app.attempts("d1", "firing") == 2 and ran(app) == []
    assert "ERROR" in done.stderr and "NOT committed" in done.stderr
    assert app.committed(f"{app.app_id}-alerts-exec") is None
    app.run("--exec", app.command("fail-twice"), "--retries", "1")  # the next start retries it
    assert app.attempts("d1", "firing") == 3 and ran(app) == [("d1", "firing")]


def test_restart_with_the_same_group_runs_nothing_again(app: App) -> None:
    app.send([make_alert(f"e{i}", "firing", "warning", "fraud") for i in range(3)])
    app.run("--exec", app.command())
    assert ran(app) == [("e0", "firing"), ("e1", "firing"), ("e2", "firing")]
    again = app.run("--exec", app.command())  # restart: committed offset, Tansu's replay
    assert len(app.runs()) == 3
    print("restart saw a replay:", "(a replay), skipped" in again.stderr)
    app.send([make_alert("e3", "firing", "warning", "fraud")])
    app.run("--exec", app.command())
    assert ran(app)[3:] == [("e3", "firing")]
    assert app.committed(f"{app.app_id}-alerts-exec") == 4


class _Server(http.server.ThreadingHTTPServer):
    statuses: list[int]
    requests: list[tuple[int, str, bytes]]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        self.server.requests.append((status, self.headers["Content-Type"], body))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.statuses, srv.requests = [], []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def test_webhook_is_retried_until_2xx_and_combines_with_exec(app: App, server: _Server) -> None:
    alert = make_alert("f1", "firing", "critical", "fraud")
    app.send([alert, make_alert("f1", "resolved", "critical", "fraud")])
    server.statuses = [500, 500]
    url = f"http://127.0.0.1:{server.server_address[1]}/retrain"
    app.run("--webhook", url, "--exec", app.command())
    assert [s for s, _, _ in server.requests] == [500, 500, 200]  # one delivery
    _, content_type, body = server.requests[-1]
    assert content_type == "application/json" and json.loads(body) == alert
    assert ran(app) == [("f1", "firing")]


def test_a_command_that_times_out_is_killed_and_retried(app: App) -> None:
    app.send([make_alert("g1", "firing", "critical", "fraud")])
    started = time.monotonic()
    done = app.run("--exec", app.command("hang-once"), "--exec-timeout", "2")
    took = time.monotonic() - started
    assert "timed out after 2 s" in done.stderr
    assert app.attempts("g1", "firing") == 2 and ran(app) == [("g1", "firing")]
    pid = int((app.out / "hung.pid").read_text())
    stat = Path(f"/proc/{pid}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    assert took < 60, took  # not the hook's 60 s sleep
