"""Smoke test of ``python -m bench.resources`` (issue 10, items 5–7), and of what its figures
rest on: the ``/proc`` readings and the latency definition.

The ``/proc`` readings are checked against what a child process says of itself
(:func:`os.times`, the size of a buffer it holds); the latency definition against latencies
worked out by hand. The quick run starts the embedded broker and a real worker (``kafka``
mark) and checks the shape of every table and that its figures are finite and positive.
Timings are never asserted against targets (the machine is shared and noisy).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import os, sys, time
buf = bytearray(60 * 1024 * 1024)
buf[::4096] = b"x" * len(buf[::4096])  # touch every page: resident
end = time.process_time() + 0.6
while time.process_time() < end:
    pass
t = os.times()
print(t.user + t.system, flush=True)
sys.stdin.read()
"""


def _bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT))  # bench is not installed: run from the repo root
    import bench.resources

    return bench.resources


def test_proc_readings_match_what_the_process_says(monkeypatch: pytest.MonkeyPatch) -> None:
    res = _bench(monkeypatch)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        own_cpu = float(child.stdout.readline())
        assert own_cpu >= 0.6
        assert res.cpu_seconds(child.pid) == pytest.approx(own_cpu, abs=0.05)
        assert res.rss_bytes(child.pid) >= 60 * 1024 * 1024
        assert child.pid in res.descendants(os.getpid())
        assert res.context_switches(child.pid) > 0
        # A process and its family: the child's figures are added to ours.
        mine = res.rss_bytes(os.getpid())
        assert res.rss_bytes(os.getpid(), [child.pid]) >= mine + 60 * 1024 * 1024 - 4096
        with res.Sampler(child.pid, interval=0.02) as sampler:
            time.sleep(0.2)
        assert len(sampler.samples) >= 3
        assert all(s[1] >= 60 * 1024 * 1024 for s in sampler.samples)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)


def _alert(end: str, evaluated: str, model: str = "live") -> Any:
    from stream_drift.pipeline.alert_record import Alert, AlertWindow

    return Alert(
        alert_id="a",
        status="firing",
        severity="critical",
        model=model,
        model_version="1",
        feature="a",
        statistic="psi",
        category="drift",
        value=1.0,
        threshold=0.1,
        p_value=None,
        window=AlertWindow(start="2026-01-01T00:00:00Z", end=end),
        n_current=250,
        n_reference=20_000,
        reference_id="r",
        top_bins=(),
        first_detected_at=evaluated,
        evaluated_at=evaluated,
        runbook_url="",
        dedup_key="live/a/psi",
        summary="",
    )


def test_latency_is_measured_from_the_first_event_past_the_step_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    res = _bench(monkeypatch)
    from datetime import UTC, datetime

    t0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()  # window end of the alerts: t0 + 1
    settings = res.resource_settings("127.0.0.1:9", "t", "/tmp/t")
    sent = [t0 + 0.2, t0 + 0.9, t0 + 1.004, t0 + 1.5, t0 + 2.01]
    received = [
        # Step [t0, t0+1): the first event at or past t0+1 was sent at t0+1.004.
        res.Received(_alert("2026-01-01T00:00:01Z", "2026-01-01T00:00:01.500Z"), t0 + 1.704),
        # Step [t0+1, t0+2) closes with the event of t0+2.01; it closed after the drain.
        res.Received(_alert("2026-01-01T00:00:02Z", "2026-01-01T00:00:02.100Z"), t0 + 2.51),
        # Another model's alert is not ours; a step past every event sent is unexplained.
        res.Received(_alert("2026-01-01T00:00:01Z", "2026-01-01T00:00:01Z", "bulk"), t0 + 9),
        res.Received(_alert("2026-01-01T00:00:05Z", "2026-01-01T00:00:05Z"), t0 + 9),
    ]
    # The drifted model's partials as received from drift.partials: (watermark, received at).
    partials = [(t0 + 0.9, t0 + 1.0), (t0 + 1.004, t0 + 1.3), (t0 + 1.5, t0 + 1.35)]
    got = res._latencies(received, sent, partials, settings, t0, t0 + 1.5)
    [(latency, evaluated, partial)] = got["during"]
    assert latency == pytest.approx(0.7)
    assert evaluated == pytest.approx(0.496)
    assert partial == pytest.approx(0.296)  # the first partial past t0 + 1
    [(late, _, unseen)] = got["after"]
    assert late == pytest.approx(0.5)
    assert math.isnan(unseen)  # no partial past t0 + 2 was received
    assert got["unexplained"] == 1


TABLES = {
    "memory_by_rate": {"phase", "worker_events_per_s", "rss_median_mb", "rss_max_mb"},
    "state_size": {"series", "steps", "with_rows_rss_mb", "with_rows_traced_mb"},
    "latency": {"latency_p50_s", "latency_p99_s", "alerts_during_drain", "alerts_after_drain"},
    "idle": {"idle_cpu_percent", "idle_seconds", "idle_rss_mb", "idle_wakeups_per_s"},
}


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


@pytest.mark.kafka
def test_quick_run_yields_every_table() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "bench.resources", "--quick", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    doc = json.loads(done.stdout)
    assert doc["benchmark"] == "bench.resources"
    assert doc["meta"]["quick"] is True
    assert doc["summary"].startswith("SUMMARY:")
    tables = doc["tables"]
    assert set(tables) == set(TABLES)
    for name, keys in TABLES.items():
        assert tables[name], name
        for row in tables[name]:
            if "growth" not in row:  # the state table's growth rows have their own keys
                assert set(row) >= keys, (name, keys - set(row))
    for row in tables["memory_by_rate"]:
        assert 0 < row["rss_median_mb"] <= row["rss_max_mb"] < 10_000
        assert _finite(row["cpu_percent"]) and row["cpu_percent"] > 0
    phases = [r["phase"] for r in tables["memory_by_rate"]]
    assert phases[0] == "idle" and phases[-1].startswith("backlog drain")
    assert all(r["worker_events_per_s"] > 0 for r in tables["memory_by_rate"][1:])
    sizes = [r for r in tables["state_size"] if "series" in r]
    assert len(sizes) == 3
    for row in sizes:
        assert 0 < row["evaluators_traced_mb"] < row["with_rows_traced_mb"]
        assert row["with_rows_rss_mb"] > 0
    big, fewer_series, fewer_steps = sizes
    assert big["with_rows_traced_mb"] > fewer_series["with_rows_traced_mb"]
    assert big["with_rows_traced_mb"] > fewer_steps["with_rows_traced_mb"]
    for row in (r for r in tables["state_size"] if "growth" in r):
        assert row["kb_per_series"] > 0 and row["mb_per_step"] > 0
    [latency] = tables["latency"]
    assert latency["alerts_during_drain"] + latency["alerts_after_drain"] > 0
    assert 0 < latency["latency_p50_s"] <= latency["latency_p99_s"] < 60
    [idle] = tables["idle"]
    assert 0 < idle["idle_cpu_percent"] < 100 and idle["idle_rss_mb"] > 0
    assert idle["idle_wakeups_per_s"] > 0
    for rows in tables.values():
        for row in rows:
            assert all(_finite(v) for v in row.values() if not isinstance(v, str | bool))
