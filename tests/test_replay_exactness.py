"""Every event counted once, whatever crashes and redeliveries happen between the stages.

A simulation of the at-least-once pipeline without Kafka: stage 1 (the real
:class:`IngestAccumulator`) reads one source partition in batches, flushes at random moments
and sends each flush's partials to stage 2 (the real :class:`VersionWindow`), then "commits"
:meth:`IngestAccumulator.commit_offset`. At random moments it crashes — before, during or
after sending a flush, before its commit — and a fresh accumulator resumes from the last
commit, as a restarted worker does; partials are also delivered twice at random (stage 2's
own at-least-once). The windows must hold exactly what one clean pass gives.
"""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_drift.config import WindowPolicy
from stream_drift.pipeline.events import RawRecord
from stream_drift.pipeline.ingest import IngestAccumulator
from stream_drift.pipeline.partials import Partial, decode_message
from stream_drift.pipeline.reference import build_reference
from stream_drift.pipeline.registry import ReferenceRegistry
from stream_drift.pipeline.windows import VersionWindow
from stream_drift.stats.histogram import Histogram

STEP = 60.0
T0 = 1_764_213_000.0
REF = build_reference(
    {
        "amount": np.random.default_rng(0).normal(50, 10, 2000),
        "country": np.random.default_rng(1).choice(["DE", "FR", "US"], 2000).tolist(),
    },
    model="m",
)
# Processing time (now=0) runs far behind event time here: no bound on event time ahead of it.
NO_FUTURE_LIMIT = 1e12
# No step closes during the simulation: everything stays pending, to be compared.
POLICY = WindowPolicy(
    size_seconds=3600,
    step_seconds=int(STEP),
    allowed_lateness_seconds=1e9,
    max_future_seconds=NO_FUTURE_LIMIT,
)


def records(n: int, seed: int) -> list[RawRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for offset in range(n):
        if rng.random() < 0.05:
            value = b"not json"
        else:
            event: dict[str, Any] = {
                "model": "m",
                "ts": T0 + float(rng.uniform(0, 4 * STEP)),
                "features": {
                    "amount": float(rng.normal(50, 10)),
                    "country": str(rng.choice(["DE", "FR", "US", "JP"])),
                },
            }
            value = json.dumps(event).encode()
        out.append(RawRecord(value, "ev", 0, offset, 0))
    return out


def registry() -> ReferenceRegistry:
    reg = ReferenceRegistry()
    reg.add(REF)
    return reg


def accumulator(chunk: int) -> IngestAccumulator:
    acc = IngestAccumulator(registry(), step_seconds=STEP, chunk_records=chunk)
    acc.topic_partitions["ev"] = 1
    return acc


def pending(window: VersionWindow) -> tuple[dict[float, int], dict[float, dict[str, Histogram]]]:
    return dict(window.pending_events), window.pending


def clean_pass(recs: list[RawRecord]) -> VersionWindow:
    acc = accumulator(chunk=10**9)
    acc.add_records(recs)
    window = VersionWindow(REF, POLICY)
    for p in acc.flush():
        window.merge(p, now=0.0)
    return window


def deliver(window: VersionWindow, partial: Partial, rng: random.Random) -> None:
    # Through the wire format, as on drift.partials; sometimes twice.
    message = decode_message(partial.to_bytes())
    assert isinstance(message, Partial)
    window.merge(message, now=0.0)
    if rng.random() < 0.2:
        window.merge(decode_message(partial.to_bytes()), now=0.0)  # type: ignore[arg-type]


def crashing_pass(recs: list[RawRecord], chunk: int, seed: int) -> VersionWindow:
    rng = random.Random(seed)
    window = VersionWindow(REF, POLICY)
    committed = 0
    crashes = 0
    while True:
        acc = accumulator(chunk)
        position = committed
        crashed = False
        while position < len(recs) and not crashed:
            batch = recs[position : position + rng.randint(1, 3 * chunk)]
            acc.add_records(batch)
            position += len(batch)
            if rng.random() < 0.5 or position >= len(recs):
                partials = acc.flush()
                # A crash may come before, during or after the sends, or before the commit.
                crash_at = rng.randint(0, len(partials) + 1) if crashes < 6 else len(partials) + 1
                for i, p in enumerate(partials):
                    if i == crash_at:
                        break
                    deliver(window, p, rng)
                if crash_at <= len(partials):
                    crashes += 1
                    crashed = True
                    break
                offset = acc.commit_offset("ev", 0)
                assert offset is not None and offset <= position
                committed = offset
        if not crashed:
            return window


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 400),
    chunk=st.integers(1, 120),
    seed=st.integers(0, 10**6),
)
def test_crashes_and_redeliveries_count_every_event_once(n: int, chunk: int, seed: int) -> None:
    recs = records(n, seed)
    expected = clean_pass(recs)
    got = crashing_pass(recs, chunk, seed)
    exp_events, exp_hists = pending(expected)
    got_events, got_hists = pending(got)
    assert got_events == exp_events
    assert got_hists == exp_hists
    assert got.late_events == expected.late_events == 0
    assert got.inconsistent_events == 0


def test_a_replay_of_an_applied_chunk_is_subtracted_not_added() -> None:
    """The hand-worked case: 6 events, chunks of 4 offsets."""
    recs = records(6, seed=3)
    acc = accumulator(chunk=4)
    acc.add_records(recs[:3])
    [first] = acc.flush()  # [0, 3): sent and applied, then the worker dies before committing
    window = VersionWindow(REF, POLICY)
    window.merge(first, now=0.0)
    assert acc.commit_offset("ev", 0) == 0  # what it would have committed anyway
    restarted = accumulator(chunk=4)
    restarted.add_records(recs)  # replays from 0
    partials = sorted(restarted.flush(), key=lambda p: p.offset_start)
    assert [(p.offset_start, p.offset_end) for p in partials] == [(0, 4), (4, 6)]
    for p in partials:
        window.merge(p, now=0.0)
    expected = clean_pass(recs)
    assert pending(window) == pending(expected)
    assert window.duplicate_events == first.n_events


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), chunk=st.integers(1, 80), seed=st.integers(0, 10**6))
def test_with_steps_closing_meanwhile_no_event_is_lost_or_counted_twice(
    n: int, chunk: int, seed: int
) -> None:
    """Events in time order, no lateness: steps close while the replays come; a replayed
    event of a closed step is not counted again, a new one is counted late."""
    recs = []
    for r in records(n, seed):
        if r.value != b"not json":
            event = json.loads(r.value)
            event["ts"] = T0 + r.offset * 2.0
            r = RawRecord(json.dumps(event).encode(), r.topic, r.partition, r.offset, 0)
        recs.append(r)
    valid = sum(1 for r in recs if r.value != b"not json")
    policy = WindowPolicy(
        size_seconds=int(STEP) * 100,
        step_seconds=int(STEP),
        allowed_lateness_seconds=0,
        max_future_seconds=NO_FUTURE_LIMIT,
    )
    rng = random.Random(seed)
    window = VersionWindow(REF, policy)
    committed, crashes = 0, 0
    while True:
        acc = accumulator(chunk)
        position, crashed = committed, False
        while position < len(recs) and not crashed:
            batch = recs[position : position + rng.randint(1, 3 * chunk)]
            acc.add_records(batch)
            position += len(batch)
            if rng.random() < 0.5 or position >= len(recs):
                partials = acc.flush()
                crash_at = rng.randint(0, len(partials) + 1) if crashes < 6 else len(partials) + 1
                for i, p in enumerate(partials):
                    if i == crash_at:
                        break
                    window.merge(p, now=0.0)
                    list(window.advance(now=0.0))
                if crash_at <= len(partials):
                    crashes, crashed = crashes + 1, True
                    break
                offset = acc.commit_offset("ev", 0)
                assert offset is not None
                committed = offset
        if not crashed:
            break
    counted = sum(window.step_events) + sum(window.pending_events.values()) + window.late_events
    assert counted == valid
    assert window.inconsistent_events == 0
