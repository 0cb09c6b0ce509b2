"""End-to-end throughput: one worker process against the embedded broker.

``python -m bench.e2e [--events N] [--quick] [--json]``

N events (one per message; 10 numeric features and a prediction, JSON, ~300 bytes) are
produced to a 4-partition events topic of the embedded Tansu broker *before* the worker starts,
so the worker drains a backlog at full speed. Measured:

- **worker**: records consumed by stage 1 divided by the time from its first to its last
  fetched batch (``/health``: ``first_batch_at``, ``last_batch_at``), and divided by the time
  until the flush that sent the partials of the last batch and committed its offsets;
- **raw ceiling**, in the same run on the same topic: an aiokafka consumer without a group
  (``getmany(max_records=10000)``) feeding the same decode + validate + bin code
  (:class:`~stream_drift.pipeline.ingest.IngestAccumulator`) in this process, no Faust, no sends.

The ratio worker / ceiling is what Faust, the partial sends and the commits cost. Absolute
numbers depend on the (shared, noisy) machine; repeat runs and read the medians.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench._table import Record, Table, base_parser, emit
from stream_drift.app.kafka_io import produce, publish_reference
from stream_drift.app.worker import prepare_topics
from stream_drift.config import Settings
from stream_drift.pipeline.events import RawRecord
from stream_drift.pipeline.ingest import IngestAccumulator
from stream_drift.pipeline.reference import ReferenceProfile, build_reference
from stream_drift.pipeline.registry import ReferenceRegistry
from stream_drift.tools.embedded import EmbeddedBroker, find_free_port
from stream_drift.tools.supervisor import WorkerProcess

FEATURES = [f"f{i}" for i in range(10)]


def make_reference(seed: int) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    cols = {f: rng.normal(i, 1 + i / 10, 20_000) for i, f in enumerate(FEATURES)}
    cols["score"] = rng.random(20_000)
    return build_reference(cols, model="bench", model_version="1", prediction=["score"])


def make_events(n: int, seed: int, t0: float) -> list[bytes]:
    rng = np.random.default_rng(seed + 1)
    values = rng.normal(0, 1, (n, len(FEATURES))) * (1 + np.arange(10) / 10) + np.arange(10)
    scores = rng.random(n)
    out = []
    for i in range(n):
        features = ",".join(f'"{f}":{values[i, j]:.5f}' for j, f in enumerate(FEATURES))
        out.append(
            f'{{"model":"bench","model_version":"1","event_id":"e{i}","ts":{t0 + i * 0.001:.3f},'
            f'"features":{{{features}}},"prediction":{scores[i]:.5f}}}'.encode()
        )
    return out


def bench_settings(bootstrap: str, app_id: str, data_dir: str) -> Settings:
    return Settings().override(
        {
            "app_id": app_id,
            "kafka.bootstrap_servers": bootstrap,
            "kafka.session_timeout_seconds": 6,
            "kafka.heartbeat_interval_seconds": 1,
            "kafka.rebalance_timeout_seconds": 6,
            "topics.events": f"{app_id}.events",
            "topics.partials": f"{app_id}.partials",
            "topics.results": f"{app_id}.results",
            "topics.alerts": f"{app_id}.alerts",
            "topics.deadletter": f"{app_id}.deadletter",
            "topics.references": f"{app_id}.references",
            "topics.labels": f"{app_id}.labels",
            "window.size_seconds": 60,
            "window.step_seconds": 60,
            "window.idle_timeout_seconds": 2,
            "web.port": find_free_port(),
            "worker.data_dir": data_dir,
        }
    )


async def raw_ceiling(bootstrap: str, topic: str, n: int, reference: ReferenceProfile) -> float:
    """Events/s of fetch + decode + validate + bin with no Faust (one pass over the topic)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    registry = ReferenceRegistry()
    registry.add(reference)
    acc = IngestAccumulator(registry, step_seconds=60)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(4)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        start = None
        while seen < n:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            if start is None and batch:
                start = time.perf_counter()
            records = [
                RawRecord(m.value, tp.topic, tp.partition, m.offset, m.timestamp)
                for tp, msgs in batch.items()
                for m in msgs
            ]
            acc.add_records(records)
            seen += len(records)
        acc.flush()
        assert start is not None
        return n / (time.perf_counter() - start)
    finally:
        await consumer.stop()


def run_once(n: int, seed: int, workdir: Path, run: int) -> Record:
    with EmbeddedBroker(log_path=workdir / f"broker{run}.log") as broker:
        bootstrap = broker.bootstrap_servers
        settings = bench_settings(bootstrap, f"bench{run}", str(workdir / f"data{run}"))
        prepare_topics(settings)
        reference = make_reference(seed)
        asyncio.run(publish_reference(bootstrap, settings.topics.references, reference))
        events = make_events(n, seed, t0=time.time() - 3600)
        t = time.perf_counter()
        asyncio.run(produce(bootstrap, settings.topics.events, events))
        produce_rate = n / (time.perf_counter() - t)
        ceiling = asyncio.run(raw_ceiling(bootstrap, settings.topics.events, n, reference))
        worker = WorkerProcess(settings, workdir, f"worker{run}").start()
        try:
            worker.wait_ready(120)
            deadline = time.monotonic() + 300
            health = worker.health()
            while int(health.get("records_consumed", 0)) < n:
                if time.monotonic() > deadline or not worker.is_running():
                    raise RuntimeError(f"worker stalled: {health}\n{worker.log_tail()}")
                time.sleep(0.2)
                health = worker.health()
            stage1 = n / max(float(health["last_batch_at"]) - float(health["first_batch_at"]), 1e-3)
            first = float(health["first_batch_at"])
            committed_at = _wait_committed(worker, deadline)
        finally:
            worker.stop()
    return {
        "run": run,
        "events": n,
        "produce_events_per_s": round(produce_rate),
        "raw_ceiling_events_per_s": round(ceiling),
        "worker_stage1_events_per_s": round(stage1),
        "worker_committed_events_per_s": round(n / max(committed_at - first, 1e-3)),
        "ratio_stage1_to_ceiling": round(stage1 / ceiling, 3),
    }


def _wait_committed(worker: WorkerProcess, deadline: float) -> float:
    """Wall time of the flush that committed the last consumed offsets."""
    consumed_until = float(worker.health()["last_batch_at"])
    while time.monotonic() < deadline:
        health = worker.health()
        flushed = float(health.get("last_flush_at", 0.0))
        if health.get("last_commit_ok") and flushed >= consumed_until:
            return flushed
        time.sleep(0.1)
    raise RuntimeError("stage 1 did not commit in time")


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser("python -m bench.e2e", __doc__ or "")
    parser.add_argument("--events", type=int, default=200_000, help="events per run")
    parser.add_argument("--runs", type=int, default=3, help="repeats (medians reported)")
    args = parser.parse_args(argv)
    n = 20_000 if args.quick else args.events
    runs = 1 if args.quick else args.runs
    records: list[Record] = []
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        for run in range(runs):
            records.append(run_once(n, args.seed, Path(tmp), run))
    table = Table(
        f"End-to-end throughput, {n:,} events of 10 numeric features + prediction",
        [
            "run",
            "produce ev/s",
            "raw ceiling ev/s",
            "worker stage 1 ev/s",
            "worker, to last commit ev/s",
            "stage 1 / ceiling",
        ],
        ["r", "r", "r", "r", "r", "r"],
    )
    for r in records:
        table.add(
            str(r["run"]),
            f"{r['produce_events_per_s']:,}",
            f"{r['raw_ceiling_events_per_s']:,}",
            f"{r['worker_stage1_events_per_s']:,}",
            f"{r['worker_committed_events_per_s']:,}",
            f"{r['ratio_stage1_to_ceiling']:.2f}",
        )

    def med(key: str) -> float:
        return float(statistics.median(float(r[key]) for r in records))

    summary = (
        f"median: worker stage 1 {med('worker_stage1_events_per_s'):,.0f} ev/s, raw ceiling "
        f"{med('raw_ceiling_events_per_s'):,.0f} ev/s, ratio "
        f"{med('ratio_stage1_to_ceiling'):.2f}"
    )
    emit(
        benchmark="e2e",
        tables=[table],
        records={"runs": records},
        meta={"events": n, "runs": runs},
        summary=summary,
        as_json=args.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
