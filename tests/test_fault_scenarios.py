"""Fault scenarios that need no broker: a statistic flapping around its threshold, and events
arriving out of order within the allowed lateness.

The broker-level scenarios (pauses, restarts, scaling, crashes) are in the ``kafka`` tests.
"""

from __future__ import annotations

import json
import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_drift.config import AlertPolicy, DecisionPolicy, WindowPolicy
from stream_drift.pipeline.alerts import AlertTracker
from stream_drift.pipeline.evaluator import ModelEvaluator
from stream_drift.pipeline.events import RawRecord
from stream_drift.pipeline.ingest import IngestAccumulator
from stream_drift.pipeline.reference import build_reference
from stream_drift.pipeline.registry import ReferenceRegistry
from stream_drift.stats.result import DriftResult, Severity

THRESHOLD = 0.2
T0 = 1_764_213_000.0
STEP = 60.0


# ------------------------------------------------------------------------------ flapping


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(
        st.floats(0.85 * THRESHOLD, 1.15 * THRESHOLD, allow_nan=False), min_size=30, max_size=30
    )
)
def test_a_statistic_flapping_around_its_threshold_pages_at_most_once(values: list[float]) -> None:
    """30 windows whose value wanders ±15 % around the threshold (the default policy: fire
    after 2, resolve below 0.8 x threshold after 2): at most one firing, never a resolve."""
    tracker = AlertTracker(AlertPolicy())
    statuses = []
    for i, v in enumerate(values):
        drift = v >= THRESHOLD
        result = DriftResult(
            "psi", v, THRESHOLD, 0.01, drift, Severity.WARNING if drift else Severity.OK, 10**5, 500
        )
        alert = tracker.observe(
            model="m",
            model_version="1",
            feature="x",
            result=result,
            window_start=T0 + i * STEP,
            window_end=T0 + (i + 1) * STEP,
            evaluated_at=T0 + (i + 1) * STEP + 1,
            reference_id="r",
        )
        if alert is not None:
            statuses.append(alert.status)
    assert statuses.count("firing") <= 1
    assert "resolved" not in statuses


def test_a_statistic_crossing_both_levels_fires_and_resolves_once_within_the_cooldown() -> None:
    """Above the threshold, then below the lower level, then above again within the
    cooldown (10 windows of 60 s): one firing, one resolved, no second page."""
    tracker = AlertTracker(AlertPolicy(cooldown_seconds=30 * STEP))
    pattern = [0.25, 0.25, 0.1, 0.1] + [0.25, 0.1] * 13
    statuses = []
    for i, v in enumerate(pattern):
        drift = v >= THRESHOLD
        result = DriftResult(
            "psi", v, THRESHOLD, 0.01, drift, Severity.WARNING if drift else Severity.OK, 10**5, 500
        )
        alert = tracker.observe(
            model="m",
            model_version="1",
            feature="x",
            result=result,
            window_start=T0 + i * STEP,
            window_end=T0 + (i + 1) * STEP,
            evaluated_at=T0 + (i + 1) * STEP + 1,
            reference_id="r",
        )
        if alert is not None:
            statuses.append(alert.status)
    assert statuses == ["firing", "resolved"]


# ---------------------------------------------------------------------- out of order

LATENESS = 20.0
REF = build_reference(
    {
        "amount": np.random.default_rng(0).normal(50, 10, 5000),
        "country": np.random.default_rng(1).choice(["DE", "FR", "US"], 5000).tolist(),
    },
    model="m",
)


def _run(records: list[RawRecord], batch: int) -> list[tuple[float, float, int, str]]:
    """Stage 1 then stage 2 over ``records`` in the given order; every window evaluated."""
    registry = ReferenceRegistry()
    registry.add(REF)
    acc = IngestAccumulator(registry, step_seconds=STEP)
    policy = WindowPolicy(
        size_seconds=2 * int(STEP),
        step_seconds=int(STEP),
        allowed_lateness_seconds=LATENESS,
        idle_timeout_seconds=1e9,
        max_future_seconds=1e12,  # processing time (now=0) is far behind event time here
    )
    decision = DecisionPolicy(statistics=("psi",), quality_alerts=False)
    ev = ModelEvaluator("m", registry, policy, decision)
    out = []
    for i in range(0, len(records), batch):
        acc.add_records(records[i : i + batch])
        for partial in acc.flush():
            emitted = ev.handle(partial, now=0.0)
            assert emitted.late_events == 0
            for r in emitted.results:
                hists = {n: e.to_dict() for n, e in sorted(r.evaluations.items())}
                out.append((r.window_start, r.window_end, r.n_events, json.dumps(hists)))
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), batch=st.integers(1, 50))
def test_out_of_order_within_the_lateness_gives_the_windows_of_an_ordered_replay(
    seed: int, batch: int
) -> None:
    rng = np.random.default_rng(seed)
    n = 600
    ts = T0 + np.sort(rng.uniform(0, 8 * STEP, n))
    events = [
        {
            "model": "m",
            "ts": float(t),
            "features": {
                "amount": float(rng.normal(50, 10)),
                "country": str(rng.choice(["DE", "FR", "US"])),
            },
        }
        for t in ts
    ]
    # Displace each event by less than the lateness: sort by a jittered time.
    shuffle = random.Random(seed)
    jittered = sorted(events, key=lambda e: e["ts"] + shuffle.uniform(0, LATENESS * 0.9))

    def records(evs: list[dict[str, object]]) -> list[RawRecord]:
        return [RawRecord(json.dumps(e).encode(), "ev", 0, i, 0) for i, e in enumerate(evs)]

    ordered = _run(records(events), batch)
    disordered = _run(records(jittered), batch)
    assert len(ordered) >= 5 and len(disordered) >= len(ordered) - 1
    # The same windows with the same contents; the last may still be open in one of them.
    common = min(len(ordered), len(disordered))
    assert ordered[: common - 1] == disordered[: common - 1]
