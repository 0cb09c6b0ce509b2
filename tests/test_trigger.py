"""Unit tests of :mod:`stream_drift.tools.trigger`: filters, environment, retry policy, actions."""

from __future__ import annotations

import http.server
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from stream_drift.pipeline.alert_record import Alert
from stream_drift.pipeline.alerts import AlertTracker
from stream_drift.stats.result import DriftResult, Severity
from stream_drift.tools.trigger import (
    ENV_FIELDS,
    AlertFilter,
    Attempt,
    HandledKeys,
    alert_env,
    alert_key,
    backoff_delays,
    deliver,
    post_webhook,
    run_command,
)

ALERT = {
    "alert_id": "abc123",
    "status": "firing",
    "severity": "critical",
    "model": "fraud",
    "model_version": "7",
    "feature": "amount",
    "statistic": "psi",
    "category": "drift",
    "value": 0.31,
    "threshold": 0.2,
    "p_value": None,
    "summary": "fraud v7: feature 'amount' drifted",
    "runbook_url": "",
}


@pytest.mark.parametrize(
    ("selection", "changes", "skip"),
    [
        (AlertFilter(), {}, None),
        (AlertFilter(), {"status": "escalated"}, None),
        (AlertFilter(), {"status": "resolved"}, "status resolved"),
        (AlertFilter(), {"severity": "warning"}, None),
        (AlertFilter(min_severity="critical"), {"severity": "warning"}, "below critical"),
        (AlertFilter(min_severity="critical"), {"severity": "bogus"}, "below critical"),
        (AlertFilter(models=frozenset({"churn"})), {}, "model fraud not selected"),
        (AlertFilter(models=frozenset({"churn", "fraud"})), {}, None),
        (AlertFilter(statuses=frozenset({"resolved"})), {"status": "resolved"}, None),
        (AlertFilter(statuses=frozenset({"resolved"})), {}, "status firing"),
        (AlertFilter(), {"status": None}, "status"),
    ],
)
def test_filter(selection: AlertFilter, changes: dict[str, object], skip: str | None) -> None:
    reason = selection.reason_to_skip({**ALERT, **changes})
    if skip is None:
        assert reason is None
    else:
        assert reason is not None and skip in reason


def test_alert_key_separates_the_state_changes_of_one_incident() -> None:
    assert alert_key(ALERT) == ("abc123", "firing")
    assert alert_key({**ALERT, "status": "escalated"}) != alert_key(ALERT)


def test_alert_env_sets_every_field_and_keeps_the_base() -> None:
    env = alert_env(ALERT, base={"PATH": "/bin"})
    assert env["PATH"] == "/bin"
    expected = {
        "STREAM_DRIFT_ALERT_ID": "abc123",
        "STREAM_DRIFT_ALERT_STATUS": "firing",
        "STREAM_DRIFT_ALERT_SEVERITY": "critical",
        "STREAM_DRIFT_ALERT_MODEL": "fraud",
        "STREAM_DRIFT_ALERT_MODEL_VERSION": "7",
        "STREAM_DRIFT_ALERT_FEATURE": "amount",
        "STREAM_DRIFT_ALERT_STATISTIC": "psi",
        "STREAM_DRIFT_ALERT_VALUE": "0.31",
        "STREAM_DRIFT_ALERT_THRESHOLD": "0.2",
        "STREAM_DRIFT_ALERT_SUMMARY": "fraud v7: feature 'amount' drifted",
        "STREAM_DRIFT_ALERT_RUNBOOK_URL": "",
        "STREAM_DRIFT_ALERT_CATEGORY": "drift",
    }
    assert {k: v for k, v in env.items() if k.startswith("STREAM_DRIFT_ALERT_")} == expected
    assert len(expected) == len(ENV_FIELDS)


def test_a_typed_alert_is_read_like_its_json_object() -> None:
    tracker = AlertTracker()  # fires on the second drifting window
    drift = DriftResult("psi", 0.31, 0.2, None, True, Severity.CRITICAL, 20_000, 2000)
    for t in (1_764_237_600.0, 1_764_237_900.0):
        typed = tracker.observe(
            model="fraud",
            model_version="7",
            feature="amount",
            result=drift,
            window_start=t,
            window_end=t + 300,
            evaluated_at=t + 301,
            reference_id="ref-1",
        )
    assert isinstance(typed, Alert) and typed.status == "firing"
    wire = json.loads(msgspec.json.encode(typed))
    assert alert_key(typed) == alert_key(wire) == (typed.alert_id, "firing")
    assert alert_env(typed, base={}) == alert_env(wire, base={})
    assert alert_env(typed, base={})["STREAM_DRIFT_ALERT_SUMMARY"] == typed.summary
    for selection in (
        AlertFilter(),
        AlertFilter(min_severity="critical"),
        AlertFilter(models=frozenset({"churn"})),
        AlertFilter(statuses=frozenset({"resolved"})),
    ):
        assert selection.reason_to_skip(typed) == selection.reason_to_skip(wire)
    assert AlertFilter(models=frozenset({"churn"})).reason_to_skip(typed) == (
        "model fraud not selected"
    )


def test_alert_env_defaults_to_the_process_environment_and_strips_nul() -> None:
    env = alert_env({"summary": "a\x00b"})
    assert env["STREAM_DRIFT_ALERT_SUMMARY"] == "ab"
    assert env.get("PATH") == os.environ.get("PATH")
    assert env["STREAM_DRIFT_ALERT_MODEL"] == ""


def test_backoff_doubles_and_is_capped() -> None:
    assert backoff_delays(3) == [1.0, 2.0, 4.0]
    assert backoff_delays(8)[-1] == 60.0
    assert backoff_delays(2, first=0.5) == [0.5, 1.0]
    with pytest.raises(ValueError, match="retries"):
        backoff_delays(-1)


def test_deliver_stops_at_the_first_success_and_gives_up_after_the_retries() -> None:
    calls: list[int] = []
    waits: list[float] = []
    logs: list[str] = []

    def failing() -> Attempt:
        calls.append(1)
        return Attempt(False, "exit status 1")

    result, tries = deliver(failing, [1.0, 2.0, 4.0], sleep=waits.append, log=logs.append)
    assert (result.ok, tries, len(calls), waits) == (False, 4, 4, [1.0, 2.0, 4.0])
    assert len(logs) == 3 and "exit status 1" in logs[0] and "retrying in 1 s" in logs[0]

    result, tries = deliver(lambda: Attempt(True, "exit 0"), [1.0], sleep=waits.append)
    assert (result.ok, tries) == (True, 1)


def test_handled_keys_are_bounded_and_refresh_on_add() -> None:
    keys = HandledKeys(size=2)
    keys.add("a")
    keys.add("b")
    keys.add("a")  # refreshed: now the newest
    keys.add("c")
    assert "a" in keys and "c" in keys and "b" not in keys
    with pytest.raises(ValueError):
        HandledKeys(size=0)


def _py(code: str) -> str:
    return f"{sys.executable} -c '{code}'"


def test_run_command_gets_stdin_and_env(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    code = (
        "import json, os, sys; "
        f'open("{out}", "w").write(json.dumps([sys.stdin.read(), os.environ["X"]]))'
    )
    result = run_command(_py(code), b'{"a": 1}', {**os.environ, "X": "y"}, timeout=30)
    assert result == Attempt(True, "exit 0")
    assert json.loads(out.read_text()) == ['{"a": 1}', "y"]


def test_run_command_reports_the_exit_status() -> None:
    result = run_command(_py("import sys; sys.exit(3)"), b"", dict(os.environ), timeout=30)
    assert result == Attempt(False, "exit status 3")


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # a zombie is dead


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_run_command_kills_the_process_group_on_timeout(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    code = (
        "import os, subprocess, sys, time; "
        'c = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]); '
        f'open("{pids}", "w").write(f"{{os.getpid()}} {{c.pid}}"); time.sleep(60)'
    )
    started = time.monotonic()
    result = run_command(_py(code), b"", dict(os.environ), timeout=2)
    took = time.monotonic() - started
    assert not result.ok and "timed out after 2 s" in result.detail
    assert took < 10, took
    parent, child = (int(p) for p in pids.read_text().split())
    deadline = time.monotonic() + 5
    while not (_gone(parent) and _gone(child)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(parent) and _gone(child)


class _Server(http.server.ThreadingHTTPServer):
    statuses: list[int]
    bodies: list[bytes]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self.server.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.statuses, srv.bodies = [], []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def test_post_webhook_success_is_2xx(server: _Server) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.statuses = [500, 204]
    assert post_webhook(url, b'{"a":1}', timeout=5) == Attempt(False, "HTTP 500")
    assert post_webhook(url, b'{"a":1}', timeout=5) == Attempt(True, "HTTP 204")
    assert server.bodies == [b'{"a":1}', b'{"a":1}']


def test_post_webhook_unreachable_is_a_failure() -> None:
    result = post_webhook("http://127.0.0.1:9/", b"{}", timeout=2)
    assert not result.ok and "Error" in result.detail


def test_the_filters_need_an_action() -> None:
    from click.testing import CliRunner

    from stream_drift.cli import cli

    result = CliRunner().invoke(cli, ["alerts", "--model", "fraud", "--bootstrap", "127.0.0.1:9"])
    assert result.exit_code == 2
    assert "select alerts for --exec/--webhook" in result.output
