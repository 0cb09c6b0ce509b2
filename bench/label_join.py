"""The delayed-label join over a long run: exact outcome counts and bounded state.

``python -m bench.label_join [--quick] [--json]`` (``bench.concept`` prints it too)

One partition of a stream, in arrival order: a prediction every 1/``RATE`` s of event time;
80 % of them get a label after an exponential delay (mean 2 min), of which a share arrives after
the TTL (10 min); 5 % of the labels are sent twice; 3 % extra labels name predictions nobody
made. Records are fed to :class:`~stream_drift.pipeline.labels.LabelJoin` (the worker's code)
in arrival order, consecutive records of one topic in one call. Expected outcomes are counted
independently from the generated delays: a label joins when its delay is within the TTL, a
later one is an ``orphan_label`` and its prediction ``expired``. The table prints, at
checkpoints, the entries held, the memory traced by ``tracemalloc`` and the process's resident
memory: the state stays bounded by (prediction rate × TTL) however long the run.
"""

from __future__ import annotations

import os
import resource
import time
import tracemalloc
from collections import Counter
from collections.abc import Sequence

import numpy as np

from bench._table import Record, Table, base_parser, emit
from stream_drift.pipeline.events import Label
from stream_drift.pipeline.labels import LabelJoin, PredictionRecord

RATE = 100.0
"""Predictions per second of event time."""
TTL = 600.0
MEAN_DELAY = 120.0
LABELLED = 0.8
DUPLICATED = 0.05
GHOSTS = 0.03


class Settings:
    """Sizes of one run (full or ``--quick``)."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        # Quick: twice the TTL of event time; full: ten times (the state's steady level).
        self.predictions = 120_000 if quick else 600_000
        self.checkpoints = 4 if quick else 6


def _rss_mb() -> float:
    """Resident memory of this process now (Linux ``/proc``), MB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 1e6


def rows(cfg: Settings, seed: int = 5) -> list[Record]:
    """Feed the stream, print checkpoints; the last record holds the outcome check."""
    rng = np.random.default_rng(seed)
    n = cfg.predictions
    ts = np.arange(n) / RATE
    labelled = rng.random(n) < LABELLED
    delay = rng.exponential(MEAN_DELAY, n)
    dup = labelled & (rng.random(n) < DUPLICATED)
    n_ghosts = int(GHOSTS * n)
    ghost_ts = rng.uniform(0, ts[-1], n_ghosts)
    # Arrivals: (arrival time, kind, index); kinds: 0 prediction, 1 label, 2 its duplicate,
    # 3 a ghost label.
    arrivals = [(float(t), 0, i) for i, t in enumerate(ts)]
    arrivals += [(float(ts[i] + delay[i]), 1, int(i)) for i in np.flatnonzero(labelled)]
    arrivals += [(float(ts[i] + delay[i] + 0.5), 2, int(i)) for i in np.flatnonzero(dup)]
    arrivals += [(float(t), 3, k) for k, t in enumerate(ghost_ts)]
    arrivals.sort()
    joined_by_delay = labelled & (delay <= TTL)
    expected = Counter(
        joined=int(joined_by_delay.sum()),
        expired=int(n - joined_by_delay.sum()),
        orphan_label=int((labelled & (delay > TTL)).sum()) + n_ghosts,
        duplicate=int(dup.sum()),
    )

    join = LabelJoin(ttl_seconds=TTL, max_pending=10_000_000)
    got: Counter[str] = Counter()
    tracemalloc.start()
    base_traced = tracemalloc.get_traced_memory()[0]
    out: list[Record] = []
    marks = {int(len(arrivals) * (k + 1) / cfg.checkpoints) for k in range(cfg.checkpoints)}
    started = time.perf_counter()
    preds: list[PredictionRecord] = []
    labels: list[Label] = []

    def feed() -> None:
        # Consecutive records of one topic go in one call, as a fetch delivers them; the join
        # sees them in arrival order, so its event-time expiry matches the expectation.
        for step in (join.add_predictions(0, preds), join.add_labels(0, labels)):
            got.update({outcome: c for (_, outcome), c in step.outcomes.items()})
        join.take_changes()  # what the worker sends to the changelog
        preds.clear()
        labels.clear()

    for done, (at, kind, i) in enumerate(arrivals, 1):
        if (kind == 0 and labels) or (kind != 0 and preds):
            feed()
        if kind == 0:
            preds.append(PredictionRecord("m", "1", f"e{i}", at, float(i % 2)))
        elif kind == 3:
            labels.append(Label("m", f"ghost{i}", 1, at))
        else:
            labels.append(Label("m", f"e{i}", 1, at))
        if done in marks:
            traced = tracemalloc.get_traced_memory()[0] - base_traced
            out.append(
                {
                    "event_time_s": round(at, 1),
                    "records": done,
                    "entries": join.size,
                    "traced_mb": traced / 1e6,
                    "rss_mb": _rss_mb(),
                    "us_per_record": 1e6 * (time.perf_counter() - started) / done,
                }
            )
    feed()
    # The end of the stream: event time moves past every TTL, everything waiting is counted.
    final = join.expire(0, float(arrivals[-1][0]) + 10 * TTL)
    got.update({outcome: c for (_, outcome), c in final.outcomes.items()})
    tracemalloc.stop()
    for outcome in ("joined", "expired", "orphan_label", "duplicate"):
        out.append({"outcome": outcome, "expected": expected[outcome], "counted": got[outcome]})
    return out


def table(records: Sequence[Record]) -> Table:
    t = Table(
        f"(d) Delayed-label join over a long run: state and exact counts "
        f"(load {', '.join(f'{x:.2f}' for x in os.getloadavg())})",
        ["event time", "records fed", "entries held", "traced MB", "RSS MB", "µs/record"],
        ["r", "r", "r", "r", "r", "r"],
        notes=[
            f"{RATE:g} predictions/s of event time, TTL {TTL:g} s, {LABELLED:.0%} labelled "
            f"after an exponential delay (mean {MEAN_DELAY:g} s), {DUPLICATED:.0%} of labels "
            f"sent twice, {GHOSTS:.0%} labels without a prediction. Entries held stay near "
            f"rate × TTL (+ remembered joins) however long the stream runs.",
            "Outcomes, counted by the join vs expected from the generated delays: "
            + "; ".join(
                f"{r['outcome']} {int(r['counted']):,} / {int(r['expected']):,}"
                for r in records
                if "outcome" in r
            )
            + ".",
        ],
    )
    for r in records:
        if "outcome" in r:
            continue
        t.add(
            f"{float(r['event_time_s']):,.0f} s",
            f"{int(r['records']):,}",
            f"{int(r['entries']):,}",
            f"{float(r['traced_mb']):.1f}",
            f"{float(r['rss_mb']):.1f}",
            f"{float(r['us_per_record']):.1f}",
        )
    return t


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser("python -m bench.label_join", "Label join: exact counts, bounded state.")
    args = parser.parse_args(argv)
    cfg = Settings(args.quick)
    records = rows(cfg, args.seed)
    emit(
        benchmark="bench.label_join",
        tables=[table(records)],
        records={"label_join": records},
        meta={"quick": cfg.quick, "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg())},
        summary="SUMMARY: "
        + ", ".join(
            f"{r['outcome']} {'exact' if r['counted'] == r['expected'] else 'WRONG'}"
            for r in records
            if "outcome" in r
        ),
        as_json=args.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
