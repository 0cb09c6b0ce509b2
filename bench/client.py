"""Cost of one ``DriftEmitter.emit`` call in the caller's thread.

``python -m bench.client [--calls N] [--quick] [--json]``

One emitter sends N events (10 numeric features + a prediction, an ``event_id``, ~300 bytes
of JSON) one call at a time, each call timed with ``perf_counter_ns``; the table gives the
median, p99 and maximum per call, and the calls per second of the loop. Targets:

- **embedded broker**: a Tansu broker started by the bench (``EmbeddedBroker``); the
  producer's background thread sends while the loop runs (it shares the GIL, which is part
  of what a service pays). After the loop the emitter is flushed and every event must have
  been acknowledged.
- **no broker**: a free port nobody listens on. The first call waits ``max_block_ms`` for
  metadata; the others are dropped at once during the back-off (``broker_unavailable``),
  so this is the cost of a call while the broker is down.

Also timed: the JSON encoding alone (:func:`~stream_drift.client.encode_event`), the part of
a call that is ours rather than kafka-python's. Numbers depend on the (shared, noisy)
machine; the bound that matters is ``max_block_ms``, tested in ``tests/test_client_kafka.py``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bench._table import Record, Table, base_parser, emit
from stream_drift.client import DriftEmitter, encode_event
from stream_drift.tools.embedded import EmbeddedBroker, find_free_port

FEATURES = [f"f{i}" for i in range(10)]


def make_inputs(n: int, seed: int) -> list[tuple[dict[str, object], float, str]]:
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 1, (n, len(FEATURES))).tolist()
    scores = rng.random(n).tolist()
    return [
        (dict(zip(FEATURES, row, strict=True)), score, f"req-{i}")
        for i, (row, score) in enumerate(zip(values, scores, strict=True))
    ]


def time_calls(
    call: Callable[[dict[str, object], float, str], object],
    inputs: Sequence[tuple[dict[str, object], float, str]],
) -> list[int]:
    """Nanoseconds of each call, in order (the GC stays on: a service runs with it)."""
    clock = time.perf_counter_ns
    out = []
    for features, score, event_id in inputs:
        start = clock()
        call(features, score, event_id)
        out.append(clock() - start)
    return out


def summarize(target: str, samples: list[int], dropped: int, sent: int) -> Record:
    arr = np.asarray(samples, dtype=np.float64) / 1000.0
    return {
        "target": target,
        "calls": len(samples),
        "median_us": round(float(np.median(arr)), 1),
        "p99_us": round(float(np.quantile(arr, 0.99)), 1),
        "max_us": round(float(arr.max()), 1),
        "calls_per_s": round(len(samples) / max(float(arr.sum()) / 1e6, 1e-9)),
        "sent": sent,
        "dropped": dropped,
    }


def run_broker(inputs: Sequence[tuple[dict[str, object], float, str]], workdir: Path) -> Record:
    with EmbeddedBroker(log_path=workdir / "tansu.log") as broker:
        emitter = DriftEmitter(
            broker.bootstrap_servers,
            model="bench",
            model_version="1",
            events_topic="bench.client.events",
            labels_topic="bench.client.labels",
        )
        try:
            if not emitter.wait_for_metadata(timeout=30):
                raise RuntimeError(f"no metadata from the embedded broker\n{broker.log_tail()}")
            emitter.emit(features={"f0": 0.0}, prediction=0.5)  # warm-up
            samples = time_calls(
                lambda f, p, e: emitter.emit(features=f, prediction=p, event_id=e), inputs
            )
            if not emitter.flush(timeout=60):
                raise RuntimeError(f"not all events acknowledged: {emitter.stats()}")
        finally:
            emitter.close(timeout=5)
        stats = emitter.stats()
    return summarize("embedded broker", samples, emitter.dropped_total, int(stats["sent"]) - 1)


def run_no_broker(inputs: Sequence[tuple[dict[str, object], float, str]]) -> Record:
    emitter = DriftEmitter(
        f"127.0.0.1:{find_free_port()}", model="bench", model_version="1", warm_up=False
    )
    try:
        samples = time_calls(
            lambda f, p, e: emitter.emit(features=f, prediction=p, event_id=e), inputs
        )
    finally:
        emitter.close(timeout=1)
    return summarize("no broker (down)", samples, emitter.dropped_total, emitter.sent)


def run_encode(inputs: Sequence[tuple[dict[str, object], float, str]]) -> Record:
    samples = time_calls(lambda f, p, e: encode_event("bench", f, p, event_id=e), inputs)
    return summarize("JSON encoding only", samples, 0, 0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser("python -m bench.client", __doc__ or "")
    parser.add_argument("--calls", type=int, default=20_000, help="emit calls per target")
    args = parser.parse_args(argv)
    n = min(args.calls, 500) if args.quick else args.calls
    inputs = make_inputs(n, args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        records = [run_encode(inputs), run_broker(inputs, Path(tmp)), run_no_broker(inputs)]
    table = Table(
        f"Cost of one emit() call in the caller's thread, {n:,} calls "
        "(10 numeric features + prediction)",
        ["target", "median µs", "p99 µs", "max µs", "calls/s", "sent", "dropped"],
        ["l", "r", "r", "r", "r", "r", "r"],
        notes=[
            "max_block_ms=50: no call may wait longer for the broker; with no broker the",
            "first call waits for metadata, later ones are dropped at once (back-off 1 s).",
        ],
    )
    for r in records:
        table.add(
            str(r["target"]),
            f"{r['median_us']:.1f}",
            f"{r['p99_us']:.1f}",
            f"{r['max_us']:,.1f}",
            f"{r['calls_per_s']:,}",
            f"{r['sent']:,}",
            f"{r['dropped']:,}",
        )
    broker, down = records[1], records[2]
    summary = (
        f"SUMMARY: emit() median {broker['median_us']:.1f} µs, p99 {broker['p99_us']:.1f} µs "
        f"(embedded broker); broker down: median {down['median_us']:.1f} µs, max "
        f"{float(down['max_us']) / 1000:.0f} ms"
    )
    emit(
        benchmark="bench.client",
        tables=[table],
        records={"emit_cost": records},
        meta={"calls": n, "quick": bool(args.quick), "seed": args.seed},
        summary=summary,
        as_json=args.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
