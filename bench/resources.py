"""Resources of one worker process: memory, step-close → alert latency, idle cost.

``python -m bench.resources [--quick] [--json] [--runs N] [--backlog N]``

Issue 10, items 5–7. Each run starts the embedded broker and one real worker
(:class:`~stream_drift.tools.supervisor.WorkerProcess`) and takes it through three phases;
the state size is measured apart, in-process. What is measured, exactly:

**Process figures** come from ``/proc``, for the worker's PID plus every live descendant
(there are none today; a stage 1 run in a child process would be counted): resident memory
is ``VmRSS`` of ``/proc/<pid>/status``; CPU time is ``utime + stime`` of ``/proc/<pid>/stat``
plus ``cutime + cstime`` (children already reaped), in clock ticks. CPU % is CPU time over
wall time, in % of one core. A sampler thread reads both every 0.1 s.

1. **Idle cost.** The worker started, both consumer groups joined, the references loaded, no
   event ever produced; after a settling pause, CPU % over ``idle_seconds`` (≥ 20 s in a full
   run). Its 1-s tick timer and the consumers' polls are all it does. Target < 2 %.
2. **Memory as the event rate grows.** The same worker then gets events of a 10-feature model
   at a few paced rates (events stamped with the time they are sent), each for
   ``phase_seconds``, then a backlog drained at full speed (phase 3). Per phase: the
   worker's events/s (``records_consumed`` of ``/health``), the median and the largest RSS.
   Growth = largest RSS of the drain minus that of the slowest paced phase; the slope is a
   least-squares fit of median RSS over events/s. Flat memory means both ≈ 0.
3. **Latency, step close → alert, during a full-speed drain.** A separate process produces a
   backlog of ``backlog`` bulk events (librdkafka, far faster than the worker drains) to
   partitions 0–2 of the events topic. Meanwhile this process streams a second, *drifted*
   model live to partition 3 at ``live_rate`` events/s, each event stamped ``ts`` = the wall
   time it is handed to the producer; its features alternate every 1-s step between the
   reference distribution and a 3σ shift, and the alert policy fires and resolves after one
   window (``fire_after = resolve_after = 1``, no cooldown), so every step close of that model
   yields alerts (tumbling 1-s windows, ``allowed_lateness_seconds = 0``).

   The model's only source is partition 3 (the other partitions never carry it and stop
   holding its watermark after ``idle_timeout_seconds``), so the step ``[s, e)`` can close as
   soon as the first event with ``ts ≥ e + allowed_lateness`` exists. **Latency** of an alert
   = the wall time this process *received* the alert record from ``drift.alerts`` (a consumer
   without a group, ``fetch_max_wait_ms = 20``) minus the ``ts`` of that closing event. Both
   clocks are this machine's. The figure is conservative: it includes the producer's linger
   (20 ms) and round trip, stage 1's fetch and batch (a partial whose watermark passes a
   step's end is sent without waiting for the flush interval), the ``drift.partials`` hop,
   stage 2's evaluation, the alert send and our consumer's fetch. Only alerts whose step could close
   while the backlog was being drained count (from the start of the backlog to the moment the
   worker had consumed all of it). The alert's ``evaluated_at`` (the worker's clock) splits
   the figure into close → evaluated and evaluated → received.

   The drifted model streams on its own partition on purpose: on a shared partition its
   closing event would wait behind the backlog (Kafka's per-partition order), which is the
   throughput's queueing delay, not the time from a step that *could* close to its alert.
4. **State size** (apart, no Kafka): in a fresh process per size, references for
   ``series`` numeric series of 100 fine bins (10 per model) are loaded and one warm-up model
   evaluated; then stage 2's evaluators (:class:`~stream_drift.pipeline.evaluator.
   ModelEvaluator`) are fed partials from 4 source partitions until each window holds
   ``steps`` closed steps plus one open step, every bin non-empty; then the table rows a worker
   keeps beside them (``ModelEvaluator.to_dict``, the Faust table's in-memory value) are built.
   Reported: the RSS growth over the warm baseline, and tracemalloc's exact bytes (another
   fresh process), with growth per series and per step from the difference of two sizes.
   Target ≤ 100 MB for 1,000 series × 100 bins × 12 steps.

Absolute figures depend on the shared, noisy 2-core machine: read the medians of several runs
and the load average printed with every table.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import math
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench._table import Record, Table, base_parser, emit
from stream_drift.app.kafka_io import open_topic, produce, publish_reference
from stream_drift.app.worker import prepare_topics
from stream_drift.config import Settings
from stream_drift.config.policies import AlertPolicy, DecisionPolicy, WindowPolicy
from stream_drift.pipeline.alert_record import Alert, decode_alert
from stream_drift.pipeline.evaluator import ModelEvaluator
from stream_drift.pipeline.partials import Partial, decode_message
from stream_drift.pipeline.reference import ReferenceProfile, build_reference
from stream_drift.pipeline.registry import ReferenceRegistry
from stream_drift.stats.histogram import Histogram
from stream_drift.tools.embedded import EmbeddedBroker
from stream_drift.tools.supervisor import WorkerProcess

MB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")
BULK_FEATURES = [f"f{i}" for i in range(10)]
LIVE_FEATURES = ["a", "b", "c", "d"]
LIVE_PARTITION = 3
BACKLOG_PARTITIONS = (0, 1, 2)
SHIFT_SIGMAS = 3.0


@dataclass
class Config:
    """Sizes of one invocation (full run by default, ``--quick`` shrinks them)."""

    quick: bool
    settle_seconds: float = 5.0
    idle_seconds: float = 30.0
    rates: tuple[int, ...] = (2_000, 10_000, 30_000)
    phase_seconds: float = 10.0
    backlog: int = 1_500_000
    live_rate: float = 250.0
    min_live_seconds: float = 0.0
    grace_seconds: float = 3.0
    state_sizes: tuple[tuple[int, int], ...] = ((1_000, 12), (500, 12), (1_000, 6))
    flush_interval: float | None = None
    """``ingest.flush_interval_seconds`` of the worker (``None``: the default)."""

    def __post_init__(self) -> None:
        if self.quick:
            self.settle_seconds = 1.0
            self.idle_seconds = 2.0
            self.rates = (1_000, 3_000)
            self.phase_seconds = 1.5
            self.backlog = 30_000
            self.min_live_seconds = 5.0
            self.grace_seconds = 2.0
            self.state_sizes = ((100, 3), (50, 3), (100, 2))


@dataclass
class Section:
    """One printed table and its machine-readable records (the key names it in ``--json``)."""

    name: str
    table: Table
    records: list[Record] = field(default_factory=list)


# -- /proc ------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    """Fields of ``/proc/<pid>/stat`` after the command name (field 3, ``state``, first)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """Live descendants of ``pid`` (children, grandchildren …), from every ``/proc/*/stat``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry.name))[1])
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        out.append(child)
        todo.extend(children.get(child, []))
    return out


def cpu_seconds(pid: int, family: Sequence[int] = ()) -> float:
    """CPU time of ``pid`` (user + system, with its reaped children) and of ``family``.

    Examples
    --------
    >>> cpu_seconds(os.getpid()) > 0
    True
    """
    f = _stat_fields(pid)
    ticks = sum(int(x) for x in f[11:15])  # utime, stime, cutime, cstime
    for child in family:
        # A child that exited meanwhile: its time moves to our cutime once reaped.
        with contextlib.suppress(OSError):
            ticks += sum(int(x) for x in _stat_fields(child)[11:15])
    return ticks / CLK_TCK


def rss_bytes(pid: int, family: Sequence[int] = ()) -> int:
    """Resident memory (``VmRSS``) of ``pid`` plus that of ``family``.

    Examples
    --------
    >>> rss_bytes(os.getpid()) > 1_000_000
    True
    """
    total = 0
    for p in (pid, *family):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def context_switches(pid: int) -> int:
    """Voluntary + involuntary context switches of every thread of ``pid`` so far: how often
    its threads went to sleep and woke up (an idle event loop's cost is its wake-ups)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
    return total


class Sampler:
    """Samples a process's RSS and CPU time every ``interval`` seconds in a thread."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int, float]] = []
        """(wall time, RSS bytes, CPU seconds)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._family: list[int] = []

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> tuple[float, int, float]:
        """One reading now (also stored)."""
        now = time.time()
        reading = (
            now,
            rss_bytes(self.pid, self._family),
            cpu_seconds(self.pid, self._family),
        )
        self.samples.append(reading)
        return reading

    def _run(self) -> None:
        beat = 0
        while not self._stop.wait(self.interval):
            if beat % 20 == 0:  # a child started later is found within 2 s
                self._family = descendants(self.pid)
            beat += 1
            try:
                self.sample()
            except OSError:
                return  # the process is gone

    def between(self, start: float, end: float) -> list[tuple[float, int, float]]:
        return [s for s in self.samples if start <= s[0] <= end]


# -- events and settings ------------------------------------------------------------------------


def bulk_reference(seed: int) -> ReferenceProfile:
    """The 10-feature + prediction model whose events make up the load."""
    rng = np.random.default_rng(seed)
    cols = {f: rng.normal(i, 1 + i / 10, 20_000) for i, f in enumerate(BULK_FEATURES)}
    cols["score"] = rng.random(20_000)
    return build_reference(cols, model="bulk", model_version="1", prediction=["score"])


def live_reference(seed: int) -> ReferenceProfile:
    """The drifted model of the latency measurement (4 features, N(0, 1))."""
    rng = np.random.default_rng(seed + 7)
    cols = {f: rng.normal(0, 1, 20_000) for f in LIVE_FEATURES}
    return build_reference(cols, model="live", model_version="1")


def bulk_bodies(n: int, seed: int) -> list[bytes]:
    """``n`` distinct event tails (features + prediction), to be prefixed with a ``ts``."""
    rng = np.random.default_rng(seed + 1)
    values = rng.normal(0, 1, (n, len(BULK_FEATURES))) * (1 + np.arange(10) / 10)
    values += np.arange(10)
    scores = rng.random(n)
    out = []
    for row, score in zip(values, scores, strict=True):
        feats = ",".join(f'"{f}":{v:.5f}' for f, v in zip(BULK_FEATURES, row, strict=True))
        out.append(f',"features":{{{feats}}},"prediction":{score:.5f}}}'.encode())
    return out


BULK_HEAD = b'{"model":"bulk","model_version":"1","ts":'


def resource_settings(bootstrap: str, app_id: str, data_dir: str) -> Settings:
    """A bench worker (:func:`bench.scale.worker_settings`, 4 events partitions) that shows
    within seconds what this benchmark looks at: 1-s tumbling windows closed on time (no
    lateness) and an alert on every state change."""
    from bench.scale import worker_settings

    overrides: dict[str, Any] = {
        "window.size_seconds": 1,
        "window.step_seconds": 1,
        "window.allowed_lateness_seconds": 0.0,
        "window.idle_timeout_seconds": 2.0,
        "alerts.fire_after": 1,
        "alerts.resolve_after": 1,
        "alerts.cooldown_seconds": 0.0,
    }
    return worker_settings(bootstrap, app_id, data_dir, 4, extra=overrides)


def _produce_backlog(bootstrap: str, topic: str, n: int, seed: int) -> float:
    """Child process: ``n`` bulk events to partitions 0–2 with librdkafka; returns its ev/s."""
    from confluent_kafka import Producer

    bodies = bulk_bodies(5_000, seed)
    t0 = time.time()
    heads = [BULK_HEAD + f"{t0 + i * 1e-4:.4f}".encode() for i in range(len(bodies))]
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "queue.buffering.max.messages": 500_000,
        }
    )
    start = time.perf_counter()
    for i in range(n):
        k = i % len(bodies)
        while True:
            try:
                producer.produce(topic, heads[k] + bodies[k], partition=BACKLOG_PARTITIONS[i % 3])
                break
            except BufferError:
                producer.poll(0.01)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(60) != 0:
        raise RuntimeError("backlog not delivered")
    return n / (time.perf_counter() - start)


# -- the worker run ---------------------------------------------------------------------------


@dataclass
class LiveStream:
    """The drifted model's events, sent live: the ``ts`` of each, in send order."""

    seed: int
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    sent: list[float] = field(default_factory=list)

    def events(self) -> Iterator[bytes]:
        rng = np.random.default_rng(self.seed + 11)
        while not self.stop.is_set():
            ts = time.time()
            shift = SHIFT_SIGMAS if int(ts) % 2 == 0 else 0.0
            feats = ",".join(f'"{f}":{rng.normal(shift, 1):.5f}' for f in LIVE_FEATURES)
            self.sent.append(ts)
            yield (
                f'{{"model":"live","model_version":"1","ts":{ts:.6f},"features":{{{feats}}}}}'
            ).encode()


@dataclass
class Received:
    alert: Alert
    received_at: float


def paced_bulk(rate: float, seconds: float, seed: int) -> Iterator[bytes]:
    """Bulk events for ``seconds``, each stamped when it is produced (``produce`` paces them)."""
    bodies = bulk_bodies(2_000, seed)
    end = time.time() + seconds
    i = 0
    while (now := time.time()) < end:
        yield BULK_HEAD + f"{now:.4f}".encode() + bodies[i % len(bodies)]
        i += 1


async def _live_producer(bootstrap: str, topic: str, live: LiveStream, rate: float) -> int:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    start = time.monotonic()
    try:
        pending = []
        for n, value in enumerate(live.events(), 1):
            pending.append(await producer.send(topic, value, partition=LIVE_PARTITION))
            ahead = n / rate - (time.monotonic() - start)
            await asyncio.sleep(max(ahead, 0.0))
            if len(pending) >= 200:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return len(live.sent)


async def _follow(
    bootstrap: str, topic: str, stop: asyncio.Event, keep: Callable[[bytes, float], None]
) -> None:
    """Hand every new record's value of ``topic`` and its receive time to ``keep``."""
    consumer = await open_topic(bootstrap, topic, fetch_max_wait_ms=20)
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=50)
            now = time.time()
            for records in batch.values():
                for record in records:
                    keep(record.value, now)
    finally:
        await consumer.stop()


async def _collect(
    bootstrap: str, settings: Settings, stop: asyncio.Event
) -> tuple[list[Received], list[tuple[float, float]]]:
    """The alerts on ``drift.alerts`` and the drifted model's partials on ``drift.partials``
    as (watermark, receive time), from now until ``stop``."""
    alerts: list[Received] = []
    partials: list[tuple[float, float]] = []

    def alert(value: bytes, now: float) -> None:
        decoded = decode_alert(value)
        if isinstance(decoded, Alert):
            alerts.append(Received(decoded, now))

    def partial(value: bytes, now: float) -> None:
        if b'"live"' in value:  # the drifted model's (the others need no decoding)
            message = decode_message(value)
            if isinstance(message, Partial) and message.model == "live":
                partials.append((message.watermark, now))

    await asyncio.gather(
        _follow(bootstrap, settings.topics.alerts, stop, alert),
        _follow(bootstrap, settings.topics.partials, stop, partial),
    )
    return alerts, partials


def _consumed(worker: WorkerProcess) -> int:
    return int(worker.health().get("records_consumed", 0) or 0)


async def _wait_consumed(worker: WorkerProcess, target: int, timeout: float) -> float:
    """Wall time at which the worker had consumed ``target`` records (polled every 0.1 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(_consumed, worker) >= target:
            return time.time()
        if not worker.is_running():
            raise RuntimeError(f"worker died:\n{worker.log_tail()}")
        await asyncio.sleep(0.1)
    raise RuntimeError(f"worker consumed fewer than {target} records:\n{worker.log_tail()}")


def _parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class Phase:
    name: str
    start: float
    end: float
    consumed: int
    target_rate: float = 0.0


async def _run_phases(
    cfg: Config, worker: WorkerProcess, settings: Settings, sampler: Sampler, seed: int
) -> tuple[list[Phase], dict[str, Any]]:
    bootstrap = settings.kafka.bootstrap_servers
    events = settings.topics.events
    phases: list[Phase] = []
    # 1. idle: nothing was ever produced.
    await asyncio.sleep(cfg.settle_seconds)
    switches = context_switches(sampler.pid)
    start = time.time()
    await asyncio.sleep(cfg.idle_seconds)
    phases.append(Phase("idle", start, time.time(), 0))
    idle_switches = context_switches(sampler.pid) - switches
    # 2. paced rates, events stamped with their send time.
    consumed = await asyncio.to_thread(_consumed, worker)
    for rate in cfg.rates:
        start = time.time()
        values = paced_bulk(rate, cfg.phase_seconds, seed)
        sent = await produce(bootstrap, events, values, rate=rate)
        consumed_at = await _wait_consumed(worker, consumed + sent, 120)
        phases.append(Phase(f"{rate:,} ev/s paced", start, consumed_at, sent, rate))
        consumed += sent
    # 3. a backlog drained at full speed, with the drifted model streaming live beside it.
    live = LiveStream(seed)
    stop_alerts = asyncio.Event()
    collect = asyncio.create_task(_collect(bootstrap, settings, stop_alerts))
    live_task = asyncio.create_task(_live_producer(bootstrap, events, live, cfg.live_rate))
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        # The live model's first steps wait for its unheard partitions (idle_timeout_seconds):
        # that start-up hold is over before the backlog starts.
        await asyncio.sleep(settings.window.idle_timeout_seconds + 1.0)
        backlog_start = time.time()
        future = pool.submit(_produce_backlog, bootstrap, events, cfg.backlog, seed)
        backlog_rate = await asyncio.wrap_future(future)
    # Drained: the worker consumed the backlog and the live events sent until a second ago
    # (those sent since may still be on their way).
    while True:
        now = time.time()
        target = consumed + cfg.backlog + bisect.bisect_left(live.sent, now - 1.0)
        if await asyncio.to_thread(_consumed, worker) >= target:
            drained_at = now
            break
        if not worker.is_running() or now - backlog_start > 600:
            raise RuntimeError(f"backlog not drained:\n{worker.log_tail()}")
        await asyncio.sleep(0.1)
    remaining = cfg.min_live_seconds - (time.time() - backlog_start)
    if remaining > 0:
        await asyncio.sleep(remaining)
    live.stop.set()
    n_live = await live_task
    await asyncio.sleep(cfg.grace_seconds)
    stop_alerts.set()
    received, partials = await collect
    phases.append(Phase("backlog drain, full speed", backlog_start, drained_at, cfg.backlog))
    latency = _latencies(received, live.sent, partials, settings, backlog_start, drained_at)
    latency.update(
        backlog_produce_events_per_s=round(backlog_rate),
        live_events=n_live,
        drain_seconds=round(drained_at - backlog_start, 2),
        idle_wakeups_per_s=round(idle_switches / (phases[0].end - phases[0].start), 1),
    )
    return phases, latency


def _latencies(
    received: list[Received],
    sent: list[float],
    partials: list[tuple[float, float]],
    settings: Settings,
    drain_start: float,
    drain_end: float,
) -> dict[str, Any]:
    """Latency of every alert of the drifted model (see the module docstring).

    Each alert gives ``(received, evaluated, partial)``, seconds after its step could close:
    when it was received, when stage 2 evaluated the window, and when the first partial
    whose watermark passed the step's end was received from ``drift.partials`` (``nan``
    when that partial was not seen).
    """
    lateness = settings.window.allowed_lateness_seconds
    during: list[tuple[float, float, float]] = []
    after: list[tuple[float, float, float]] = []
    unexplained = 0
    for r in received:
        if r.alert.model != "live":
            continue
        end = _parse_time(r.alert.window.end)
        i = bisect.bisect_left(sent, end + lateness)
        if i == len(sent):
            unexplained += 1  # closed on processing time (no event past its end was sent)
            continue
        closable = sent[i]
        seen = [t for mark, t in partials if mark >= end + lateness and t >= closable]
        times = (
            r.received_at - closable,
            _parse_time(r.alert.evaluated_at) - closable,
            min(seen) - closable if seen else math.nan,
        )
        (during if drain_start <= closable <= drain_end else after).append(times)
    return {"during": during, "after": after, "unexplained": unexplained}


def worker_run(cfg: Config, seed: int, workdir: Path, run: int) -> tuple[Record, list[Record]]:
    """One broker, one worker: idle, paced rates, the drain with the live model.

    Returns the run's record (idle CPU, latency, drain) and one record per phase.
    """
    with EmbeddedBroker(log_path=workdir / f"broker{run}.log") as broker:
        settings = resource_settings(
            broker.bootstrap_servers, f"res{run}", str(workdir / f"data{run}")
        )
        if cfg.flush_interval is not None:
            settings = settings.override({"ingest.flush_interval_seconds": cfg.flush_interval})
        prepare_topics(settings)
        for ref in (bulk_reference(seed), live_reference(seed)):
            asyncio.run(
                publish_reference(broker.bootstrap_servers, settings.topics.references, ref)
            )
        worker = WorkerProcess(settings, workdir, f"worker{run}").start()
        try:
            worker.wait_ready(120)
            pid = worker.pid
            assert pid is not None
            with Sampler(pid) as sampler:
                phases, latency = asyncio.run(_run_phases(cfg, worker, settings, sampler, seed))
                time.sleep(0.3)
            after_rss = rss_bytes(pid, descendants(pid))
        finally:
            worker.stop()
    flush = settings.ingest.flush_interval_seconds
    return _run_record(run, phases, latency, sampler, after_rss, flush)


def _p50(values: Sequence[float]) -> float:
    return round(float(np.percentile(values, 50)), 3) if values else -1.0


def _run_record(
    run: int,
    phases: list[Phase],
    latency: dict[str, Any],
    sampler: Sampler,
    after_rss: int,
    flush_interval: float,
) -> tuple[Record, list[Record]]:
    rows: list[Record] = []
    for ph in phases:
        window = sampler.between(ph.start, ph.end)
        if len(window) < 2:
            raise RuntimeError(f"phase {ph.name}: too short to sample")
        rss = [s[1] / MB for s in window]
        third = max(len(rss) // 3, 1)
        seconds = window[-1][0] - window[0][0]
        cpu = (window[-1][2] - window[0][2]) / seconds * 100
        rows.append(
            {
                "run": run,
                "phase": ph.name,
                "target_events_per_s": ph.target_rate,
                "seconds": round(ph.end - ph.start, 2),
                "events": ph.consumed,
                "worker_events_per_s": round(ph.consumed / max(ph.end - ph.start, 1e-3)),
                "rss_median_mb": round(statistics.median(rss), 1),
                "rss_max_mb": round(max(rss), 1),
                # Still growing at the end of a phase, or a plateau?
                "rss_trend_mb": round(
                    statistics.median(rss[-third:]) - statistics.median(rss[:third]), 1
                ),
                "cpu_percent": round(cpu, 2),
            }
        )
    idle, drain, slowest = rows[0], rows[-1], rows[1]
    busy = rows[1:]
    slope = np.polyfit(
        [float(r["worker_events_per_s"]) for r in busy],
        [float(r["rss_median_mb"]) for r in busy],
        1,
    )[0]
    during = latency["during"] or latency["after"]
    to_recv = [d[0] for d in during]
    to_eval = [d[1] for d in during]
    to_partial = [d[2] for d in during if math.isfinite(d[2])]
    record: Record = {
        "run": run,
        "idle_cpu_percent": idle["cpu_percent"],
        "idle_seconds": idle["seconds"],
        "idle_rss_mb": idle["rss_median_mb"],
        "idle_wakeups_per_s": latency["idle_wakeups_per_s"],
        "rss_growth_mb": round(float(drain["rss_max_mb"]) - float(slowest["rss_max_mb"]), 1),
        "rss_slope_mb_per_10k_events_per_s": round(float(slope) * 10_000, 2),
        "rss_after_mb": round(after_rss / MB, 1),
        "drain_events_per_s": drain["worker_events_per_s"],
        "drain_seconds": latency["drain_seconds"],
        "backlog_produce_events_per_s": latency["backlog_produce_events_per_s"],
        "alerts_during_drain": len(latency["during"]),
        "alerts_after_drain": len(latency["after"]),
        "alerts_unexplained": latency["unexplained"],
        "latency_p50_s": round(float(np.percentile(to_recv, 50)), 3) if to_recv else -1.0,
        "latency_p99_s": round(float(np.percentile(to_recv, 99)), 3) if to_recv else -1.0,
        "latency_max_s": round(max(to_recv), 3) if to_recv else -1.0,
        "close_to_evaluated_p50_s": _p50(to_eval),
        "close_to_partial_p50_s": _p50(to_partial),
        "close_to_partial_p99_s": (
            round(float(np.percentile(to_partial, 99)), 3) if to_partial else -1.0
        ),
        "partials_seen": len(to_partial),
        "flush_interval_s": flush_interval,
    }
    return record, rows


# -- state size (in-process, no Kafka) --------------------------------------------------------

SERIES_PER_MODEL = 10
STATE_SOURCES = 4
STEP = 60.0


def _state_probe(series: int, steps: int, seed: int) -> dict[str, Any]:
    """Child process: the stage-2 state of ``series`` series × ``steps`` steps (see docstring).

    The state is built twice over the same warm baseline: first with tracemalloc off (the
    RSS figures), then a second copy with tracemalloc on (its exact bytes, and where they go).
    """
    models = series // SERIES_PER_MODEL
    rng = np.random.default_rng(seed)
    cols = {f"x{i}": rng.normal(0, 1, 5_000) for i in range(SERIES_PER_MODEL)}
    registry = ReferenceRegistry()
    refs = [build_reference(cols, model=f"m{m}", model_version="1") for m in range(models + 1)]
    for ref in refs:
        registry.add(ref)
    windows = WindowPolicy(
        size_seconds=int(steps * STEP),
        step_seconds=int(STEP),
        allowed_lateness_seconds=0.0,
        idle_timeout_seconds=1e6,
        max_future_seconds=1e6,
    )
    # PSI only: the statistics computed change the evaluation time, not the state (the
    # windows' histograms; the alert tracker keeps the deciding statistic, PSI by default).
    decision, alerts = DecisionPolicy(statistics=("psi",)), AlertPolicy()
    ids = {ref.model: ref.id for ref in refs}  # a content hash, computed on every access
    now = time.time()
    t0 = float(int(now - (steps + 2) * STEP) // 60 * 60)

    def fill(ref: ReferenceProfile) -> ModelEvaluator:
        ev = ModelEvaluator(ref.model, registry, windows, decision, alerts)
        bins = {n: s.histogram.binning for n, s in ref.series.items()}
        for s in range(steps + 1):
            step = t0 + s * STEP
            for src in range(STATE_SOURCES):
                p = Partial(
                    ref.model,
                    "1",
                    ids[ref.model],
                    f"events/{src}",
                    watermark=step + STEP / 2,
                    events={step: 1_000},
                    offset_start=s * 10_000,
                    offset_end=(s + 1) * 10_000,
                    source_partitions=STATE_SOURCES,
                )
                for name, b in bins.items():
                    p.add_step(step, name, Histogram(b, rng.integers(1, 20, b.n_bins)))
                ev.handle(p, now)
        closed = {len(w.windows[n]) for w in ev.versions.values() for n in w.windows}
        if closed != {steps}:
            raise RuntimeError(f"windows hold {closed} steps, not {steps}")
        return ev

    warm = fill(refs[-1])  # the code paths' one-off allocations belong to the baseline
    warm.to_dict()
    gc.collect()
    base = rss_bytes(os.getpid())
    evaluators = [fill(ref) for ref in refs[:-1]]
    gc.collect()
    with_evaluators = rss_bytes(os.getpid())
    rows = {ev.model: ev.to_dict() for ev in evaluators}
    gc.collect()
    with_rows = rss_bytes(os.getpid())

    tracemalloc.start()
    traced_evaluators = [fill(ref) for ref in refs[:-1]]
    gc.collect()
    eval_bytes = tracemalloc.get_traced_memory()[0]
    traced_rows = {ev.model: ev.to_dict() for ev in traced_evaluators}
    gc.collect()
    rows_bytes = tracemalloc.get_traced_memory()[0]
    top = []
    for stat in tracemalloc.take_snapshot().statistics("lineno")[:5]:
        frame = stat.traceback[0]
        top.append(
            f"{'/'.join(Path(frame.filename).parts[-2:])}:{frame.lineno} {stat.size / MB:.1f} MB"
        )
    tracemalloc.stop()
    assert len(rows) == len(traced_rows) == models
    return {
        "series": models * SERIES_PER_MODEL,
        "steps": steps,
        "bins": refs[0].series["x0"].histogram.binning.n_bins,
        "evaluators_rss_mb": (with_evaluators - base) / MB,
        "with_rows_rss_mb": (with_rows - base) / MB,
        "evaluators_traced_mb": eval_bytes / MB,
        "with_rows_traced_mb": rows_bytes / MB,
        "top": top,
    }


def state_sizes(cfg: Config, seed: int) -> list[dict[str, Any]]:
    """One probe per size, each in a fresh process."""
    ctx = multiprocessing.get_context("spawn")
    out = []
    for series, steps in cfg.state_sizes:
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            out.append(pool.submit(_state_probe, series, steps, seed).result())
    return out


# -- tables -----------------------------------------------------------------------------------


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def _med(records: Sequence[Record], key: str) -> float:
    return float(statistics.median(float(r[key]) for r in records))


def resource_rows(
    quick: bool,
    seed: int = 20240601,
    runs: int = 3,
    backlog: int | None = None,
    flush_interval: float | None = None,
    with_state: bool = True,
) -> list[Section]:
    """Measure items 5–7 of issue 10 and return their tables (``runs`` worker runs).

    Parameters
    ----------
    quick
        Seconds-long phases, a small backlog, small state sizes, one run (a smoke run).
    seed
        Root random seed.
    runs
        Worker runs in a full measurement (medians reported).
    backlog
        Events of the drained backlog (``None``: 1,500,000, or 30,000 with ``quick``).
    flush_interval
        The worker's ``ingest.flush_interval_seconds`` (``None``: its default).
    with_state
        Also measure the state size (the ``state_size`` section).

    Returns
    -------
    list[Section]
        ``memory_by_rate``, ``state_size`` (if measured), ``latency`` and ``idle``: each a
        :class:`~bench._table.Table` and its records, for :func:`bench._table.emit`.
    """
    cfg = Config(quick, flush_interval=flush_interval)
    if backlog is not None:
        cfg.backlog = backlog
    n_runs = 1 if quick else runs
    load_before = _load()
    runs_out: list[Record] = []
    phase_rows: list[Record] = []
    with tempfile.TemporaryDirectory(prefix="bench-resources-") as tmp:
        for run in range(n_runs):
            record, phases = worker_run(cfg, seed + run, Path(tmp), run)
            runs_out.append(record)
            phase_rows.extend(phases)
    load_workers = _load()
    sections = [_memory_section(phase_rows, runs_out, load_before, load_workers)]
    if with_state:
        probes = state_sizes(cfg, seed)
        sections.append(_state_section(probes, _load()))
    sections.append(_latency_section(runs_out, cfg, load_workers))
    sections.append(_idle_section(runs_out, cfg, load_workers))
    return sections


def _memory_section(phases: list[Record], runs: list[Record], before: str, after: str) -> Section:
    table = Table(
        "Worker resident memory as the event rate grows",
        [
            "run",
            "phase",
            "worker ev/s",
            "s",
            "RSS median MB",
            "RSS max MB",
            "RSS trend MB",
            "CPU % of a core",
        ],
        ["r", "l", "r", "r", "r", "r", "r", "r"],
    )
    for r in phases:
        table.add(
            str(r["run"]),
            str(r["phase"]),
            f"{r['worker_events_per_s']:,}",
            f"{r['seconds']:.1f}",
            f"{r['rss_median_mb']:.1f}",
            f"{r['rss_max_mb']:.1f}",
            f"{r['rss_trend_mb']:+.1f}",
            f"{r['cpu_percent']:.1f}",
        )
    table.notes += [
        f"RSS growth, drain max − slowest paced max: median {_med(runs, 'rss_growth_mb'):+.1f} MB;"
        f" least-squares slope of median RSS over ev/s: median "
        f"{_med(runs, 'rss_slope_mb_per_10k_events_per_s'):+.2f} MB per 10k ev/s.",
        "RSS trend: median of the phase's last third − median of its first third (a plateau ≈ 0).",
        "VmRSS of the worker process (and of its descendants: none). Paced events are stamped",
        "with their send time; the drain is a backlog of 10-feature events produced by",
        f"librdkafka while the drifted model streams live (latency table). {before} before,",
        f"{after} after the runs.",
    ]
    return Section("memory_by_rate", table, phases)


def _state_section(probes: list[dict[str, Any]], load: str) -> Section:
    table = Table(
        "Stage-2 state size (in-process evaluators, dense 100-bin histograms)",
        [
            "series",
            "steps",
            "bins",
            "RSS evaluators MB",
            "RSS + table rows MB",
            "traced evaluators MB",
            "traced + table rows MB",
        ],
        ["r", "r", "r", "r", "r", "r", "r"],
    )
    records: list[Record] = []
    for p in probes:
        table.add(
            f"{p['series']:,}",
            str(p["steps"]),
            str(p["bins"]),
            f"{p['evaluators_rss_mb']:.1f}",
            f"{p['with_rows_rss_mb']:.1f}",
            f"{p['evaluators_traced_mb']:.1f}",
            f"{p['with_rows_traced_mb']:.1f}",
        )
        records.append({k: v for k, v in p.items() if k != "top"})
    main, fewer_series, fewer_steps = probes
    d_series = main["series"] - fewer_series["series"]
    d_steps = main["steps"] - fewer_steps["steps"]
    for key, label in (("with_rows_traced_mb", "traced"), ("with_rows_rss_mb", "RSS")):
        per_series = (main[key] - fewer_series[key]) / d_series * 1024
        per_step = (main[key] - fewer_steps[key]) / d_steps
        table.notes.append(
            f"Growth ({label}, evaluators + rows): {per_series:.1f} KB per series at "
            f"{main['steps']} steps; {per_step:.2f} MB per step at {main['series']:,} series "
            f"({per_step * 1024 / main['series']:.2f} KB per series-step)."
        )
        records.append(
            {
                "growth": label,
                "kb_per_series": round(per_series, 2),
                "mb_per_step": round(per_step, 3),
                "kb_per_series_step": round(per_step * 1024 / main["series"], 3),
            }
        )
    table.notes += [
        f"Largest allocations at {main['series']:,} × {main['steps']}: "
        + "; ".join(main["top"][:4]),
        "Each size in a fresh process over a warm baseline (references loaded, one model "
        "evaluated); 4 source partitions; evaluators = ModelEvaluator objects, rows = their",
        f"to_dict() (the Faust table's in-memory value). Target ≤ 100 MB. {load}.",
    ]
    return Section("state_size", table, records)


def _latency_section(runs: list[Record], cfg: Config, load: str) -> Section:
    table = Table(
        "Step close → alert on drift.alerts while the worker drains a backlog at full speed",
        [
            "run",
            "flush s",
            "backlog",
            "drain ev/s",
            "drain s",
            "alerts",
            "p50 s",
            "p99 s",
            "max s",
            "close → partial p50 s",
            "close → partial p99 s",
            "close → evaluated p50 s",
        ],
        ["r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r"],
    )
    for r in runs:
        table.add(
            str(r["run"]),
            f"{r['flush_interval_s']:g}",
            f"{cfg.backlog:,}",
            f"{r['drain_events_per_s']:,}",
            f"{r['drain_seconds']:.1f}",
            str(r["alerts_during_drain"]),
            f"{r['latency_p50_s']:.3f}",
            f"{r['latency_p99_s']:.3f}",
            f"{r['latency_max_s']:.3f}",
            f"{r['close_to_partial_p50_s']:.3f}",
            f"{r['close_to_partial_p99_s']:.3f}",
            f"{r['close_to_evaluated_p50_s']:.3f}",
        )
    table.notes += [
        "Latency = time the alert record was received from drift.alerts − ts of the first event",
        "of the drifted model past the step's end (sent live to its own partition, 1-s",
        f"tumbling windows, {cfg.live_rate:.0f} ev/s); alerts whose step could close during "
        "the drain only.",
        "close → partial: until this process received the first partial of that model whose",
        "watermark passed the step's end (stage 1: fetch, bin, flush); close → evaluated: the",
        "alert's evaluated_at (stage 2 done). flush s = ingest.flush_interval_seconds.",
        f"Target p50 and p99 ≤ 1 s. {load}.",
    ]
    keep = ("run", "latency", "alerts", "drain", "close_to", "partials", "flush")
    records = [{k: v for k, v in r.items() if k.startswith(keep)} for r in runs]
    return Section("latency", table, records)


def _idle_section(runs: list[Record], cfg: Config, load: str) -> Section:
    table = Table(
        "Idle worker (references loaded, no events)",
        ["run", "seconds", "CPU % of a core", "thread wake-ups/s", "RSS MB"],
        ["r", "r", "r", "r", "r"],
    )
    for r in runs:
        table.add(
            str(r["run"]),
            f"{r['idle_seconds']:.1f}",
            f"{r['idle_cpu_percent']:.2f}",
            f"{r['idle_wakeups_per_s']:,.0f}",
            f"{r['idle_rss_mb']:.1f}",
        )
    table.notes.append(
        f"utime+stime (+ reaped children) from /proc/<pid>/stat over the idle phase, after "
        f"{cfg.settle_seconds:.0f} s settling. Target < 2 %. {load}."
    )
    records = [
        {
            k: r[k]
            for k in (
                "run",
                "idle_cpu_percent",
                "idle_seconds",
                "idle_rss_mb",
                "idle_wakeups_per_s",
            )
        }
        for r in runs
    ]
    return Section("idle", table, records)


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser("python -m bench.resources", __doc__ or "")
    parser.add_argument("--runs", type=int, default=3, help="worker runs (medians reported)")
    parser.add_argument("--backlog", type=int, default=None, help="events of the drained backlog")
    parser.add_argument(
        "--flush-interval", type=float, default=None, help="the worker's flush interval, s"
    )
    parser.add_argument("--no-state", action="store_true", help="skip the state-size probes")
    args = parser.parse_args(argv)
    sections = resource_rows(
        args.quick, args.seed, args.runs, args.backlog, args.flush_interval, not args.no_state
    )
    records = {s.name: s.records for s in sections}
    runs, idle = records["latency"], records["idle"]
    state = ""
    if "state_size" in records:
        big = records["state_size"][0]
        state = (
            f"state {float(big['with_rows_rss_mb']):.1f} MB RSS for {big['series']:,} series × "
            f"{big['steps']} steps; "
        )
    summary = (
        f"SUMMARY: idle CPU {_med(idle, 'idle_cpu_percent'):.2f} % of a core; {state}"
        f"step close → alert p50 {_med(runs, 'latency_p50_s'):.3f} s, "
        f"p99 {_med(runs, 'latency_p99_s'):.3f} s (medians of runs)"
    )
    emit(
        benchmark="bench.resources",
        tables=[s.table for s in sections],
        records=records,
        meta={"quick": bool(args.quick), "seed": args.seed, "runs": len(runs)},
        summary=summary,
        as_json=args.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
