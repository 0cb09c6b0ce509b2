"""Stage 2 without Kafka: event-time windows, distributed watermark, late and replayed data,
count windows, state round trips and alerts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_drift.config import STATISTIC_NAMES, AlertPolicy, DecisionPolicy, WindowPolicy
from stream_drift.pipeline.alert_record import Alert, AlertWindow
from stream_drift.pipeline.evaluator import Emitted, ModelEvaluator
from stream_drift.pipeline.partials import Partial, Tick
from stream_drift.pipeline.reference import ReferenceProfile, build_reference
from stream_drift.pipeline.registry import ReferenceRegistry
from stream_drift.pipeline.windows import VersionWindow
from stream_drift.stats.histogram import Histogram
from stream_drift.stats.psi import PSI

T0 = 1_764_213_000.0  # a multiple of 60
STEP = 60.0
LATENESS = 10.0
IDLE = 30.0
COUNTRIES = ["DE", "FR", "US", "IT"]
COUNTRY_P = [0.4, 0.3, 0.2, 0.1]


def _make_reference() -> ReferenceProfile:
    rng = np.random.default_rng(42)
    n = 20_000
    return build_reference(
        {"x": rng.normal(0, 1, n), "c": rng.choice(COUNTRIES, n, p=COUNTRY_P).tolist()},
        model="m",
        model_version="1",
    )


REF = _make_reference()


def _registry() -> ReferenceRegistry:
    reg = ReferenceRegistry()
    reg.add(REF)
    return reg


def _decision(fast: bool = False) -> DecisionPolicy:
    # Only alert_on alerts here (the data-quality statistics are computed, not alerting).
    return DecisionPolicy(statistics=("psi",) if fast else STATISTIC_NAMES, quality_alerts=False)


def _alerts(fire_after: int = 2, resolve_after: int = 2) -> AlertPolicy:
    return AlertPolicy(fire_after=fire_after, resolve_after=resolve_after, cooldown_seconds=0)


# Processing time in these tests runs far behind event time: no bound on event time ahead of
# it, unless a test sets one.
NO_FUTURE_LIMIT = 1e12


def _policy(size_steps: int = 1, **kw: Any) -> WindowPolicy:
    kw.setdefault("max_future_seconds", NO_FUTURE_LIMIT)
    return WindowPolicy(
        size_seconds=int(STEP) * size_steps,
        step_seconds=int(STEP),
        allowed_lateness_seconds=LATENESS,
        idle_timeout_seconds=IDLE,
        **kw,
    )


def _evaluator(
    policy: WindowPolicy | None = None, fast: bool = False, **alerts: int
) -> ModelEvaluator:
    return ModelEvaluator("m", _registry(), policy or _policy(), _decision(fast), _alerts(**alerts))


def _values(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, list[Any]]:
    return {
        "x": rng.normal(shift, 1, n).tolist(),
        "c": rng.choice(COUNTRIES, n, p=COUNTRY_P).tolist(),
    }


def _partial(
    source: str,
    steps: dict[float, dict[str, list[Any]]],
    watermark: float,
    offset_end: int = -1,
    version: str = "1",
) -> Partial:
    p = Partial("m", version, REF.id, source, watermark, offset_end=offset_end)
    for step, cols in steps.items():
        for name, vals in cols.items():
            p.add_step(step, name, REF.series[name].empty().add(vals))
        p.events[step] = len(next(iter(cols.values())))
    return p


def _hist(name: str, values: Sequence[Any]) -> Histogram:
    return REF.series[name].empty().add(values)


def _window(ev: ModelEvaluator, version: str = "1") -> VersionWindow:
    return ev.versions[version]


# --------------------------------------------------------------------------- closing


def test_a_step_closes_only_when_the_watermark_passes_its_end() -> None:
    rng = np.random.default_rng(0)
    ev = _evaluator()
    v0, v1 = _values(rng, 50), _values(rng, 30)
    out = ev.handle(_partial("a", {T0: v0}, T0 + 59, offset_end=1), now=1000.0)
    assert out.results == [] and out.merged_events == 50
    # Watermark T0 + 69.9 - lateness < T0 + 60: still open.
    out = ev.handle(_partial("a", {T0 + 60: v1}, T0 + 69.9, offset_end=2), now=1001.0)
    assert out.results == []
    out = ev.handle(Tick(1002.0), now=1002.0)
    assert out.results == []
    # T0 + 70 - 10 == end of the first step: it closes, and only it.
    out = ev.handle(_partial("a", {}, T0 + 70, offset_end=3), now=1003.0)
    [r] = out.results
    assert (r.window_start, r.window_end, r.n_events) == (T0, T0 + 60, 50)
    assert r.reference_id == REF.id and r.model_version == "1"
    assert r.evaluations["x"].n_current == 50
    assert _window(ev).currents()["x"] == _hist("x", v0["x"])
    # Next step closes at T0 + 130.
    assert ev.handle(_partial("a", {}, T0 + 129, offset_end=4), now=1004.0).results == []
    [r] = ev.handle(_partial("a", {}, T0 + 130, offset_end=5), now=1005.0).results
    assert (r.window_start, r.window_end, r.n_events) == (T0 + 60, T0 + 120, 30)


def test_a_slow_partition_holds_the_others_back_until_idle() -> None:
    rng = np.random.default_rng(1)
    ev = _evaluator()
    a = {T0: _values(rng, 20), T0 + 60: _values(rng, 20), T0 + 120: _values(rng, 20)}
    ev.handle(_partial("fast", {T0: a[T0]}, T0 + 59, 1), now=1000.0)
    ev.handle(_partial("slow", {T0: _values(rng, 5)}, T0 + 5, 1), now=1000.0)
    out = ev.handle(_partial("fast", {T0 + 60: a[T0 + 60]}, T0 + 119, 2), now=1010.0)
    assert out.results == []  # watermark = min(T0+119, T0+5) - 10
    assert _window(ev).watermark(1010.0) == T0 + 5 - LATENESS
    out = ev.handle(_partial("fast", {T0 + 120: a[T0 + 120]}, T0 + 179, 3), now=1030.0)
    assert out.results == []  # slow source last seen 30 s ago: not idle yet
    assert ev.handle(Tick(1030.0), now=1030.0).results == []
    # 30.5 s after the slow source's last partial it stops holding the others back.
    out = ev.handle(Tick(1030.5), now=1030.5)
    assert _window(ev).watermark(1030.5) == T0 + 179 - LATENESS
    assert [(r.window_start, r.window_end, r.n_events) for r in out.results] == [
        (T0, T0 + 60, 25),
        (T0 + 60, T0 + 120, 20),
    ]
    # Two windows closed by one message: each evaluated on its own content, not the last one.
    assert [r.evaluations["c"].n_current for r in out.results] == [25, 20]
    # The slow source comes back: it holds the watermark again (no step reopens).
    ev.handle(_partial("slow", {}, T0 + 100, 2), now=1031.0)
    assert _window(ev).watermark(1031.0) == T0 + 100 - LATENESS


def test_processing_time_fallback_closes_windows_after_traffic_stops() -> None:
    rng = np.random.default_rng(2)
    ev = _evaluator()
    ev.handle(_partial("a", {T0: _values(rng, 40)}, T0 + 30, 1), now=1000.0)
    assert ev.handle(Tick(1010.0), now=1010.0).results == []
    assert ev.handle(Tick(1030.0), now=1030.0).results == []  # source still active
    # All sources idle: event time runs on from T0 + 30 with processing time.
    assert ev.handle(Tick(1039.9), now=1039.9).results == []  # T0 + 59.9
    [r] = ev.handle(Tick(1040.0), now=1040.0).results  # T0 + 60
    assert (r.window_start, r.window_end, r.n_events) == (T0, T0 + 60, 40)
    # Later ticks slide the window through silence until it is empty, then stop.
    [r] = ev.handle(Tick(1100.0), now=1100.0).results
    assert (r.window_start, r.window_end, r.n_events) == (T0 + 60, T0 + 120, 0)
    assert ev.handle(Tick(5000.0), now=5000.0).results == []


def test_fallback_slides_a_sliding_window_to_empty() -> None:
    rng = np.random.default_rng(3)
    ev = _evaluator(_policy(size_steps=3))
    ev.handle(_partial("a", {T0: _values(rng, 10)}, T0 + 30, 1), now=1000.0)
    out = ev.handle(Tick(1000.0 + 30 + 300), now=1330.0)
    spans = [(r.window_start - T0, r.window_end - T0, r.n_events) for r in out.results]
    # First window, then three slides: the step with data leaves after size_steps closes.
    assert spans == [(0, 60, 10), (0, 120, 10), (0, 180, 10), (60, 240, 0)]
    # Each window closed by the one tick is evaluated on its own content.
    assert [r.evaluations["x"].n_current for r in out.results] == [10, 10, 10, 0]
    assert ev.handle(Tick(9999.0), now=9999.0).results == []


# ------------------------------------------------------------------------ late, replays


def test_late_partials_are_counted_not_merged() -> None:
    rng = np.random.default_rng(4)
    ev = _evaluator()
    ev.handle(_partial("a", {T0: _values(rng, 10)}, T0 + 59, 1), now=1000.0)
    [r] = ev.handle(_partial("a", {}, T0 + 75, 2), now=1001.0).results
    assert r.late_events == 0
    fresh = _values(rng, 7)
    out = ev.handle(_partial("a", {T0: _values(rng, 4), T0 + 60: fresh}, T0 + 110, 3), now=1002.0)
    assert (out.late_events, out.merged_events) == (4, 7)
    assert _window(ev).late_events == 4
    [r] = ev.handle(_partial("a", {}, T0 + 130, 4), now=1003.0).results
    assert r.late_events == 4  # reported with the next evaluation...
    assert r.n_events == 7
    assert _window(ev).currents()["x"] == _hist("x", fresh["x"])  # ...and not merged
    assert _window(ev).late_events == 0


def test_late_events_without_series_are_counted_late() -> None:
    ev = _evaluator()
    ev.handle(_partial("a", {T0: _values(np.random.default_rng(5), 3)}, T0 + 80, 1), now=1.0)
    p = Partial("m", "1", REF.id, "a", T0 + 90, events={T0: 2}, offset_end=2)
    out = ev.handle(p, now=2.0)
    assert (out.late_events, out.merged_events) == (2, 0)


def test_a_replayed_partial_is_skipped_and_counted() -> None:
    rng = np.random.default_rng(6)
    ev = _evaluator()
    first = _partial("a", {T0: _values(rng, 12)}, T0 + 20, offset_end=100)
    assert ev.handle(first, now=1.0).merged_events == 12
    again = ev.handle(first, now=2.0)
    assert (again.merged_events, again.late_events) == (0, 0)
    assert _window(ev).duplicate_events == 12
    older = _partial("a", {T0: _values(rng, 5)}, T0 + 20, offset_end=90)
    assert ev.handle(older, now=3.0).merged_events == 0
    assert _window(ev).duplicate_events == 17
    # Offsets are per source: the same offset on another partition is new data.
    other = _partial("b", {T0: _values(rng, 3)}, T0 + 20, offset_end=100)
    assert ev.handle(other, now=4.0).merged_events == 3
    # Unknown offsets (-1) are never taken for replays.
    unknown = _partial("c", {T0: _values(rng, 2)}, T0 + 20)
    assert ev.handle(unknown, now=5.0).merged_events == 2
    assert ev.handle(unknown, now=6.0).merged_events == 2
    r = ev.handle(Tick(1000.0), now=1000.0).results[0]
    assert (r.window_start, r.n_events) == (T0, 12 + 3 + 4)


# ---------------------------------------------------------------------- sliding windows


@settings(max_examples=25, deadline=None)
@given(
    size_steps=st.integers(1, 4),
    sizes=st.lists(st.integers(0, 30), min_size=1, max_size=10),
    seed=st.integers(0, 2**32 - 1),
)
def test_sliding_totals_equal_the_sum_of_the_last_steps(
    size_steps: int, sizes: list[int], seed: int
) -> None:
    """After each close, the window is the last ``size_steps`` steps, recomputed from values."""
    rng = np.random.default_rng(seed)
    ev = _evaluator(_policy(size_steps=size_steps), fast=True)
    data: dict[float, dict[str, list[Any]]] = {}  # every step sent, by start
    size = STEP * size_steps

    def within(lo: float, hi: float) -> list[dict[str, list[Any]]]:
        return [v for s, v in sorted(data.items()) if lo <= s < hi]

    for k, n in enumerate(sizes):
        start = T0 + STEP * k
        values = _values(rng, n)
        if n:
            data[start] = values
        # Each message carries step k and moves the watermark to the end of step k.
        steps = {start: values} if n else {}
        out = ev.handle(_partial("a", steps, start + STEP + LATENESS, k + 1), now=float(k))
        # A step is evaluated when it has data or the window still held some before it.
        held = any(v["x"] for v in within(start - size, start))
        if not n and not held:
            assert out.results == []
            continue
        [r] = out.results
        end = start + STEP
        assert r.window_end == end
        recent = within(end - size, end)
        expected_x = [x for v in recent for x in v["x"]]
        expected_c = [c for v in recent for c in v["c"]]
        currents = _window(ev).currents()
        assert currents["x"] == _hist("x", expected_x)
        assert currents["c"] == _hist("c", expected_c)
        assert r.n_events == len(expected_x)
        assert r.evaluations["x"].n_current == len(expected_x)
        first = min((s for s in data if end - size <= s < end), default=end - STEP)
        assert end - size <= r.window_start <= first


def test_window_bounds_of_a_sliding_window() -> None:
    rng = np.random.default_rng(7)
    ev = _evaluator(_policy(size_steps=3))
    spans = []
    for k in range(5):
        start = T0 + STEP * k
        out = ev.handle(_partial("a", {start: _values(rng, 5)}, start + 70, k + 1), now=k)
        spans += [(r.window_start - T0, r.window_end - T0, r.n_events) for r in out.results]
    assert spans == [(0, 60, 5), (0, 120, 10), (0, 180, 15), (60, 240, 15), (120, 300, 15)]
    assert all(end - start <= 180 for start, end, _ in spans)


def test_an_emptied_window_restarts_at_the_next_data() -> None:
    rng = np.random.default_rng(8)
    ev = _evaluator(_policy(size_steps=2))
    ev.handle(_partial("a", {T0: _values(rng, 5)}, T0 + 70, 1), now=0.0)
    ev.handle(_partial("a", {}, T0 + 190, 2), now=1.0)  # slides to empty
    later = T0 + 3600
    out = ev.handle(_partial("a", {later: _values(rng, 6)}, later + 70, 3), now=2.0)
    # No evaluation of the hour of silence: the window restarts at the next step with data.
    assert [(r.window_start, r.window_end, r.n_events) for r in out.results] == [
        (later, later + 60, 6)
    ]


# ------------------------------------------------------------------------ count windows


def test_count_windows_close_every_count_step_events() -> None:
    rng = np.random.default_rng(9)
    policy = _policy(kind="count", count_size=300, count_step=100)
    assert policy.size_steps == 3
    ev = _evaluator(policy)
    chunks = []
    results = []
    for k in range(8):
        values = _values(rng, 50)
        chunks.append(values)
        ts = T0 + 1000 * k  # far apart in event time: no time window would matter
        out = ev.handle(_partial("a", {ts: values}, ts + 1, k + 1), now=float(k))
        results.append(out.results)
        if k % 2 == 0:
            assert out.results == []
            continue
        [r] = out.results
        recent = chunks[max(0, k + 1 - 6) : k + 1]  # the last 3 steps of 100 events
        expected = [x for v in recent for x in v["x"]]
        assert r.n_events == len(expected) == min(100 * ((k + 1) // 2), 300)
        assert _window(ev).currents()["x"] == _hist("x", expected)
        assert r.window_end == ts + 1
        assert r.window_start == T0 + 1000 * max(0, k + 1 - 6)
    assert sum(len(r) for r in results) == 4
    # Ticks never close a count window, whatever the processing time.
    assert ev.handle(Tick(1e6), now=1e6).results == []


def test_count_windows_merge_old_event_times() -> None:
    rng = np.random.default_rng(10)
    ev = _evaluator(_policy(kind="count", count_size=100, count_step=100))
    ev.handle(_partial("a", {T0 + 600: _values(rng, 60)}, T0 + 601, 1), now=0.0)
    out = ev.handle(_partial("a", {T0: _values(rng, 40)}, T0 + 1, 2), now=1.0)
    assert (out.late_events, out.merged_events) == (0, 40)
    [r] = out.results
    assert (r.n_events, r.window_start) == (100, T0)


# ------------------------------------------------------------------------ persistence


def _scenario(seed: int, n_rounds: int = 14) -> list[tuple[Partial | Tick, float]]:
    """Three sources with skewed clocks, replays, late data, gaps and ticks."""
    rng = np.random.default_rng(seed)
    messages: list[tuple[Partial | Tick, float]] = []
    clocks = {"a": T0, "b": T0 - 20.0, "c": T0 + 5.0}
    offsets = dict.fromkeys(clocks, 0)
    now = 10_000.0
    last: Partial | None = None
    for k in range(n_rounds):
        now += float(rng.uniform(2, 25))
        roll = rng.random()
        if roll < 0.12:
            messages.append((Tick(now), now))
            continue
        if roll < 0.2 and last is not None:
            messages.append((last, now))  # a replay after a crash
            continue
        source = str(rng.choice(list(clocks)))
        if source == "c" and k > n_rounds // 2:
            source = "a"  # source c goes idle half-way
        clocks[source] += float(rng.uniform(10, 50))
        steps: dict[float, dict[str, list[Any]]] = {}
        for _ in range(int(rng.integers(0, 3))):
            ts = clocks[source] - float(rng.uniform(0, 120))  # some of it late
            step = float(np.floor(ts / STEP) * STEP)
            drift = 1.5 if k > n_rounds // 2 else 0.0
            vals = _values(rng, int(rng.integers(150, 400)), drift)
            if step in steps:
                for name in vals:
                    steps[step][name] += vals[name]
            else:
                steps[step] = vals
        offsets[source] += int(rng.integers(1, 500))
        last = _partial(source, steps, clocks[source], offsets[source])
        messages.append((last, now))
    messages.append((Tick(now + 1000), now + 1000))
    return messages


def _summary(out: Emitted) -> dict[str, Any]:
    return {
        "results": [r.to_dict() for r in out.results],
        "alerts": out.alerts,
        "late": out.late_events,
        "merged": out.merged_events,
    }


def _run(
    messages: list[tuple[Partial | Tick, float]], policy: WindowPolicy, cut: int | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    decision, alerts = _decision(), _alerts(fire_after=1, resolve_after=1)
    registry = _registry()
    ev = ModelEvaluator("m", registry, policy, decision, alerts)
    outputs = []
    for i, (message, now) in enumerate(messages):
        if i == cut:
            state = json.loads(json.dumps(ev.to_dict(), allow_nan=False))
            ev = ModelEvaluator.from_dict(state, registry, policy, decision, alerts)
        outputs.append(_summary(ev.handle(message, now)))
    return outputs, ev.to_dict()


POLICIES = {
    "tumbling": _policy(size_steps=1),
    "sliding": _policy(size_steps=3),
    "count": _policy(kind="count", count_size=900, count_step=300),
}


@pytest.mark.parametrize("kind", sorted(POLICIES))
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**16), cut_ratio=st.floats(0, 1))
def test_state_round_trip_mid_stream_changes_nothing(
    kind: str, seed: int, cut_ratio: float
) -> None:
    policy = POLICIES[kind]
    messages = _scenario(seed)
    cut = int(cut_ratio * len(messages))
    straight, final = _run(messages, policy)
    resumed, final_resumed = _run(messages, policy, cut)
    assert resumed == straight
    assert final_resumed == final


def test_the_scenario_exercises_what_the_round_trip_must_keep() -> None:
    """Guard for the property test above: the seeded scenarios do produce results, late
    events, replays and alerts, so an incomplete ``to_dict`` would be caught."""
    totals = {"results": 0, "late": 0, "alerts": 0, "duplicates": 0}
    for seed in range(6):
        messages = _scenario(seed)
        outputs, final = _run(messages, POLICIES["sliding"])
        totals["results"] += sum(len(o["results"]) for o in outputs)
        totals["late"] += sum(o["late"] for o in outputs)
        totals["alerts"] += sum(len(o["alerts"]) for o in outputs)
        totals["duplicates"] += final["versions"]["1"]["duplicate_events"]
    assert all(v > 0 for v in totals.values()), totals


# ------------------------------------------------------------------------------ alerts


def _stream(ev: ModelEvaluator, shifts: list[float], seed: int, n: int = 2000) -> list[Emitted]:
    rng = np.random.default_rng(seed)
    outs = []
    for k, shift in enumerate(shifts):
        start = T0 + STEP * k
        p = _partial("a", {start: _values(rng, n, shift)}, start + STEP + LATENESS, k + 1)
        outs.append(ev.handle(p, now=1000.0 + STEP * k))
    return outs


def test_no_alert_on_null_data() -> None:
    ev = _evaluator(fire_after=1)
    outs = _stream(ev, [0.0] * 25, seed=11)
    assert sum(len(o.results) for o in outs) == 25
    assert [a for o in outs for a in o.alerts] == []
    assert all(not r.drifted for o in outs for r in o.results)


def test_alerts_fire_on_injected_drift_and_resolve_after_it_stops() -> None:
    ev = _evaluator(fire_after=2, resolve_after=2)
    shifts = [0.0] * 5 + [1.0] * 4 + [0.0] * 5
    outs = _stream(ev, shifts, seed=12)
    by_window = [[(a.status, a.feature, a.statistic) for a in o.alerts] for o in outs]
    assert by_window == [
        [],
        [],
        [],
        [],
        [],
        [],  # first drifted window: not yet (fire_after=2)
        [("firing", "x", "psi")],
        [],
        [],
        [],  # first clean window
        [("resolved", "x", "psi")],
        [],
        [],
        [],
    ]
    drifted = [r.drifted for o in outs for r in o.results]
    assert drifted == [[]] * 5 + [["x"]] * 4 + [[]] * 5
    firing = outs[6].alerts[0]
    assert firing.model == "m" and firing.model_version == "1"
    assert firing.reference_id == REF.id
    assert firing.severity == "critical"
    assert firing.window == AlertWindow(start="2025-11-27T03:16:00Z", end="2025-11-27T03:17:00Z")
    assert firing.n_current == 2000
    resolved = outs[10].alerts[0]
    assert resolved.alert_id == firing.alert_id  # one incident


def test_versions_get_their_own_windows() -> None:
    rng = np.random.default_rng(13)
    ev = _evaluator()
    ev.handle(_partial("a", {T0: _values(rng, 5)}, T0 + 80, 1, version="1"), now=0.0)
    out = ev.handle(_partial("a", {T0: _values(rng, 7)}, T0 + 80, 1, version="2"), now=0.0)
    assert set(ev.versions) == {"1", "2"}
    assert [(r.model_version, r.n_events) for r in out.results] == [("2", 7)]


def test_a_partial_with_an_unknown_reference_is_not_merged() -> None:
    ev = _evaluator()
    p = _partial("a", {T0: _values(np.random.default_rng(0), 5)}, T0 + 80, 1)
    p.reference_id = "sha256:unknown"
    out = ev.handle(p, now=0.0)
    assert (out.merged_events, out.results, ev.versions) == (0, [], {})


def test_windows_closed_together_are_each_evaluated_with_their_own_content() -> None:
    """One message closing several steps (a backlog, or the idle fallback) evaluates every
    window on its own histograms, not all of them on the last window's."""
    rng = np.random.default_rng(12)
    ev = _evaluator(_policy(size_steps=2), fast=True)
    steps = {T0 + STEP * k: _values(rng, 200 + 100 * k, shift=float(k)) for k in range(3)}
    out = ev.handle(_partial("a", steps, T0 + 3 * STEP + LATENESS, 1), now=1.0)
    spans = [(r.window_start - T0, r.window_end - T0, r.n_events) for r in out.results]
    assert spans == [(0, 60, 200), (0, 120, 500), (60, 180, 700)]
    for r in out.results:
        inside = [v for s, v in steps.items() if r.window_start <= s < r.window_end]
        expected = PSI().evaluate(
            REF.series["x"].histogram.coarse_counts(),
            _hist("x", [x for v in inside for x in v["x"]]).coarse_counts(),
        )
        assert r.evaluations["x"].n_current == r.n_events
        assert r.evaluations["x"].results["psi"].value == pytest.approx(expected.value)


# --------------------------------------------------------------------- figures for metrics


def test_each_result_carries_the_time_its_evaluation_took() -> None:
    rng = np.random.default_rng(3)
    ev = _evaluator()
    ev.handle(_partial("a", {T0: _values(rng, 200)}, T0 + 59, offset_end=1), now=1000.0)
    [r] = ev.handle(_partial("a", {}, T0 + 70, offset_end=2), now=1001.0).results
    assert 0.0 < r.evaluation_seconds < 10.0
    assert "evaluation_seconds" not in r.to_dict()  # not part of the drift.results contract


def test_watermark_lag_is_processing_time_minus_the_oldest_version_watermark() -> None:
    rng = np.random.default_rng(4)
    ev = _evaluator()
    assert ev.watermark_lag(1000.0) is None  # no data yet
    ev.handle(_partial("a", {T0: _values(rng, 10)}, T0 + 50, offset_end=1), now=T0 + 55)
    # watermark = T0 + 50 - lateness; the source is active (heard 5 s ago)
    assert ev.watermark_lag(T0 + 60) == pytest.approx(60 - 50 + LATENESS)
    ev.handle(
        _partial("a", {T0: _values(rng, 10)}, T0 + 20, offset_end=1, version="2"), now=T0 + 58
    )
    assert ev.watermark_lag(T0 + 60) == pytest.approx(60 - 20 + LATENESS)
    count = ModelEvaluator("m", _registry(), _policy(kind="count"), _decision())
    count.handle(_partial("a", {T0: _values(rng, 10)}, T0 + 50, offset_end=1), now=T0 + 55)
    assert count.watermark_lag(T0 + 60) is None


def test_no_watermark_lag_while_an_unheard_partition_holds_the_windows_back() -> None:
    """The watermark is -inf until every source partition reported (or the idle timeout):
    the lag is then unknown, never infinite (an infinite gauge crashed the agent once)."""
    rng = np.random.default_rng(5)
    ev = _evaluator()
    p = _partial("drift.events/0", {T0: _values(rng, 10)}, T0 + 50, offset_end=1)
    p.source_partitions = 4
    ev.handle(p, now=T0 + 55)
    assert _window(ev).watermark(T0 + 56) == -np.inf
    assert ev.watermark_lag(T0 + 56) is None
    # after the idle timeout the others stop holding it back: a finite lag again
    assert ev.watermark_lag(T0 + 55 + IDLE + 1) is not None


# ------------------------------------------------------------------------ skewed clocks

FUTURE = 300.0


def _bounded(**kw: Any) -> ModelEvaluator:
    return ModelEvaluator(
        "m", _registry(), _policy(max_future_seconds=FUTURE, **kw), _decision(fast=True)
    )


def test_a_future_step_is_not_merged_and_cannot_move_the_watermark() -> None:
    rng = np.random.default_rng(7)
    ev = _bounded()
    now = T0 + 30
    year_3000 = 32_503_680_000.0
    p = _partial("a", {T0: _values(rng, 20), year_3000: _values(rng, 1)}, year_3000, 1)
    out = ev.handle(p, now=now)
    w = _window(ev)
    assert out.merged_events == 20 and w.future_events == 1
    assert w.sources["a"][0] == now + FUTURE  # bounded, not the year 3000
    assert year_3000 not in w.pending_events


def test_a_state_poisoned_by_an_older_version_recovers() -> None:
    """Written while a year-3000 event was accepted: every step up to it closed."""
    rng = np.random.default_rng(8)
    poisoned = _evaluator()  # no bound, like the older version
    year_3000 = 32_503_680_000.0
    p = _partial("a", {T0: _values(rng, 20), year_3000: _values(rng, 1)}, year_3000 + 90, 1)
    poisoned.handle(p, now=T0 + 30)
    state = json.loads(json.dumps(poisoned.to_dict()))
    assert state["versions"]["1"]["last_closed_end"] == year_3000 + STEP
    # Without the repair, every later event would be late:
    later = _partial("a", {T0 + 3600: _values(rng, 5)}, T0 + 3659, 2)
    assert poisoned.handle(later, now=T0 + 3660).late_events == 5
    ev = ModelEvaluator.from_dict(
        state, _registry(), _policy(max_future_seconds=FUTURE), _decision(fast=True)
    )
    # The next hour of events is counted, not late, and its windows close again.
    now = T0 + 3600
    out = ev.handle(_partial("a", {now: _values(rng, 30)}, now + 59, 2), now=now + 60)
    assert (out.merged_events, out.late_events) == (30, 0)
    out = ev.handle(_partial("a", {}, now + 80, 3), now=now + 81)
    assert [(r.window_start, r.n_events) for r in out.results] == [(now, 30)]


# ----------------------------------------------------------------------- data quality


def test_a_type_change_raises_a_data_quality_alert_and_no_drift_alert() -> None:
    """Issue 7, stage 2: 'x' switches to strings for 40 % of the events. The worker's own
    decision policy (quality alerts on by default) fires a data_quality alert on
    mismatch_rate after fire_after windows; PSI and the missing rate stay quiet."""
    from stream_drift.config import Settings

    settings = Settings().override({"alerts.fire_after": 2, "alerts.cooldown_seconds": 0.0})
    decision = settings.decision
    assert decision.deciding == ("psi", "missing_rate", "mismatch_rate")
    ev = ModelEvaluator("m", _registry(), _policy(), decision, settings.alerts)
    rng = np.random.default_rng(9)
    alerts: list[Alert] = []
    results = []
    for i in range(4):
        cols = _values(rng, 1000)
        if i >= 1:
            cols["x"][:400] = ["forty"] * 400
        start = T0 + 60 * i
        out = ev.handle(_partial("a", {start: cols}, start + 59, offset_end=i + 1), now=2000.0 + i)
        alerts += out.alerts
        results += out.results
    out = ev.handle(_partial("a", {}, T0 + 60 * 4 + LATENESS, offset_end=9), now=2010.0)
    alerts += out.alerts
    results += out.results
    assert len(results) == 4
    last = results[-1].evaluations["x"]
    assert last.mismatch_ratio == pytest.approx(0.4) and last.missing_ratio == 0.0
    assert last.data_quality and not last.drift
    assert results[-1].drifted == []
    assert [(a.feature, a.statistic, a.status, a.category) for a in alerts] == [
        ("x", "mismatch_rate", "firing", "data_quality")
    ]
    (alert,) = alerts
    assert alert.severity == "warning" and alert.value == pytest.approx(0.4)
    assert alert.summary.startswith(
        "m v1: feature 'x' data quality — 40% of values are not numbers (type mismatch) "
        "vs 0% in the reference (threshold 5%)"
    )
    # The window's result message carries the rates and the verdicts.
    d = results[-1].to_dict()
    json.dumps(d)
    x = d["features"]["x"]
    assert x["mismatch_ratio"] == pytest.approx(0.4) and x["data_quality"] is True
