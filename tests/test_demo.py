"""`stream-drift demo --json`: the newcomer's first command, end to end on a real broker."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.kafka
@pytest.mark.timeout(240)
def test_demo_detects_injected_drift_and_nothing_else() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "stream_drift.cli", "demo", "--duration", "50", "--json"],
        capture_output=True,
        text=True,
        timeout=220,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    injected = {(i["model"], i["feature"]) for i in summary["injected"]}
    concept = ("credit", "(predictions)")  # a concept change: labels only, no feature moves
    assert injected == {("fraud", "amount"), ("churn", "plan"), concept}
    detected = {(d["model"], d["feature"]): d for d in summary["detected"]}
    assert set(detected) == injected, summary
    for d in detected.values():
        # Windows of 10 s sliding every 5 s, fire after 2 drifted windows (concept drift:
        # after the window with the detector's detection; labels come 1 s after events).
        assert 0 < d["delay_seconds"] <= 30, d
        assert d["statistic"] == ("concept_drift" if d["feature"] == concept[1] else "psi")
    assert summary["false_alerts"] == [], summary["false_alerts"]
    assert summary["missed"] == []
    assert summary["events_produced"] > 10_000
    firing = [a for a in summary["alerts"] if a["status"] == "firing"]
    assert {(a["model"], a["feature"]) for a in firing} == injected
    for a in firing:
        assert a["runbook_url"] == ""  # the demo configures no runbook: no invented link
        assert a["model"] in a["summary"]
        assert (a["feature"] if a["feature"] != concept[1] else "concept drift") in a["summary"]
