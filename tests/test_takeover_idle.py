"""A worker that takes stage 2 over does not count the time nobody listened as idleness.

While no stage 2 ran (the last owner killed, a takeover, a restart), the sources went on
sending: their partials wait in ``drift.partials``. Idle by the clock, every source but the
one read first would be left out of the watermark, and the first partial or tick read would
close steps the waiting partials still add to: their events would count as late, and the
window's result would miss them. :meth:`EvaluatorCache.get` counts the sources of a model it
took over as heard at the takeover.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from stream_drift.app.agents import EvaluatorCache
from stream_drift.app.runtime import Runtime
from stream_drift.config import Settings
from stream_drift.pipeline.events import RawRecord
from stream_drift.pipeline.ingest import IngestAccumulator
from stream_drift.pipeline.partials import Partial
from stream_drift.pipeline.reference import build_reference

T0 = 1_704_067_200.0  # 2024-01-01, a step start
STEP = 60
REF = build_reference({"x": np.arange(100.0)}, model="m")
DOWN_SECONDS = 100.0  # no stage 2 for this long; the idle timeout is 15 s


def _runtime() -> Runtime:
    runtime = Runtime(
        Settings().override(
            {
                "window.size_seconds": STEP,
                "window.step_seconds": STEP,
                "window.allowed_lateness_seconds": 1.0,
                "window.idle_timeout_seconds": 15.0,
            }
        )
    )
    runtime.registry.add(REF)
    return runtime


def _partials(runtime: Runtime, partition: int, times: list[float], first: int) -> list[Partial]:
    acc = IngestAccumulator(runtime.registry, step_seconds=STEP)
    acc.topic_partitions["ev"] = 2
    acc.add_records(
        RawRecord(
            json.dumps({"model": "m", "ts": ts, "features": {"x": 5}}).encode(),
            "ev",
            partition,
            first + i,
            0,
        )
        for i, ts in enumerate(times)
    )
    return acc.flush()


def _owner(runtime: Runtime, table: dict[str, Any]) -> EvaluatorCache:
    cache = EvaluatorCache(runtime, table)
    cache.learn_partitions({0})
    cache.partition_of["m"] = 0
    return cache


def _late_after_takeover(resume: bool) -> tuple[int, list[int]]:
    """(late events, n of each window closed) when a new owner reads, after the outage, the
    partial of source 0 (past the step's end) before the one source 1 sent meanwhile."""
    runtime = _runtime()
    table: dict[str, Any] = {}
    before = time.time() - DOWN_SECONDS
    first = _owner(runtime, table)
    ev = first.get("m")
    for p in _partials(runtime, 0, [T0 + 10], 0) + _partials(runtime, 1, [T0 + 10], 0):
        ev.handle(p, before)
    first.save(ev)
    # The first owner is gone; source 0 crossed the step's end, source 1 is still in it.
    second = _owner(runtime, table)
    if not resume:
        second.taken_over = set()
    ev = second.get("m")
    late, closed = 0, []
    waiting = _partials(runtime, 0, [T0 + 10, T0 + 30, T0 + 70], 0)
    waiting += _partials(runtime, 1, [T0 + 10, T0 + 40, T0 + 50], 0)
    for p in waiting:
        out = ev.handle(p, time.time())
        late += out.late_events
        closed += [r.n_events for r in out.results]
    return late, closed


def test_the_sources_of_a_model_taken_over_count_as_heard_at_the_takeover() -> None:
    late, closed = _late_after_takeover(resume=True)
    assert (late, closed) == (0, [])  # source 1 holds the step open: nothing closes yet
    # And without: the step closes on the first partial read, source 1's two events late
    # (what this test guards against, shown to happen).
    assert _late_after_takeover(resume=False) == (2, [3])


def test_a_model_is_resumed_once_per_takeover_not_at_every_rebalance() -> None:
    runtime = _runtime()
    table: dict[str, Any] = {}
    owner = _owner(runtime, table)
    ev = owner.get("m")
    for p in _partials(runtime, 0, [T0 + 10], 0):
        ev.handle(p, time.time() - DOWN_SECONDS)
    owner.save(ev)
    owner.live.clear()
    # Rebuilt after the start: resumed (the partition was taken over).
    heard = owner.get("m").versions[""].sources["ev/0"][1]
    assert heard > time.time() - 5
    # A rebalance that keeps partition 0: rebuilt from the table as the owner left it.
    owner.save(owner.get("m"))
    owner.clear()
    owner.learn_partitions({0, 1})
    assert owner.taken_over == {0, 1}
    assert owner.get("m").versions[""].sources["ev/0"][1] == heard
    # Lost, then taken over again: resumed again.
    owner.clear()
    owner.learn_partitions({1})
    owner.clear()
    owner.learn_partitions({0, 1})
    assert "m" not in owner.resumed
    owner.get("m")
    assert "m" in owner.resumed
