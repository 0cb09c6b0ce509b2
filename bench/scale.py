"""Worker scenarios of ``bench.e2e``: a backlog produced first, then worker processes drain it.

A :class:`Scenario` says what the events look like (features, categorical share, models) and
how they are laid out (partitions, keyed by model or spread), and how many worker processes
(:class:`~stream_drift.tools.supervisor.WorkerProcess`, one consumer group) drain them. Each
scenario runs on its own embedded broker, so topics and memory do not pile up across rows.

The backlog is produced with librdkafka (confluent-kafka, the fastest producer here) to
explicit partitions, and fully acknowledged before any worker starts. A worker's rate is the
events divided by the time from the first to the last non-empty stage-1 batch over all its
processes (``/health``: ``first_batch_at``, ``last_batch_at``); the run also waits until
``stream_drift_events_total{outcome="accepted"}`` (``/metrics``) reaches the events produced,
so a worker that skipped work cannot post a rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from stream_drift.app.worker import prepare_topics
from stream_drift.config import Settings
from stream_drift.pipeline.reference import ReferenceProfile, build_reference
from stream_drift.pipeline.registry import reference_record_key
from stream_drift.tools.embedded import EmbeddedBroker, find_free_port
from stream_drift.tools.supervisor import WorkerProcess

CATEGORIES = [f"k{i:02d}" for i in range(20)]
"""Vocabulary of the categorical features (skewed: the first categories are the frequent)."""
CATEGORY_P = np.array([1.0 / (i + 1) for i in range(len(CATEGORIES))]) / sum(
    1.0 / (i + 1) for i in range(len(CATEGORIES))
)
REFERENCE_N = 20_000
STEP_SECONDS = 60
EVENT_SPACING_S = 0.001
"""Event time between consecutive events: 400k events span about 7 minutes of event time."""


@dataclass(frozen=True)
class Scenario:
    """One backlog and the workers that drain it.

    Parameters
    ----------
    key
        Identifier in the JSON records.
    label
        Row label in the table.
    events
        Events produced (one per message).
    features
        Features per event (plus a numeric ``prediction``).
    categorical_share
        Share of the features that are categorical strings (rounded to whole features).
    models
        Models the events are spread over (event ``i`` belongs to model ``i % models``); one
        reference is published per model.
    partitions
        Partitions of the events topic.
    workers
        Worker processes (one consumer group).
    keyed
        ``True``: every event of model ``m`` goes to partition ``m % partitions`` (the layout
        of events keyed by model); ``False``: event ``i`` goes to partition ``i % partitions``.
    client
        The workers' stage-1 client (``ingest.client``; the product's default unless set).
    """

    key: str
    label: str
    events: int
    features: int = 10
    categorical_share: float = 0.0
    models: int = 1
    partitions: int = 4
    workers: int = 1
    keyed: bool = False
    client: str = "aiokafka"

    def shrunk(self, events: int) -> Scenario:
        """The same scenario with fewer events (``--quick``)."""
        return replace(self, events=min(self.events, events))

    @property
    def n_categorical(self) -> int:
        return round(self.features * self.categorical_share)

    @property
    def feature_names(self) -> list[str]:
        """Numeric features ``f0, f1, ...`` then categorical ``c0, c1, ...``."""
        n_cat = self.n_categorical
        return [f"f{i}" for i in range(self.features - n_cat)] + [f"c{i}" for i in range(n_cat)]

    @property
    def model_names(self) -> list[str]:
        return ["bench"] if self.models == 1 else [f"bench{m:04d}" for m in range(self.models)]


def _columns(scenario: Scenario, n: int, rng: np.random.Generator) -> dict[str, Any]:
    """``n`` values per feature: numeric ``f<j>`` ~ N(j, 1 + j/10), categorical skewed."""
    cols: dict[str, Any] = {}
    for name in scenario.feature_names:
        j = int(name[1:])
        if name.startswith("f"):
            cols[name] = rng.normal(j, 1 + j / 10, n)
        else:
            cols[name] = [CATEGORIES[k] for k in rng.choice(len(CATEGORIES), n, p=CATEGORY_P)]
    return cols


def make_references(scenario: Scenario, seed: int) -> list[ReferenceProfile]:
    """One reference per model; every model shares the distribution of the first."""
    rng = np.random.default_rng(seed)
    cols = _columns(scenario, REFERENCE_N, rng)
    cols["score"] = rng.random(REFERENCE_N)
    first = build_reference(
        cols,
        model=scenario.model_names[0],
        model_version="1",
        prediction=["score"],
        categorical=[f for f in scenario.feature_names if f.startswith("c")],
    )
    data = first.to_dict()
    del data["id"]
    return [first] + [
        ReferenceProfile.from_dict({**data, "model": name}) for name in scenario.model_names[1:]
    ]


def make_events(scenario: Scenario, seed: int, t0: float) -> tuple[list[bytes], list[int]]:
    """The events (JSON, ~300 bytes for 10 numeric features) and their partitions.

    Event ``i`` has event time ``t0 + i * EVENT_SPACING_S``; numbers have 5 decimals.
    """
    n = scenario.events
    rng = np.random.default_rng(seed + 1)
    cols = _columns(scenario, n, rng)
    cols["prediction"] = rng.random(n)
    fields = ",".join(
        f'"{f}":%.5f' if f.startswith("f") else f'"{f}":"%s"' for f in scenario.feature_names
    )
    template = (
        '{"model":"%s","model_version":"1","event_id":"e%d","ts":%.3f,'
        f'"features":{{{fields}}},"prediction":%.5f}}'
    )
    names = scenario.model_names
    models = [names[i % len(names)] for i in range(n)]
    ts = (t0 + np.arange(n) * EVENT_SPACING_S).tolist()
    columns = [
        cols[f].tolist() if isinstance(cols[f], np.ndarray) else cols[f]
        for f in scenario.feature_names
    ]
    rows = zip(models, range(n), ts, *columns, cols["prediction"].tolist(), strict=True)
    values = [(template % row).encode() for row in rows]
    if scenario.keyed:
        partitions = [(i % len(names)) % scenario.partitions for i in range(n)]
    else:
        partitions = [i % scenario.partitions for i in range(n)]
    return values, partitions


def produce(
    bootstrap: str, topic: str, values: Sequence[bytes], partitions: Sequence[int | None]
) -> float:
    """Send every value to its partition (``None``: the client picks); events/s until all acks.

    Raises
    ------
    RuntimeError
        When a record was not acknowledged.
    """
    from confluent_kafka import KafkaError, Message, Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.num.messages": 10_000,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )
    failed: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failed.append(str(err))

    start = time.perf_counter()
    for i, (value, partition) in enumerate(zip(values, partitions, strict=True)):
        while True:
            try:
                if partition is None:
                    producer.produce(topic, value, on_delivery=on_delivery)
                else:
                    producer.produce(topic, value, partition=partition, on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: let deliveries drain it
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(120)
    elapsed = time.perf_counter() - start
    if left or failed:
        raise RuntimeError(f"{left} records unsent, {len(failed)} failed: {failed[:3]}")
    return len(values) / elapsed


def publish_references(bootstrap: str, topic: str, profiles: Sequence[ReferenceProfile]) -> None:
    """Publish profiles with one producer (the topic exists: :func:`prepare_topics`)."""
    values = [p.to_json().encode() for p in profiles]
    keys = [reference_record_key(p).encode() for p in profiles]
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 16 * 1024 * 1024})
    for key, value in zip(keys, values, strict=True):
        producer.produce(topic, value, key=key)
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("references not acknowledged")


def worker_settings(
    bootstrap: str, app_id: str, data_dir: str, partitions: int, *, extra: dict[str, Any] | None
) -> Settings:
    """Settings of one bench worker: its own topics (by ``app_id``), quick group joins."""
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
            "topics.partitions.events": partitions,
            "window.size_seconds": STEP_SECONDS,
            "window.step_seconds": STEP_SECONDS,
            "window.idle_timeout_seconds": 2,
            "web.port": find_free_port(),
            "worker.data_dir": data_dir,
            **(extra or {}),
        }
    )


STALL_SECONDS = 45.0
"""No stage-1 progress for this long ends a scenario as stalled (its row says so)."""


@dataclass(frozen=True)
class Drain:
    """What the workers of one scenario did.

    ``stalled`` holds why the drain was given up (no stage-1 progress for
    :data:`STALL_SECONDS`, with the workers' ``/health`` problems), ``""`` when it finished.
    """

    events: int
    consumed: int
    accepted: int
    stage1_seconds: float
    committed_seconds: float
    start_skew_seconds: float
    partitions_per_worker: list[int]
    stalled: str = ""

    @property
    def events_per_s(self) -> float:
        """Events / stage-1 seconds; 0 for a stalled drain (it has no rate)."""
        return 0.0 if self.stalled else self.events / max(self.stage1_seconds, 1e-3)

    @property
    def committed_events_per_s(self) -> float:
        return 0.0 if self.stalled else self.events / max(self.committed_seconds, 1e-3)


def accepted_events(worker: WorkerProcess) -> int:
    """Sum of ``stream_drift_events_total{outcome="accepted"}`` over every model (0 while
    ``/metrics`` does not answer within 2 s: the callers poll)."""
    try:
        text = worker.metrics_text()
    except OSError:
        return 0
    total = 0.0
    for line in text.splitlines():
        if line.startswith("stream_drift_events_total{") and 'outcome="accepted"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def _consumed(healths: Sequence[dict[str, Any]]) -> int:
    return sum(int(h.get("records_consumed", 0)) for h in healths)


def drain(settings: Sequence[Settings], workdir: Path, n: int, timeout: float = 300) -> Drain:
    """Start one worker process per settings, wait until they accepted ``n`` events, stop them.

    A drain that stops progressing (records consumed, then events accepted) for
    :data:`STALL_SECONDS` ends with ``stalled`` set rather than an exception, so one stuck
    scenario does not lose the others' rows.

    Raises
    ------
    RuntimeError
        When a worker died, or the drain took over ``timeout`` seconds while progressing.
    """
    workers = [WorkerProcess(s, workdir, f"{s.app_id}-w{i}") for i, s in enumerate(settings)]
    stalled = ""
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.wait_ready(120)
        deadline = time.monotonic() + timeout
        healths = [w.health() for w in workers]
        progress, progress_at = _consumed(healths), time.monotonic()
        while _consumed(healths) < n:
            if time.monotonic() > deadline or not all(w.is_running() for w in workers):
                tails = "\n".join(w.log_tail(30) for w in workers)
                raise RuntimeError(f"workers stopped or too slow: {healths}\n{tails}")
            if time.monotonic() - progress_at > STALL_SECONDS:
                problems = sorted({p for h in healths for p in h.get("problems", [])})
                stalled = (
                    f"no stage-1 progress for {STALL_SECONDS:.0f} s at {progress:,} of {n:,} "
                    f"records; /health problems: {'; '.join(problems) or 'none'}"
                )
                break
            time.sleep(0.2)
            # A worker whose event loop is blocked does not answer: keep its last answer.
            healths = [
                (w.health() if w.is_running() else {}) or h
                for w, h in zip(workers, healths, strict=True)
            ]
            if _consumed(healths) > progress:
                progress, progress_at = _consumed(healths), time.monotonic()
        accepted = sum(accepted_events(w) for w in workers)
        counted, counted_at = accepted, time.monotonic()
        while accepted < n and not stalled:
            # Consumed is not accepted: the records may still wait to be binned.
            if time.monotonic() - counted_at > STALL_SECONDS or time.monotonic() > deadline:
                stalled = (
                    f"all {n:,} records consumed, only {accepted:,} accepted after "
                    f"{time.monotonic() - counted_at:.0f} s without progress"
                )
                break
            time.sleep(0.2)
            accepted = sum(accepted_events(w) for w in workers)
            if accepted > counted:
                counted, counted_at = accepted, time.monotonic()
        committed = [] if stalled else [_wait_committed(w, deadline) for w in workers]
        healths = [w.health() or h for w, h in zip(workers, healths, strict=True)]
    finally:
        for w in workers:
            w.stop()
    firsts = [float(h["first_batch_at"]) for h in healths if h.get("first_batch_at") is not None]
    lasts = [float(h["last_batch_at"]) for h in healths if h.get("last_batch_at") is not None]
    first = min(firsts, default=0.0)
    return Drain(
        events=n,
        consumed=max(_consumed(healths), progress),
        accepted=accepted,
        stage1_seconds=max(lasts, default=0.0) - first,
        committed_seconds=max(committed, default=0.0) - first,
        start_skew_seconds=max(firsts, default=0.0) - first,
        partitions_per_worker=[len(h.get("ingest_partitions") or []) for h in healths],
        stalled=stalled,
    )


def _wait_committed(worker: WorkerProcess, deadline: float) -> float:
    """Wall time of the flush that committed this worker's last consumed offsets."""
    health = worker.health()
    if health.get("last_batch_at") is None:
        return 0.0  # consumed nothing (no partitions)
    consumed_until = float(health["last_batch_at"])
    while time.monotonic() < deadline:
        health = worker.health()
        flushed = float(health.get("last_flush_at", 0.0))
        if health.get("last_commit_ok") and flushed >= consumed_until:
            return flushed
        time.sleep(0.1)
    raise RuntimeError(f"{worker.name}: stage 1 did not commit in time")


@dataclass
class Backlog:
    """A produced backlog, handed to the ceilings before any worker reads it."""

    bootstrap: str
    topic: str
    scenario: Scenario
    references: list[ReferenceProfile]
    values: list[bytes]
    produce_events_per_s: float


def run_scenario(
    scenario: Scenario,
    workdir: Path,
    seed: int,
    run: int,
    before_workers: Callable[[Backlog], None] | None = None,
    other_clients: Sequence[str] = (),
) -> tuple[Drain, Backlog, dict[str, Drain]]:
    """Produce the scenario's backlog on a fresh broker, then let its workers drain it.

    Then, for each of ``other_clients``, the same workers on that stage-1 client drain the
    same backlog again (their own group and output topics, the same events and references).
    """
    tag = f"{scenario.key.replace('_', '-')}-r{run}"
    with EmbeddedBroker(log_path=workdir / f"broker-{tag}.log") as broker:
        bootstrap = broker.bootstrap_servers

        def settings_of(client: str, app_id: str, shared: dict[str, Any]) -> list[Settings]:
            return [
                worker_settings(
                    bootstrap,
                    app_id,
                    str(workdir / f"data-{app_id}-{i}"),
                    scenario.partitions,
                    # 1,000 models export ~100 label sets each: above the default cap of
                    # 10,000, accepted events of the models past it would be missing.
                    extra={
                        "metrics.max_series": max(10_000, 200 * scenario.models),
                        "ingest.client": client,
                        **shared,
                    },
                )
                for i in range(scenario.workers)
            ]

        settings = settings_of(scenario.client, f"bench-{tag}", {})
        prepare_topics(settings[0])
        references = make_references(scenario, seed)
        publish_references(bootstrap, settings[0].topics.references, references)
        values, partitions = make_events(scenario, seed, t0=time.time() - 3600)
        rate = produce(bootstrap, settings[0].topics.events, values, list(partitions))
        backlog = Backlog(bootstrap, settings[0].topics.events, scenario, references, values, rate)
        if before_workers is not None:
            before_workers(backlog)
        result = drain(settings, workdir, scenario.events)
        others: dict[str, Drain] = {}
        shared = {
            "topics.events": settings[0].topics.events,
            "topics.references": settings[0].topics.references,
        }
        for client in other_clients:
            again = settings_of(client, f"bench-{tag}-{client}", shared)
            prepare_topics(again[0])
            others[client] = drain(again, workdir, scenario.events)
    return result, backlog, others
