"""Stage 1's row sample (``Partial.sample``) and the window's rows in stage 2.

The sample is checked against an independent computation: a pure-Python splitmix64 of
(partition, offset), the ``k`` smallest per (source partition, step), and each value's bin
found with ``bisect`` on the reference's edges.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import math
from typing import Any

import msgspec
import numpy as np
import pytest

from stream_drift.config.policies import WindowPolicy
from stream_drift.pipeline.domain import sample_priority, sample_series, select_bottom_k
from stream_drift.pipeline.events import RawRecord
from stream_drift.pipeline.ingest import IngestAccumulator
from stream_drift.pipeline.partials import Partial, decode_message
from stream_drift.pipeline.reference import ReferenceProfile, build_reference
from stream_drift.pipeline.registry import ReferenceRegistry
from stream_drift.pipeline.windows import VersionWindow
from stream_drift.stats.binning import CategoricalBinning, NumericBinning

STEP = 60.0
T0 = 1_764_213_000.0
K = 5
MASK = (1 << 64) - 1

RNG = np.random.default_rng(7)
REF = build_reference(
    {
        "amount": RNG.normal(50, 10, 1000),
        "country": RNG.choice(["DE", "FR", "US"], 1000).tolist(),
        "age": RNG.integers(18, 90, 1000).astype(float),
        "score": RNG.uniform(0, 1, 1000),
    },
    model="fraud",
    sample_rows=100,  # a reference with a row sample: stage 1 samples its events
    prediction=["score"],
)
LAYOUT = sample_series(REF)


def _splitmix(partition: int, offset: int) -> int:
    z = (partition * 0x9E3779B97F4A7C15 + offset) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def _code(name: str, value: Any) -> int:
    binning = REF.series[name].binning
    if value is None:
        return -1
    if isinstance(binning, NumericBinning):
        return bisect.bisect_right(binning.edges.tolist(), value)
    assert isinstance(binning, CategoricalBinning)
    categories = list(binning.categories)
    return categories.index(value) if value in categories else len(categories)


def _events(n: int, partitions: int = 2, seed: int = 0) -> list[tuple[int, int, dict[str, Any]]]:
    """(partition, offset, event) with a few missing values and events without features."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        partition = i % partitions
        features: dict[str, Any] = {
            "amount": round(float(rng.normal(50, 10)), 3),
            "country": str(rng.choice(["DE", "FR", "US", "BR"])),
            "age": None if i % 7 == 0 else float(rng.integers(18, 90)),
        }
        event: dict[str, Any] = {"model": "fraud", "ts": T0 + float(rng.uniform(0, 3 * STEP))}
        if i % 11 != 0:
            event["features"] = features
        event["prediction"] = float(rng.uniform(0, 1))
        out.append((partition, i // partitions, event))
    return out


def _records(events: list[tuple[int, int, dict[str, Any]]]) -> list[RawRecord]:
    records = [RawRecord(json.dumps(ev).encode(), "ev", p, o, 0) for p, o, ev in events]
    return sorted(records, key=lambda r: (r.partition, r.offset))  # as a fetch delivers them


def _accumulator(
    columnar: bool = True, k: int = K, reference: ReferenceProfile = REF
) -> IngestAccumulator:
    registry = ReferenceRegistry()
    registry.add(reference)
    return IngestAccumulator(
        registry,
        step_seconds=STEP,
        chunk_records=40,
        clock=lambda: T0 + 10 * STEP,
        columnar=columnar,
        sample_per_step=k,
    )


def _samples(partials: list[Partial]) -> dict[tuple[str, float], list[list[int]]]:
    """Stage-2-free union: per (source, step), the bottom-K over every chunk's rows."""
    rows: dict[tuple[str, float], dict[int, list[int]]] = {}
    for p in partials:
        assert isinstance(p.sample, dict)
        for step, step_rows in p.sample.items():
            for row in step_rows:
                rows.setdefault((p.source, step), {})[row[0]] = row
    partition = {s: int(s.split("/")[1]) for s, _ in rows}
    return {
        key: sorted(by.values(), key=lambda r: _splitmix(partition[key[0]], r[0]))[:K]
        for key, by in rows.items()
    }


def _expected(events: list[tuple[int, int, dict[str, Any]]]) -> dict[tuple[str, float], list]:
    groups: dict[tuple[str, float], list[tuple[int, int, dict[str, Any]]]] = {}
    for p, o, ev in events:
        step = math.floor(ev["ts"] / STEP) * STEP
        groups.setdefault((f"ev/{p}", step), []).append((p, o, ev))
    out = {}
    for key, members in groups.items():
        members.sort(key=lambda m: _splitmix(m[0], m[1]))
        out[key] = [
            [o, *(_code(name, ev.get("features", {}).get(name)) for name in LAYOUT)]
            for _, o, ev in members[:K]
        ]
    return out


def test_layout_is_the_sorted_feature_series() -> None:
    assert LAYOUT == ("age", "amount", "country")


def test_priority_is_splitmix64_of_partition_and_offset() -> None:
    offsets = [0, 1, 2, 10**12, 2**40 + 3]
    for partition in (0, 1, 31):
        got = sample_priority(np.full(len(offsets), partition), offsets).tolist()
        assert got == [_splitmix(partition, o) for o in offsets]


@pytest.mark.parametrize("columnar", [True, False])
def test_the_sample_is_the_bottom_k_per_partition_and_step(columnar: bool) -> None:
    events = _events(400)
    acc = _accumulator(columnar)
    out = acc.add_records(_records(events))
    assert not out.rejections
    partials = acc.flush()
    got = _samples(partials)
    assert got == _expected(events)
    assert all(len(rows) == K for rows in got.values())
    # Each chunk's partial holds at most K rows per step, ordered by priority.
    for p in partials:
        assert isinstance(p.sample, dict)
        for rows in p.sample.values():
            part = int(p.source.split("/")[1])
            pri = [_splitmix(part, r[0]) for r in rows]
            assert len(rows) <= K and pri == sorted(pri)
            assert all(p.offset_start <= r[0] < p.offset_end for r in rows)


def test_columnar_and_per_record_paths_pick_the_same_rows() -> None:
    records = _records(_events(300, partitions=3, seed=1))
    fast, slow = _accumulator(True), _accumulator(False)
    fast.add_records(records)
    slow.add_records(records)
    key = lambda p: (p.source, p.offset_start)  # noqa: E731
    a, b = sorted(fast.flush(), key=key), sorted(slow.flush(), key=key)
    assert [p.sample for p in a] == [p.sample for p in b]
    assert a == b


def test_batch_boundaries_and_a_replay_give_the_same_sample() -> None:
    events = _events(400, seed=2)
    records = _records(events)
    whole = _accumulator()
    whole.add_records(records)
    expected = _samples(whole.flush())
    split = _accumulator()
    partials = []
    for i in range(0, len(records), 37):  # batches cut anywhere, flushed in between
        split.add_records(records[i : i + 37])
        partials += split.flush()
    assert _samples(partials) == expected
    replay = _accumulator()  # a restart replays the records: the same rows are picked
    replay.add_records(records)
    assert _samples(replay.flush()) == expected


def test_no_sampling_sends_no_sample_and_the_old_bytes() -> None:
    acc = _accumulator(k=0)
    acc.add_records(_records(_events(100)))
    partials = acc.flush()
    assert partials and all(p.sample is msgspec.UNSET for p in partials)
    assert all(b'"sample"' not in p.to_bytes() for p in partials)


def test_a_partial_with_a_sample_round_trips_and_an_old_one_decodes_unset() -> None:
    acc = _accumulator()
    acc.add_records(_records(_events(100)))
    for p in acc.flush():
        assert decode_message(p.to_bytes()) == p
        assert decode_message(msgspec.json.decode(p.to_bytes())) == p
    old = b'{"kind":"partial","model":"m","model_version":"","reference_id":"r","source":"ev/0",'
    old += b'"watermark":1.0}'
    decoded = decode_message(old)
    assert isinstance(decoded, Partial) and decoded.sample is msgspec.UNSET


# -- stage 2 -------------------------------------------------------------------------------

POLICY = WindowPolicy(size_seconds=120, step_seconds=60, allowed_lateness_seconds=0)


def _window_partials(events: list[tuple[int, int, dict[str, Any]]]) -> list[Partial]:
    acc = _accumulator()
    partials = []
    records = _records(events)
    for i in range(0, len(records), 50):
        acc.add_records(records[i : i + 50])
        partials += acc.flush()
    return partials


def _close_all(w: VersionWindow, now: float) -> list[np.ndarray]:
    closed = []
    for _ in w.advance(now):
        closed.append(w.current_sample())
    return closed


def test_the_window_keeps_its_steps_rows_once_each() -> None:
    events = _events(400)
    partials = _window_partials(events)
    w = VersionWindow(REF, POLICY, sample_per_step=K)
    now = T0 + 10 * STEP
    for p in partials + partials:  # every partial twice: resent and replayed chunks
        w.merge(p, now)
    for by_source in w.sample_pending.values():  # bounded: K per source per step
        assert all(len(rows) <= K for rows in by_source.values())
    expected = _expected(events)
    steps = sorted({step for _, step in expected})
    # The watermark passes every step but the last: two close (window of two steps).
    windows = _close_all(w, now)
    assert len(windows) == len(steps) - 1
    for i, sample in enumerate(windows):
        in_window = steps[max(0, i - 1) : i + 1]
        want = sorted(
            tuple(r[1:]) for (src, s), rows in expected.items() if s in in_window for r in rows
        )
        assert sample.shape == (len(want), len(LAYOUT))
        assert sorted(map(tuple, sample.tolist())) == want
        assert len(sample) <= K * 2 * len(in_window)  # K x partitions per step


def test_rows_of_a_closed_step_are_late_and_dropped() -> None:
    events = _events(200)
    partials = _window_partials(events)
    w = VersionWindow(REF, POLICY, sample_per_step=K)
    w.last_closed_end = T0 + 3 * STEP  # every step of the events is closed already
    for p in partials:
        w.merge(p, T0 + 10 * STEP)
    assert w.sample_pending == {}


def test_the_state_round_trips_the_rows_and_an_older_state_loads() -> None:
    partials = _window_partials(_events(400))
    w = VersionWindow(REF, POLICY, sample_per_step=K)
    now = T0 + 10 * STEP
    for p in partials:
        w.merge(p, now)
    next(iter(w.advance(now)))  # one step closed, the others pending
    saved = json.loads(json.dumps(w.to_dict()))
    assert "sample_pending" in saved and "sample_steps" in saved
    back = VersionWindow.from_dict(saved, REF, POLICY, sample_per_step=K)
    assert back.sample_pending == w.sample_pending
    assert back.current_sample().tolist() == w.current_sample().tolist()
    assert json.loads(json.dumps(back.to_dict())) == saved
    # A row saved before the sample existed reads with no rows.
    older = {k: v for k, v in saved.items() if not k.startswith("sample_")}
    old = VersionWindow.from_dict(older, REF, POLICY, sample_per_step=K)
    assert old.sample_pending == {} and old.current_sample().shape == (0, len(LAYOUT))
    assert "sample_pending" not in old.to_dict()


@pytest.mark.parametrize(
    ("n", "groups", "k"), [(10_000, 4, 64), (10_000, 40, 64), (3_000, 3, 100), (500, 2, 64)]
)
def test_the_candidate_shortcut_selects_exactly_the_bottom_k(n: int, groups: int, k: int) -> None:
    rng = np.random.default_rng(n + groups)
    g = rng.integers(0, groups, n).astype(np.int64)
    g[: n // 3] = 0  # one group much larger than the others
    offsets = rng.permutation(3 * n)[:n]
    priority = sample_priority(g % 3, offsets)
    want = []
    for group in range(groups):
        rows = np.flatnonzero(g == group).tolist()
        want += sorted(rows, key=lambda i: int(priority[i]))[:k]
    assert select_bottom_k(g, priority, k).tolist() == want


@pytest.mark.parametrize("columnar", [True, False])
def test_a_reference_without_a_row_sample_gets_no_sample(columnar: bool) -> None:
    # No domain classifier to feed: stage 1 spends nothing on it and sends the old bytes.
    unsampled = dataclasses.replace(REF, sample=None)
    acc = _accumulator(columnar, reference=unsampled)
    acc.add_records(_records(_events(300)))
    partials = acc.flush()
    assert partials and all(p.sample is msgspec.UNSET for p in partials)
    with_sample = _accumulator(columnar)
    with_sample.add_records(_records(_events(300)))
    assert any(p.sample is not msgspec.UNSET for p in with_sample.flush())
