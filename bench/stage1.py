"""Stage 1 in process: per-record path, columnar path and a lean loop on the same batches.

``python -m bench.stage1 [--quick] [--json]``

Batches of 10,000 records (4 partitions, contiguous as a Kafka fetch delivers them) are
counted into step histograms three ways, no Kafka involved:

- **per-record**: :class:`~stream_drift.pipeline.ingest.IngestAccumulator` with
  ``columnar=False`` (one :class:`~stream_drift.pipeline.events.Event` per record);
- **columnar**: the accumulator's default path, fed as the worker feeds it
  (:meth:`~stream_drift.pipeline.columnar.RecordBatch.add_partition` per partition, then
  ``prepare`` + ``compute`` + ``apply``), every rule of the per-record path kept;
- **lean**: about twenty lines written here, independently: one msgspec decode of the batch
  as a JSON array into a struct typed from the feature names, one numpy array, then
  ``searchsorted`` + ``bincount`` per series. No validation beyond the types, no dead letters.

Rows: 10 numeric features + prediction; the same with 2 % bad records (malformed, unknown
model, wrong types, ``null``); 30 % categorical features; 50 numeric features.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

import msgspec
import numpy as np

from bench._table import Record, Table, base_parser, emit, median, repeat_ns
from stream_drift.pipeline.columnar import RecordBatch
from stream_drift.pipeline.events import RawRecord
from stream_drift.pipeline.ingest import IngestAccumulator
from stream_drift.pipeline.reference import ReferenceProfile, build_reference
from stream_drift.pipeline.registry import ReferenceRegistry
from stream_drift.stats.binning import NumericBinning

STEP = 60.0
PARTITIONS = 4


@dataclass
class _Message:  # what aiokafka's ConsumerRecord offers the worker
    value: bytes | None
    offset: int
    timestamp: int
    key: bytes | None = None


@dataclass
class Case:
    name: str
    reference: ReferenceProfile
    records: list[RawRecord]


def make_case(
    name: str, n: int, n_features: int, seed: int, *, categorical: float = 0.0, bad: float = 0.0
) -> Case:
    rng = np.random.default_rng(seed)
    names = [f"f{i}" for i in range(n_features)]
    cats = set(names[: round(n_features * categorical)])
    cols: dict[str, Any] = {
        f: ([f"c{k}" for k in rng.integers(0, 20, 5000)] if f in cats else rng.normal(i, 1, 5000))
        for i, f in enumerate(names)
    }
    cols["score"] = rng.random(5000)
    reference = build_reference(cols, model="bench", model_version="1", prediction=["score"])
    t0 = time.time() - 3600
    x = rng.normal(0, 1, (n, n_features)) + np.arange(n_features)
    codes = rng.integers(0, 25, (n, n_features))
    per_partition = n // PARTITIONS
    records = []
    for i in range(n):
        parts = ",".join(
            f'"{f}":"c{codes[i, j]}"' if f in cats else f'"{f}":{x[i, j]:.5f}'
            for j, f in enumerate(names)
        )
        value: bytes | None = (
            f'{{"model":"bench","model_version":"1","event_id":"e{i}","ts":{t0 + i * 0.001:.3f},'
            f'"features":{{{parts}}},"prediction":{rng.random():.5f}}}'
        ).encode()
        if bad and rng.random() < bad:
            assert value is not None
            value = [
                value[:-3],
                b'{"model":"nobody","prediction":1}',
                value.replace(b'"f1":', b'"f1":"x","zz":'),
                None,
            ][int(rng.integers(0, 4))]
        p = min(i // per_partition, PARTITIONS - 1)
        records.append(RawRecord(value, "ev", p, i - p * per_partition, int(t0 * 1000)))
    return Case(name, reference, records)


def _registry(case: Case) -> ReferenceRegistry:
    registry = ReferenceRegistry()
    registry.add(case.reference)
    return registry


def run_per_record(case: Case) -> None:
    acc = IngestAccumulator(_registry(case), step_seconds=STEP, columnar=False)
    acc.add_records(case.records)
    acc.flush()


def _worker_batch(case: Case) -> RecordBatch:
    batch = RecordBatch([], [], [], [], [])
    for p in range(PARTITIONS):
        msgs = [
            _Message(r.value, r.offset, r.timestamp_ms) for r in case.records if r.partition == p
        ]
        batch.add_partition("ev", p, msgs)
    return batch


def run_columnar(case: Case, batch: RecordBatch) -> None:
    acc = IngestAccumulator(_registry(case), step_seconds=STEP)
    acc.prepare()
    acc.apply(acc.compute(batch))
    acc.flush()


def lean_loop(reference: ReferenceProfile) -> Any:
    """The independent lean loop: returns ``run(values) -> counts per series``."""
    features = [n for n in reference.series if n != "prediction"]
    feature_struct = msgspec.defstruct(
        "F",
        [(f, Union[float, str, None], None) for f in features],  # noqa: UP007
    )
    event = msgspec.defstruct(
        "E",
        [
            ("model", str),
            ("ts", float),
            ("features", feature_struct),
            ("prediction", Union[float, None], None),  # noqa: UP007
        ],
    )
    decoder: msgspec.json.Decoder[list[Any]] = msgspec.json.Decoder(list[event])  # type: ignore[valid-type]
    binnings = {n: s.binning for n, s in reference.series.items()}

    def run(values: list[bytes]) -> dict[str, Any]:
        events = decoder.decode(b"[" + b",".join(values) + b"]")
        ts = np.array([e.ts for e in events])
        steps = np.floor(ts / STEP)
        first = steps.min()
        step_idx = (steps - first).astype(np.int64)
        n_steps = int(step_idx.max()) + 1
        out = {}
        for name, binning in binnings.items():
            if name == "prediction":
                col: list[Any] = [e.prediction for e in events]
            else:
                col = [getattr(e.features, name) for e in events]
            if isinstance(binning, NumericBinning):
                idx = np.searchsorted(binning.edges, np.array(col, dtype=np.float64))
            else:
                index = {c: i for i, c in enumerate(binning.categories)}
                idx = np.array([index.get(v, len(index)) for v in col])
            nb = binning.n_bins
            out[name] = np.bincount(step_idx * nb + idx, minlength=n_steps * nb)
        return out

    return run


def measure(case: Case, repeats: int) -> Record:
    n = len(case.records)
    batch = _worker_batch(case)
    per_record = median(repeat_ns(lambda: run_per_record(case), repeats)) / n / 1000
    columnar = median(repeat_ns(lambda: run_columnar(case, batch), repeats)) / n / 1000
    record: Record = {
        "case": case.name,
        "per_record_us": round(per_record, 2),
        "columnar_us": round(columnar, 2),
        "speedup": round(per_record / columnar, 2),
    }
    good = [r.value for r in case.records if r.value is not None]
    if all(v.endswith(b"}") for v in good) and len(good) == n:  # the lean loop has no fallback
        run = lean_loop(case.reference)
        lean = median(repeat_ns(lambda: run(good), repeats)) / n / 1000
        record["lean_us"] = round(lean, 2)
        record["columnar_to_lean"] = round(lean / columnar, 2)
    return record


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser("python -m bench.stage1", __doc__ or "")
    parser.add_argument("--events", type=int, default=10_000, help="records per batch")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats (median)")
    args = parser.parse_args(argv)
    n = 2_000 if args.quick else args.events
    repeats = 2 if args.quick else args.repeats
    cases = [
        make_case("10 numeric + prediction", n, 10, args.seed),
        make_case("  with 2 % bad records", n, 10, args.seed, bad=0.02),
        make_case("30 % categorical", n, 10, args.seed, categorical=0.3),
        make_case("50 numeric", n, 50, args.seed),
    ]
    load_before = os.getloadavg()
    records = [measure(case, repeats) for case in cases]
    load_after = os.getloadavg()
    table = Table(
        f"Stage 1 in process, µs per event (batches of {n:,}, median of {repeats})",
        ["case", "per-record", "columnar", "speed-up", "lean loop", "lean / columnar"],
        ["l", "r", "r", "r", "r", "r"],
        notes=[
            "load average before "
            + " ".join(f"{x:.2f}" for x in load_before)
            + ", after "
            + " ".join(f"{x:.2f}" for x in load_after)
        ],
    )
    for r in records:
        table.add(
            str(r["case"]),
            f"{r['per_record_us']:.2f}",
            f"{r['columnar_us']:.2f}",
            f"{r['speedup']:.1f}x",
            f"{r['lean_us']:.2f}" if "lean_us" in r else "—",
            f"{r['columnar_to_lean']:.2f}" if "columnar_to_lean" in r else "—",
        )
    clean = records[0]
    summary = (
        f"10 numeric features: columnar {clean['columnar_us']} µs/event "
        f"({1e6 / float(clean['columnar_us']):,.0f} ev/s of one core), per-record "
        f"{clean['per_record_us']} µs, lean loop {clean.get('lean_us', '—')} µs"
    )
    emit(
        benchmark="stage1",
        tables=[table],
        records={"cases": records},
        meta={"events": n, "repeats": repeats, "loadavg": round(load_before[0], 2)},
        summary=summary,
        as_json=args.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
