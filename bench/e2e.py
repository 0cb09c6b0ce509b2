"""End-to-end throughput of stage 1: honest ceilings, the worker, and scale rows.

``python -m bench.e2e [--events N] [--repeat R] [--no-scale] [--quick] [--json]``

**Ceilings** (one backlog per run): N events (one per message; 10 numeric features and a
prediction, JSON, ~300 bytes) are produced to a 4-partition topic of the embedded Tansu broker
*before anything consumes*. Then, on that same topic, in this order:

1. **bare fetch** per client, counting records only: aiokafka ``getmany(max_records=10000)``
   and librdkafka ``consume(10000)`` (``fetch.queue.backoff.ms=10``), every partition assigned
   from the beginning, no group, no commits;
2. **lean loop** per client (:mod:`bench.ceilings`, which imports nothing of ``stream_drift``):
   one ``msgspec.json.decode`` per fetched batch into a struct typed from the reference's
   feature names, one numpy array per series, ``searchsorted`` on the reference's bin edges and
   ``bincount``, summed per (partition, step). Checked in the run: every series' counts add up
   to N, and for N ≤ 50,000 they equal ``np.histogram`` of the values as the stdlib ``json``
   module reads them back from the produced records;
3. **the worker** (one ``stream-drift worker`` process, ``ingest.client: librdkafka``), from
   its first to its last fetched stage-1 batch (``/health``), after it accepted all N events
   (``/metrics``); also until the flush that committed its last offsets. Then a worker with
   ``ingest.client: aiokafka`` (the default; its own group and output topics) drains the
   same backlog again. The scale rows run the default client.

Ratios: worker / lean loop on the worker's client, worker / the faster bare fetch, and the
aiokafka worker / the aiokafka lean loop.

**Scale rows** (each its own backlog and broker, see :mod:`bench.scale`): 1 vs 2 worker
processes on 8 partitions (8 models keyed by partition; ratio printed), one hot model spread
over 8 partitions and 2 workers, 50 features, 30 % categorical features, 1,000 models.

Rates are medians of ``--repeat`` runs; a ratio is taken within one run, and its median over
runs is printed. The machine (cores, load average before and after) is printed with the tables:
it is shared and noisy, read the medians and the ratios.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench._table import Align, Record, Table, base_parser, emit
from bench.ceilings import READERS, LeanLoop, count_only
from bench.scale import STEP_SECONDS, Backlog, Drain, Scenario, run_scenario
from stream_drift.stats.binning import NumericBinning

HISTOGRAM_CHECK_MAX = 50_000
"""Up to this many events the lean loop's counts are also checked bin by bin."""
QUICK_EVENTS = 3_000

CEILING = Scenario(
    "ceiling",
    "10 numeric + prediction, 1 worker, 4 partitions",
    events=400_000,
    client="librdkafka",  # then the same backlog again on aiokafka (ceiling_run)
)
SCALE = [
    Scenario(
        "one_worker_8p",
        "1 worker, 8 partitions, 8 models (keyed)",
        events=240_000,
        models=8,
        partitions=8,
        keyed=True,
    ),
    Scenario(
        "two_workers_8p",
        "2 workers, 8 partitions, 8 models (keyed)",
        events=240_000,
        models=8,
        partitions=8,
        workers=2,
        keyed=True,
    ),
    Scenario(
        "hot_model_2w",
        "2 workers, 8 partitions, 1 hot model on all",
        events=240_000,
        partitions=8,
        workers=2,
    ),
    Scenario("features_50", "50 numeric features, 1 worker", events=60_000, features=50),
    Scenario(
        "categorical_30",
        "10 features, 3 categorical (30 %), 1 worker",
        events=160_000,
        categorical_share=0.3,
    ),
    Scenario(
        "models_1000",
        "1,000 models × 10 features, 1 worker",
        events=160_000,
        models=1000,
        keyed=True,
    ),
]
RIGHT: list[Align] = ["r"]
SCALE_RATIO = ("two_workers_8p", "one_worker_8p")
"""The ratio printed under the scale rows (target ≥ 1.7)."""


def lean_edges(backlog: Backlog) -> dict[str, np.ndarray[Any, np.dtype[np.float64]]]:
    """Fine bin edges of every numeric series of the backlog's (first) reference, as plain
    arrays: all the lean loop learns from the product."""
    reference = backlog.references[0]
    edges: dict[str, np.ndarray[Any, np.dtype[np.float64]]] = {}
    for name, series in reference.series.items():
        binning = series.binning
        if isinstance(binning, NumericBinning):
            edges[name] = np.asarray(binning.edges, dtype=np.float64)
    return edges


def check_lean(loop: LeanLoop, values: Sequence[bytes], *, bin_by_bin: bool) -> None:
    """Raise ``RuntimeError`` unless the lean loop binned every event of every series.

    Every series' counts must add up to the events produced; with ``bin_by_bin`` they must
    also equal ``np.histogram`` of the values read back with the stdlib ``json`` module (a
    decoder the loop does not use).
    """
    n = len(values)
    if loop.events != n:
        raise RuntimeError(f"lean loop decoded {loop.events:,} events of {n:,}")
    totals = loop.totals()
    for name, counts in totals.items():
        if int(counts.sum()) != n:
            raise RuntimeError(f"lean loop counted {int(counts.sum()):,} {name} values of {n:,}")
    if not bin_by_bin:
        return
    events = [json.loads(v) for v in values]
    for name, counts in totals.items():
        column = [e["prediction"] if name == "prediction" else e["features"][name] for e in events]
        bounds = np.concatenate(([-np.inf], loop.edges[name], [np.inf]))
        expected, _ = np.histogram(np.asarray(column, dtype=np.float64), bins=bounds)
        if not np.array_equal(expected, counts):
            raise RuntimeError(f"lean loop's {name} counts differ from np.histogram")


def measure_ceilings(backlog: Backlog) -> Record:
    """Bare fetch and lean loop on both clients, over the whole backlog (events/s)."""
    s = backlog.scenario
    n = len(backlog.values)
    out: Record = {}
    for client, read in READERS.items():
        result = read(backlog.bootstrap, backlog.topic, s.partitions, n, count_only)
        if result.records != n:
            raise RuntimeError(f"{client} fetched {result.records:,} records of {n:,}")
        out[f"fetch_{client}_events_per_s"] = round(result.events_per_s)
    edges = lean_edges(backlog)
    for client, read in READERS.items():
        loop = LeanLoop(s.feature_names, edges, STEP_SECONDS)
        result = read(backlog.bootstrap, backlog.topic, s.partitions, n, loop.add)
        check_lean(loop, backlog.values, bin_by_bin=n <= HISTOGRAM_CHECK_MAX)
        out[f"lean_{client}_events_per_s"] = round(result.events_per_s)
    out["lean_checked_bin_by_bin"] = n <= HISTOGRAM_CHECK_MAX
    return out


def ceiling_run(scenario: Scenario, workdir: Path, seed: int, run: int) -> Record:
    """One run of the ceilings and the worker, on each stage-1 client, on one backlog."""
    ceilings: Record = {}

    def before_workers(backlog: Backlog) -> None:
        ceilings.update(measure_ceilings(backlog))

    others = [c for c in READERS if c != scenario.client]
    drained, backlog, other_drains = run_scenario(
        scenario, workdir, seed, run, before_workers, other_clients=others
    )
    drains = {scenario.client: drained, **other_drains}
    for client, d in drains.items():
        if d.stalled:
            raise RuntimeError(f"the worker on {client} stalled: {d.stalled}")
    worker = drained.events_per_s
    fetch = max(float(ceilings[f"fetch_{c}_events_per_s"]) for c in READERS)
    lean = float(ceilings[f"lean_{scenario.client}_events_per_s"])
    per_client: Record = {}
    for client, d in other_drains.items():
        per_client[f"worker_{client}_events_per_s"] = round(d.events_per_s)
        per_client[f"ratio_worker_{client}_to_lean_{client}"] = round(
            d.events_per_s / float(ceilings[f"lean_{client}_events_per_s"]), 3
        )
    return {
        "run": run,
        "events": scenario.events,
        "worker_client": scenario.client,
        "produce_events_per_s": round(backlog.produce_events_per_s),
        **ceilings,
        "worker_stage1_events_per_s": round(worker),
        "worker_committed_events_per_s": round(drained.committed_events_per_s),
        "worker_accepted": drained.accepted,
        "ratio_worker_to_lean": round(worker / lean, 3),
        "ratio_worker_to_fetch": round(worker / fetch, 3),
        **per_client,
    }


def scale_run(scenario: Scenario, workdir: Path, seed: int, run: int) -> Record:
    """One run of a scale scenario: its workers' rates."""
    drained: Drain = run_scenario(scenario, workdir, seed, run)[0]
    return {
        "scenario": scenario.key,
        "run": run,
        "events": scenario.events,
        "workers": scenario.workers,
        "partitions": scenario.partitions,
        "models": scenario.models,
        "features": scenario.features,
        "categorical": scenario.n_categorical,
        "events_per_s": round(drained.events_per_s),
        "committed_events_per_s": round(drained.committed_events_per_s),
        "accepted": drained.accepted,
        "consumed": drained.consumed,
        "start_skew_s": round(drained.start_skew_seconds, 2),
        "partitions_per_worker": "/".join(str(p) for p in drained.partitions_per_worker),
        "stalled": drained.stalled,
    }


def _median(records: Sequence[Mapping[str, Any]], key: str) -> float:
    return float(statistics.median(float(r[key]) for r in records))


def _rate(value: float) -> str:
    return f"{value:,.0f}"


CEILING_ROWS: list[tuple[str, str, Callable[[float], str]]] = [
    ("produce (librdkafka), before anything consumes", "produce_events_per_s", _rate),
    ("bare fetch, aiokafka getmany(10000)", "fetch_aiokafka_events_per_s", _rate),
    ("bare fetch, librdkafka consume(10000)", "fetch_librdkafka_events_per_s", _rate),
    ("lean loop, aiokafka", "lean_aiokafka_events_per_s", _rate),
    ("lean loop, librdkafka", "lean_librdkafka_events_per_s", _rate),
    ("worker (librdkafka), first to last stage-1 batch", "worker_stage1_events_per_s", _rate),
    (
        "worker (librdkafka), to the commit of its last offsets",
        "worker_committed_events_per_s",
        _rate,
    ),
    ("worker on aiokafka (ingest.client), same backlog", "worker_aiokafka_events_per_s", _rate),
    ("worker / lean loop (librdkafka) — target ≥ 0.6", "ratio_worker_to_lean", "{:.2f}".format),
    ("worker / faster bare fetch — target ≥ 0.35", "ratio_worker_to_fetch", "{:.2f}".format),
    (
        "worker on aiokafka / lean loop (aiokafka)",
        "ratio_worker_aiokafka_to_lean_aiokafka",
        "{:.2f}".format,
    ),
]


def ceiling_table(records: Sequence[Record], n: int) -> Table:
    runs = [f"run {int(r['run']) + 1}" for r in records]
    table = Table(
        f"Stage 1 against its ceilings, {n:,} events of 10 numeric features + prediction "
        "(events/s)",
        ["measure", *runs, "median"],
        ["l", *RIGHT * (len(runs) + 1)],
        notes=[
            "One backlog per run on 4 partitions, read by every row in turn. Ratios are taken "
            "within a run;",
            "their median is the median of the per-run ratios. Worker rates: /health "
            "first_batch_at → last_batch_at,",
            "after /metrics showed all events accepted. Lean loop: bench/ceilings.py (no "
            "stream_drift code), its counts",
            "checked against the events produced"
            + (" and bin by bin against np.histogram." if n <= HISTOGRAM_CHECK_MAX else "."),
        ],
    )
    for label, key, fmt in CEILING_ROWS:
        table.add(label, *(fmt(float(r[key])) for r in records), fmt(_median(records, key)))
    return table


def scale_table(records: Sequence[Record], scenarios: Sequence[Scenario]) -> Table:
    repeats = max((int(r["run"]) for r in records), default=0) + 1
    runs = [f"run {i + 1}" for i in range(repeats)]
    table = Table(
        "Scale: a backlog drained by worker processes (events/s, first to last stage-1 batch)",
        ["scenario", "events", *runs, "median", "to last commit", "start skew s", "partitions"],
        ["l", "r", *RIGHT * repeats, "r", "r", "r", "l"],
        notes=[
            "Each row: its own broker and backlog (produced first), all events accepted "
            "(/metrics) before the rate counts.",
            "start skew: time between the workers' first batches; partitions: stage-1 "
            "partitions per worker at the end.",
        ],
    )
    for s in scenarios:
        rows = [r for r in records if r["scenario"] == s.key]
        if not rows:
            continue
        done = [r for r in rows if not r["stalled"]]
        table.add(
            s.label,
            f"{s.events:,}",
            *("stalled" if r["stalled"] else _rate(float(r["events_per_s"])) for r in rows),
            _rate(_median(done, "events_per_s")) if done else "stalled",
            _rate(_median(done, "committed_events_per_s")) if done else "",
            f"{max(float(r['start_skew_s']) for r in rows):.2f}",
            str(rows[-1]["partitions_per_worker"]),
        )
        for r in rows:
            if r["stalled"]:
                table.notes.append(f"{s.label}, run {int(r['run']) + 1}: {r['stalled']}")
    ratios = scale_ratios(records)
    if ratios:
        table.add(
            "ratio 2 workers / 1 worker — target ≥ 1.7",
            "",
            *(f"{x:.2f}" for x in ratios),
            f"{statistics.median(ratios):.2f}",
            "",
            "",
            "",
        )
    return table


def scale_ratios(records: Sequence[Record]) -> list[float]:
    """Per run: events/s of 2 workers divided by 1 worker (8 partitions, same backlog)."""
    two, one = SCALE_RATIO
    by = {
        (str(r["scenario"]), int(r["run"])): float(r["events_per_s"])
        for r in records
        if not r["stalled"]
    }
    runs = sorted({int(r["run"]) for r in records})
    return [by[(two, i)] / by[(one, i)] for i in runs if (two, i) in by and (one, i) in by]


@dataclass(frozen=True)
class Machine:
    """What the figures were measured on."""

    cores: int
    cpu: str
    load_before: tuple[float, float, float]
    python: str

    @staticmethod
    def now() -> Machine:
        cpu = platform.processor() or platform.machine()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        return Machine(os.cpu_count() or 0, cpu, os.getloadavg(), platform.python_version())


def code_digest() -> str:
    """Digest of every ``stream_drift`` source file: tells whether the code changed mid-run."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent.parent / "stream_drift"
    for path in sorted(root.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _load(avg: Sequence[float]) -> str:
    return " ".join(f"{x:.2f}" for x in avg)


def resource_section(quick: bool, seed: int, repeat: int) -> tuple[list[Table], dict[str, Any]]:
    """Tables and records of :func:`bench.resources.resource_rows` (items 5–7 of issue 10:
    memory, step close → alert latency, idle cost), run after the throughput rows."""
    from bench.resources import resource_rows

    sections = resource_rows(quick=quick, seed=seed, runs=repeat)
    return [s.table for s in sections], {s.name: s.records for s in sections}


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser("python -m bench.e2e", __doc__ or "")
    parser.add_argument("--events", type=int, default=CEILING.events, help="events per ceiling run")
    parser.add_argument(
        "--repeat", "--runs", dest="repeat", type=int, default=3, help="runs (medians reported)"
    )
    parser.add_argument("--no-scale", action="store_true", help="skip the scale rows")
    parser.add_argument(
        "--no-resources",
        action="store_true",
        help="skip memory, latency and idle cost (python -m bench.resources runs them alone)",
    )
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    ceiling = CEILING.shrunk(QUICK_EVENTS if args.quick else args.events)
    scenarios = (
        [] if args.no_scale else [s.shrunk(QUICK_EVENTS) if args.quick else s for s in SCALE]
    )
    machine = Machine.now()
    code_before = code_digest()
    started = time.perf_counter()
    ceilings: list[Record] = []
    scale: list[Record] = []
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        for run in range(repeat):
            ceilings.append(ceiling_run(ceiling, Path(tmp), args.seed, run))
            for s in scenarios:
                scale.append(scale_run(s, Path(tmp), args.seed, run))
    extra_tables, extra_records = (
        ([], {}) if args.no_resources else resource_section(args.quick, args.seed, repeat)
    )
    load_after = os.getloadavg()
    code_after = code_digest()
    tables = [ceiling_table(ceilings, ceiling.events)]
    if code_after != code_before:
        tables[0].notes.append(
            f"WARNING: stream_drift's code changed during the run ({code_before} → "
            f"{code_after}): rows measured different code."
        )
    if scale:
        tables.append(scale_table(scale, scenarios))
    tables += extra_tables
    machine_record: Record = {
        "cores": machine.cores,
        "cpu": machine.cpu,
        "python": machine.python,
        "load_before": _load(machine.load_before),
        "load_after": _load(load_after),
        "seconds": round(time.perf_counter() - started, 1),
        "code_before": code_before,
        "code_after": code_after,
    }
    ratios = scale_ratios(scale)
    fetch = max(_median(ceilings, f"fetch_{c}_events_per_s") for c in READERS)
    summary = (
        f"SUMMARY: worker {_median(ceilings, 'worker_stage1_events_per_s'):,.0f} ev/s; "
        f"lean loop (librdkafka) {_median(ceilings, 'lean_librdkafka_events_per_s'):,.0f}; "
        f"worker on aiokafka {_median(ceilings, 'worker_aiokafka_events_per_s'):,.0f}; "
        f"faster bare fetch {fetch:,.0f}; "
        f"worker/lean {_median(ceilings, 'ratio_worker_to_lean'):.2f} (target 0.6), "
        f"worker/fetch {_median(ceilings, 'ratio_worker_to_fetch'):.2f} (target 0.35)"
        + (f"; 2 workers / 1 {statistics.median(ratios):.2f} (target 1.7)" if ratios else "")
    )
    emit(
        benchmark="e2e",
        tables=tables,
        records={
            "ceilings": ceilings,
            **({"scale": scale} if scale else {}),
            "machine": [machine_record],
            **extra_records,
        },
        meta={
            "events": ceiling.events,
            "repeat": repeat,
            "quick": bool(args.quick),
            "cores": machine.cores,
            "cpu": machine.cpu,
            "loadavg_before": _load(machine.load_before),
            "loadavg_after": _load(load_after),
            "code": code_before if code_after == code_before else f"{code_before}→{code_after}",
        },
        summary=summary,
        as_json=args.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
