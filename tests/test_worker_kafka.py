"""Integration tests of ``stream-drift worker`` processes against the embedded (Tansu) broker.

Every test drives real worker processes (:class:`~stream_drift.tools.supervisor.WorkerProcess`)
through Kafka topics and checks what a user sees: alerts, evaluations, dead letters and the
``/metrics`` endpoint. Event timestamps are chosen by the tests (a fixed base time and a fixed
rate), so the event-time windows, and hence every figure, are deterministic.

Workers are shared where they can be (module-scoped fixtures); each test uses its own model
names so that it never sees another test's data. Every wait is bounded, and failures carry
the workers' log tails (KAFKA-LOCAL.md §9).

Windows on the worker of the alert, no-drift and dead-letter tests: size 10 s, step 5 s,
lateness 1 s, idle timeout 8 s. A step closes when the watermark (min over the source
partitions heard from within the idle timeout of their largest event time, minus the
lateness) passes its end; once the traffic stops, the processing-time fallback closes the
last steps about ``idle_timeout`` seconds later. Bursts spanning several steps are sent with
every partition "primed" first (see :meth:`Deployment.send`).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata
from kafka_helpers import read_topic
from prometheus_client.parser import text_string_to_metric_families

from stream_drift.app.kafka_io import publish_reference
from stream_drift.app.tables import STATE_TABLE
from stream_drift.config import Settings
from stream_drift.pipeline.alert_text import format_timestamp
from stream_drift.pipeline.reference import ReferenceProfile, build_reference
from stream_drift.tools.datasets import read_columns
from stream_drift.tools.embedded import EmbeddedBroker, find_free_port
from stream_drift.tools.report import DriftReport, build_report
from stream_drift.tools.supervisor import WorkerProcess

pytestmark = pytest.mark.kafka

BASE = 1_767_225_600
"""2026-01-01T00:00:00Z: the first scenario's time origin, a multiple of every window step."""
_bases = itertools.count(BASE, 3600)


def next_base() -> float:
    """A fresh time origin, one hour after the previous one.

    Stage 1 keeps one watermark per source partition for all models (the largest event time
    it has read there), so two scenarios sharing a worker must not go back in event time:
    a scenario's first partials would otherwise carry the earlier scenario's watermark.
    """
    return float(next(_bases))


VERSION = "3"
RUNBOOK = "https://runbooks.example.com/stream-drift/feature-drift"
EVENT_PARTITIONS = 4
ROLES = ("events", "labels", "partials", "alerts", "results", "references", "deadletter")
COUNTRIES = ["DE", "FR", "US", "ES"]
COUNTRY_P = [0.4, 0.3, 0.2, 0.1]
STATISTICS = ("psi", "kl", "js", "ks", "chi2")
SLIDING = {
    "size_seconds": 10,
    "step_seconds": 5,
    "allowed_lateness_seconds": 1.0,
    "idle_timeout_seconds": 8.0,
}
TUMBLING_60 = {
    "size_seconds": 60,
    "step_seconds": 60,
    "allowed_lateness_seconds": 1.0,
    "idle_timeout_seconds": 5.0,
}
MAX_MESSAGE_BYTES = 2048

# Model names, one per scenario, so that scenarios sharing a worker do not mix.
DRIFT_MODEL = "fraud-drift"
STEADY_MODEL = "fraud-steady"
DEADLETTER_MODEL = "fraud-dl"
STATS_MODEL = "fraud-stats"
BACKLOG_MODEL = "fraud-backlog"
SPLIT_MODEL = "fraud-split"


# --------------------------------------------------------------------------------- data


def _reference_columns(seed: int, n: int = 20_000) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "amount": rng.normal(100.0, 20.0, n),
        "age": rng.uniform(18.0, 80.0, n),
        "country": list(rng.choice(COUNTRIES, n, p=COUNTRY_P)),
        "score": rng.beta(2.0, 5.0, n),
    }


def make_reference(model: str) -> ReferenceProfile:
    """Reference of ``model``: amount, age (numeric), country (categorical), prediction."""
    return build_reference(
        _reference_columns(seed=7), model=model, model_version=VERSION, prediction=["score"]
    )


def make_events(
    model: str,
    n: int,
    *,
    rate: float,
    seed: int,
    shift: float = 0.0,
    start: float,
    missing_age_every: int = 0,
    unseen_country_every: int = 0,
) -> list[dict[str, Any]]:
    """``n`` events at ``rate`` per second of event time from ``start``, drawn like the
    reference; ``shift`` is added to ``amount`` only (the drifting feature)."""
    rng = np.random.default_rng(seed)
    amount = rng.normal(100.0, 20.0, n) + shift
    age = rng.uniform(18.0, 80.0, n)
    country = rng.choice(COUNTRIES, n, p=COUNTRY_P)
    score = rng.beta(2.0, 5.0, n)
    events = []
    for i in range(n):
        age_i: float | None = float(age[i])
        if missing_age_every and i % missing_age_every == 0:
            age_i = None
        country_i = str(country[i])
        if unseen_country_every and i % unseen_country_every == 1:
            country_i = "JP"
        events.append(
            {
                "model": model,
                "model_version": VERSION,
                "event_id": f"{model}-{i}",
                "ts": start + i / rate,
                "features": {"amount": float(amount[i]), "age": age_i, "country": country_i},
                "prediction": float(score[i]),
            }
        )
    return events


def encode(event: Any) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def write_jsonl(path: Path, events: Sequence[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(encode(e) + b"\n" for e in events))
    return path


def offline_report(
    profile: ReferenceProfile, events: Sequence[dict[str, Any]], path: Path
) -> DriftReport:
    """What ``stream-drift report --reference REF --current events.jsonl`` computes."""
    return build_report(profile, read_columns(write_jsonl(path, events)))


def in_window(events: Sequence[dict[str, Any]], start: float, end: float) -> list[dict[str, Any]]:
    return [e for e in events if start <= e["ts"] < end]


def parse_rfc3339(text: str) -> float:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ---------------------------------------------------------------------------- kafka I/O


async def _asend(
    bootstrap: str, topic: str, records: Sequence[tuple[int, bytes, bytes | None]]
) -> list[RecordMetadata]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=4 * 1024 * 1024
    )
    async with asyncio.timeout(60):
        await producer.start()
        try:
            futures = [
                await producer.send(topic, value=value, key=key, partition=partition)
                for partition, value, key in records
            ]
            return list(await asyncio.gather(*futures))
        finally:
            await producer.stop()


def round_robin(
    values: Sequence[bytes], keys: Sequence[bytes | None] | None = None
) -> list[tuple[int, bytes, bytes | None]]:
    """Value ``i`` goes to events partition ``i % 4``, so each partition gets its events in
    time order."""
    return [
        (i % EVENT_PARTITIONS, v, None if keys is None else keys[i]) for i, v in enumerate(values)
    ]


def read_json(
    bootstrap: str, topic: str, *, idle_s: float = 0.5, min_records: int = 0
) -> list[tuple[bytes | None, dict[str, Any]]]:
    return [
        (r.key, json.loads(r.value))
        for r in read_topic(
            bootstrap, topic, idle_s=idle_s, timeout_s=30.0, min_records=min_records
        )
        if r.value is not None
    ]


# ------------------------------------------------------------------------------ workers


def logs(*workers: WorkerProcess) -> str:
    """The workers' log tails, for assertion messages."""
    return "".join(
        f"\n----- {w.name} (pid {w.pid}, running={w.is_running()}) log tail -----\n{w.log_tail(80)}"
        for w in workers
    )


def wait_until(
    condition: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    workers: Sequence[WorkerProcess],
    interval: float = 0.25,
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with the logs after
    ``timeout`` seconds, or as soon as a worker died."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        dead = [w.name for w in workers if not w.is_running()]
        if dead:
            pytest.fail(f"{', '.join(dead)} died while waiting for {what}{logs(*workers)}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{logs(*workers)}")
        time.sleep(interval)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(worker: WorkerProcess) -> Samples:
    """Every sample of the worker's ``/metrics``, by (sample name, sorted labels)."""
    try:
        text = worker.metrics_text()
    except OSError:
        return {}
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def make_settings(
    bootstrap: str, workdir: Path, app_id: str, window: dict[str, Any], **sections: Any
) -> Settings:
    """Worker settings for the tests: short group timeouts (Tansu joins take half the
    session timeout), topics named after the app id, a free web port."""
    return Settings().override(
        {
            "app_id": app_id,
            "kafka": {
                "bootstrap_servers": bootstrap,
                "session_timeout_seconds": 6.0,
                "heartbeat_interval_seconds": 1.0,
                "rebalance_timeout_seconds": 6.0,
            },
            "topics": {role: f"{app_id}.{role}" for role in ROLES},
            "window": window,
            "alerts": {"fire_after": 1, "runbook_base_url": RUNBOOK},
            "web": {"port": find_free_port()},
            "worker": {"data_dir": str(workdir / "data")},
            **sections,
        }
    )


def publish(settings: Settings, *profiles: ReferenceProfile) -> None:
    for profile in profiles:
        asyncio.run(
            publish_reference(
                settings.kafka.bootstrap_servers,
                settings.topics.references,
                profile,
                partitions=settings.topics.partitions.references,
            )
        )


def start_all(workers: Sequence[WorkerProcess], timeout: float = 90.0) -> None:
    """Start the workers together and wait until each is ready."""
    for w in workers:
        w.start()
    for w in workers:
        w.wait_ready(timeout)


def stop_all(workers: Sequence[WorkerProcess]) -> None:
    """Stop the workers (by PID) in parallel: each takes a few seconds to leave its groups."""
    with ThreadPoolExecutor(max_workers=max(1, len(workers))) as pool:
        list(pool.map(lambda w: w.stop(timeout=20.0), workers))


@dataclass
class Deployment:
    """Worker processes sharing one settings file's topics, plus the references they use."""

    settings: Settings
    workers: list[WorkerProcess]
    references: dict[str, ReferenceProfile]

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka.bootstrap_servers

    @property
    def worker(self) -> WorkerProcess:
        return self.workers[0]

    @property
    def topics(self) -> Any:
        return self.settings.topics

    def logs(self) -> str:
        return logs(*self.workers)

    def send(
        self,
        model: str,
        values: Sequence[bytes],
        keys: Sequence[bytes | None] | None = None,
        *,
        prime: bool,
    ) -> list[RecordMetadata]:
        """Send events round-robin over the events partitions; metadata in order.

        With ``prime``, the first event of every partition is sent first, and the rest only
        once stage 2 has merged a partial of ``model`` from every partition. Stage 2 takes
        the minimum watermark over the source partitions it has *heard from* (a partition
        that never reported does not hold it back, see
        ``test_backlog_over_partitions_is_not_counted_late``), so a burst spanning several
        window steps would otherwise close steps on the first partition's partial and count
        the other partitions' events late.
        """
        records = round_robin(values, keys)
        topic = self.topics.events
        if not prime:
            return asyncio.run(_asend(self.bootstrap, topic, records))
        head = asyncio.run(_asend(self.bootstrap, topic, records[:EVENT_PARTITIONS]))
        expected = {f"{topic}/{p}" for p in range(EVENT_PARTITIONS)}
        wait_until(
            lambda: expected <= self.sources_merged(model),
            timeout=30,
            what=f"stage 2 merging {model}'s first partial of every partition",
            workers=self.workers,
        )
        return head + asyncio.run(_asend(self.bootstrap, topic, records[EVENT_PARTITIONS:]))

    def sources_merged(self, model: str) -> set[str]:
        """Source partitions whose partials stage 2 merged into ``model``'s state (read from
        the state table's changelog)."""
        key = json.dumps(model).encode()
        topic = f"{self.settings.app_id}-{STATE_TABLE}-changelog"
        rows = [r.value for r in read_topic(self.bootstrap, topic, idle_s=0.3) if r.key == key]
        if not rows or rows[-1] is None:
            return set()
        state = json.loads(rows[-1])
        return set(state.get("versions", {}).get(VERSION, {}).get("sources", {}))

    def results(self, model: str, *, idle_s: float = 0.5) -> list[dict[str, Any]]:
        return [
            v
            for _, v in read_json(self.bootstrap, self.topics.results, idle_s=idle_s)
            if v.get("model") == model
        ]

    def alerts(
        self, model: str, *, idle_s: float = 0.5
    ) -> list[tuple[bytes | None, dict[str, Any]]]:
        return [
            (k, v)
            for k, v in read_json(self.bootstrap, self.topics.alerts, idle_s=idle_s)
            if v.get("model") == model
        ]

    def wait_results(
        self,
        model: str,
        condition: Callable[[list[dict[str, Any]]], bool],
        *,
        timeout: float,
        what: str,
    ) -> list[dict[str, Any]]:
        def ready() -> list[dict[str, Any]] | None:
            results = self.results(model, idle_s=0.3)
            return results if condition(results) else None

        found: list[dict[str, Any]] = wait_until(
            ready, timeout=timeout, what=what, workers=self.workers, interval=0.5
        )
        return found

    def wait_window_end(self, model: str, end: float, *, timeout: float) -> list[dict[str, Any]]:
        """The model's results once one of them is of a window ending at ``end`` or later."""
        return self.wait_results(
            model,
            lambda rs: any(r["window_end_ts"] >= end for r in rs),
            timeout=timeout,
            what=f"the {model} window ending at {format_timestamp(end)}",
        )


@contextmanager
def deployed(
    settings: Settings, references: dict[str, ReferenceProfile], workers: list[WorkerProcess]
) -> Iterator[Deployment]:
    """Publish the references, start the workers and wait until they are ready; stop them
    on exit."""
    publish(settings, *references.values())
    try:
        start_all(workers)
        yield Deployment(settings, workers, references)
    finally:
        stop_all(workers)


@pytest.fixture(scope="module")
def sliding(
    kafka_broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """One worker, sliding windows (10 s by 5 s), small max message size, references of the
    drift, steady and dead-letter scenarios published before it starts."""
    workdir = tmp_path_factory.mktemp("sliding")
    app_id = f"sd-sliding-{uuid.uuid4().hex[:8]}"
    settings = make_settings(
        kafka_broker.bootstrap_servers,
        workdir,
        app_id,
        SLIDING,
        ingest={"max_message_bytes": MAX_MESSAGE_BYTES},
    )
    models = (DRIFT_MODEL, STEADY_MODEL, DEADLETTER_MODEL, BACKLOG_MODEL)
    references = {m: make_reference(m) for m in models}
    with deployed(
        settings, references, [WorkerProcess(settings, workdir, name="sliding-worker")]
    ) as d:
        yield d


@pytest.fixture(scope="module")
def tumbling(
    kafka_broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """One worker with tumbling 60 s windows: a window is exactly the events of one minute."""
    workdir = tmp_path_factory.mktemp("tumbling")
    app_id = f"sd-tumbling-{uuid.uuid4().hex[:8]}"
    settings = make_settings(kafka_broker.bootstrap_servers, workdir, app_id, TUMBLING_60)
    references = {STATS_MODEL: make_reference(STATS_MODEL)}
    with deployed(
        settings, references, [WorkerProcess(settings, workdir, name="tumbling-worker")]
    ) as d:
        yield d


@pytest.fixture
def pair(kafka_broker: EmbeddedBroker, tmp_path: Path) -> Iterator[Deployment]:
    """Two workers of one app (same consumer groups), tumbling 60 s windows."""
    app_id = f"sd-pair-{uuid.uuid4().hex[:8]}"
    settings = make_settings(kafka_broker.bootstrap_servers, tmp_path, app_id, TUMBLING_60)
    references = {SPLIT_MODEL: make_reference(SPLIT_MODEL)}
    workers = []
    for name in ("worker-a", "worker-b"):
        own = settings.override(
            {"web.port": find_free_port(), "worker.data_dir": str(tmp_path / name)}
        )
        workers.append(WorkerProcess(own, tmp_path, name=name))
    with deployed(settings, references, workers) as d:
        yield d


# -------------------------------------------------------------------------------- tests


@pytest.mark.timeout(180)
def test_injected_drift_fires_one_complete_alert(sliding: Deployment, tmp_path: Path) -> None:
    """A shifted ``amount`` fires one alert with every contract field right; the unshifted
    features and the prediction raise nothing."""
    d, worker = sliding, sliding.worker
    profile = d.references[DRIFT_MODEL]
    # 20 s of event time at 100 events/s: steps [0,5) [5,10) [10,15) [15,20), 500 events each.
    base = next_base()
    events = make_events(DRIFT_MODEL, 2000, rate=100.0, seed=11, shift=30.0, start=base)
    produced_at = time.time()
    d.send(DRIFT_MODEL, [encode(e) for e in events], prime=True)

    # Windows end at +5, +10, +15, +20 (watermark), then +25 (processing-time fallback).
    last_end = base + 25
    results = d.wait_window_end(DRIFT_MODEL, last_end, timeout=60)
    alerts = d.alerts(DRIFT_MODEL, idle_s=1.0)
    done_at = time.time()
    summary = [
        (r["window_start_ts"] - base, r["window_end_ts"] - base, r["n_events"], r["late_events"])
        for r in results
    ]
    context = f"\nalerts: {alerts}\nresults (start, end, n, late): {summary}{d.logs()}"

    assert [(k, a["feature"], a["statistic"], a["status"]) for k, a in alerts] == [
        (f"{DRIFT_MODEL}/amount/psi".encode(), "amount", "psi", "firing")
    ], context
    alert = alerts[0][1]

    # fire_after=1: the first judged window fires, the sliding window's first step [0, 5).
    start, end = base, base + 5
    assert alert["window"] == {"start": format_timestamp(start), "end": format_timestamp(end)}, (
        context
    )
    assert parse_rfc3339(alert["window"]["start"]) == start
    assert parse_rfc3339(alert["window"]["end"]) == end
    window_events = in_window(events, start, end)
    assert len(window_events) == 500

    offline = offline_report(profile, window_events, tmp_path / "window.jsonl")
    psi = offline.evaluations["amount"].results["psi"]
    assert psi.is_drift and offline.drifted == ["amount"], offline.to_json()

    assert psi.severity.label == "critical"
    exact = {
        "status": "firing",
        "severity": psi.severity.label,
        "model": DRIFT_MODEL,
        "model_version": VERSION,
        "feature": "amount",
        "statistic": "psi",
        "n_current": 500,
        "n_reference": 20_000,
        "reference_id": profile.id,
        "top_bins": offline.evaluations["amount"].top_bins,
        "runbook_url": f"{RUNBOOK}#streamdriftcritical",
    }
    assert {k: alert[k] for k in exact} == exact, context
    assert psi.n_current == 500 and profile.series["amount"].histogram.n == 20_000
    assert alert["value"] >= alert["threshold"] > 0, context
    assert alert["value"] == pytest.approx(psi.value, rel=1e-9), context
    assert alert["threshold"] == pytest.approx(psi.threshold, rel=1e-9), context
    assert psi.p_value is not None
    assert alert["p_value"] == pytest.approx(psi.p_value, rel=1e-9, abs=1e-300), context
    assert 0.0 <= alert["p_value"] < 1e-6, context
    assert alert["top_bins"] and all(
        set(b) == {"bin", "reference", "current"} for b in alert["top_bins"]
    ), context
    evaluated = parse_rfc3339(alert["evaluated_at"])
    first = parse_rfc3339(alert["first_detected_at"])
    assert produced_at - 1 <= first <= evaluated <= done_at + 1, context
    assert alert["first_detected_at"] == alert["evaluated_at"], context  # fire_after=1
    assert re.fullmatch(r"[0-9a-f]{32}", alert["alert_id"]), context

    # The audit trail: every judged window flags amount, and only amount.
    judged = [r for r in results if r["n_events"] >= 100]
    assert [r["window_end_ts"] for r in judged] == [base + 5 * k for k in range(1, 6)], context
    for r in judged:
        assert r["drifted"] == ["amount"], context
        assert r["reference_id"] == profile.id, context
        assert r["late_events"] == 0, context
        assert r["n_events"] == len(in_window(events, r["window_start_ts"], r["window_end_ts"])), (
            context
        )
    assert worker.is_running(), context


@pytest.mark.timeout(180)
def test_no_drift_no_alert(sliding: Deployment, tmp_path: Path) -> None:
    """Events drawn like the reference through several windows: judged evaluations, all
    without drift, and no alert."""
    d = sliding
    profile = d.references[STEADY_MODEL]
    base = next_base()
    events = make_events(STEADY_MODEL, 2000, rate=100.0, seed=23, start=base)
    d.send(STEADY_MODEL, [encode(e) for e in events], prime=True)

    last_end = base + 25
    results = d.wait_window_end(STEADY_MODEL, last_end, timeout=60)
    alerts = d.alerts(STEADY_MODEL, idle_s=1.5)
    context = f"\nalerts: {alerts}\nresults: {results}{d.logs()}"
    assert alerts == [], context

    expected_n = {base + 5: 500, base + 10: 1000, base + 15: 1000, base + 20: 1000, base + 25: 500}
    got = {r["window_end_ts"]: r for r in results if r["window_end_ts"] <= last_end}
    assert {end: r["n_events"] for end, r in got.items()} == expected_n, context
    for end, r in got.items():
        assert r["drifted"] == [], context
        assert r["late_events"] == 0, context
        assert r["reference_id"] == profile.id, context
        assert set(r["features"]) == {"amount", "age", "country", "prediction"}, context
        for name, f in r["features"].items():
            verdict = (f["judged"], f["drift"], f["severity"], f["n_current"])
            assert verdict == (True, False, "ok", expected_n[end]), (name, end - base, context)
        # The test data really is drift-free: the offline report agrees.
        window = in_window(events, r["window_start_ts"], end)
        offline = offline_report(profile, window, tmp_path / "window.jsonl")
        assert offline.drifted == [], offline.to_json()
        for name, f in r["features"].items():
            offline_psi = offline.evaluations[name].results["psi"].value
            assert f["psi"] == pytest.approx(offline_psi, rel=1e-9), (name, end - base, context)


@pytest.mark.timeout(180)
def test_metrics_equal_offline_report(tumbling: Deployment, tmp_path: Path) -> None:
    """One tumbling window holding exactly a known set of events: the exported statistics,
    p-values, sample counts and missing ratios equal ``stream-drift report --json``."""
    d, worker = tumbling, tumbling.worker
    profile = d.references[STATS_MODEL]
    # 600 events over [0, 60) s: one 60 s window; some missing ages and unseen countries.
    base = next_base()
    events = make_events(
        STATS_MODEL,
        600,
        rate=10.0,
        seed=31,
        shift=4.0,
        start=base,
        missing_age_every=10,
        unseen_country_every=25,
    )
    assert all(base <= e["ts"] < base + 60 for e in events)
    ref_path = profile.save(tmp_path / "ref.json")
    current = write_jsonl(tmp_path / "events.jsonl", events)
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stream_drift.cli",
            "report",
            "--reference",
            str(ref_path),
            "--current",
            str(current),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # All events are in one step, which only the processing-time fallback can close.
    d.send(STATS_MODEL, [encode(e) for e in events], prime=False)

    labels = {"model": STATS_MODEL, "model_version": VERSION}

    def window_scraped() -> Samples | None:
        s = scrape(worker)
        n = sample(s, "stream_drift_window_samples", feature="amount", **labels)
        return s if n is not None and n > 0 else None

    samples: Samples = wait_until(
        window_scraped, timeout=60, what=f"{STATS_MODEL}'s window in /metrics", workers=[worker]
    )
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, err.decode() + d.logs()
    report = json.loads(out)
    offline = build_report(profile, read_columns(current))
    context = f"\nreport: {json.dumps(report)[:3000]}{d.logs()}"

    assert report["reference_id"] == profile.id
    assert set(report["features"]) == {"amount", "age", "country", "prediction"}
    assert report["drifted"] == offline.drifted
    for feature, f in report["features"].items():

        def metric(name: str, stat: str | None = None, feature: str = feature) -> float | None:
            extra = {} if stat is None else {"statistic": stat}
            return sample(samples, name, feature=feature, **labels, **extra)

        assert metric("stream_drift_window_samples") == f["n_current"], (feature, context)
        assert metric("stream_drift_missing_ratio") == pytest.approx(
            f["missing_ratio"], rel=1e-12, abs=1e-15
        ), (feature, context)
        for stat in STATISTICS:
            value = metric("stream_drift_statistic", stat)
            if f[stat] is None:  # not applicable to this kind (ks: numeric, chi2: categorical)
                assert value is None, (feature, stat, context)
                continue
            assert value == pytest.approx(f[stat], rel=1e-9, abs=1e-12), (feature, stat, context)
            expected_p = offline.evaluations[feature].results[stat].p_value
            got_p = metric("stream_drift_p_value", stat)
            if expected_p is None:
                assert got_p is None, (feature, stat, context)
            else:
                assert got_p == pytest.approx(expected_p, rel=1e-9, abs=1e-300), (
                    feature,
                    stat,
                    context,
                )
            if f"{stat}_p_value" in f:  # the report's own p-value columns (psi, ks, chi2)
                assert got_p == pytest.approx(f[f"{stat}_p_value"], rel=1e-9, abs=1e-300), (
                    feature,
                    stat,
                    context,
                )
    n_amount = sample(samples, "stream_drift_window_samples", feature="amount", **labels)
    assert n_amount == len(events), context
    assert report["features"]["age"]["missing_ratio"] == pytest.approx(0.1), context
    assert sample(
        samples, "stream_drift_events_total", model=STATS_MODEL, outcome="accepted"
    ) == len(events), context
    # The results topic agrees: one evaluation of exactly these events.
    results = [r for r in d.results(STATS_MODEL) if r["window_start_ts"] == base]
    assert [(r["window_end_ts"], r["n_events"]) for r in results] == [(base + 60, 600)], context


@pytest.mark.timeout(180)
def test_bad_records_are_dead_lettered_and_counts_stay_exact(sliding: Deployment) -> None:
    """Malformed, ill-typed, unknown-model and oversize records go to the dead-letter topic
    with the reason and their exact bytes; good events are counted exactly once."""
    d, worker = sliding, sliding.worker
    good = make_events(DEADLETTER_MODEL, 50, rate=10.0, seed=41, start=next_base())
    padded = dict(good[0], event_id="padded", pad="x" * (MAX_MESSAGE_BYTES + 100))
    # (value, reason, label of the events_total{outcome="invalid"} series)
    bad: list[tuple[bytes, str, str]] = [
        (b'{"model": "fraud-dl", "features": {"amount": 1', "malformed_json", "_unknown"),
        (b'\xff\xfe{"model": "fraud-dl"}', "malformed_json", "_unknown"),
        (b'[{"model": "fraud-dl", "features": {"amount": 1.0}}]', "not_an_object", "_unknown"),
        (b'{"features": {"amount": 1.0}, "prediction": 0.2}', "missing_model", "_unknown"),
        (
            b'{"model": "fraud-dl", "features": {"amount": [1, 2]}}',
            "invalid_type",
            DEADLETTER_MODEL,
        ),
        (
            b'{"model": "fraud-dl", "features": {"amount": 1.0}, "prediction": {"p": [0]}}',
            "invalid_type",
            DEADLETTER_MODEL,
        ),
        (b'{"model": "no-such-model", "features": {"amount": 1.0}}', "unknown_model", "_unknown"),
        # a name no reference knows never becomes a label value, whatever the reason
        (b'{"model": "junk-7f3a", "features": {"amount": [1]}}', "invalid_type", "_unknown"),
        # a skewed clock (the year 3000): refused, so it cannot make the later events late
        (
            encode(dict(good[1], event_id="future", ts=32_503_680_000.0)),
            "future_timestamp",
            DEADLETTER_MODEL,
        ),
        (encode(padded), "oversize", "_unknown"),
    ]
    assert len(bad[-1][0]) > MAX_MESSAGE_BYTES
    # Interleave: one bad record after every five good ones.
    values: list[bytes] = []
    keys: list[bytes | None] = []
    expected_reason: dict[int, tuple[bytes, str]] = {}
    bad_iter = iter(bad)
    for i, event in enumerate(good):
        values.append(encode(event))
        keys.append(None)
        if i % 5 == 4:
            value, reason, _ = next(bad_iter)
            expected_reason[len(values)] = (value, reason)
            values.append(value)
            keys.append(f"key-{len(values)}".encode())
    assert len(expected_reason) == len(bad)
    metas = d.send(DEADLETTER_MODEL, values, keys, prime=False)

    # Dead letters: one per bad record, reason and exact bytes, pointing at the source record.
    sources = {(m.partition, m.offset): i for i, m in enumerate(metas)}

    def ours(records: list[tuple[bytes | None, dict[str, Any]]]) -> list[dict[str, Any]]:
        return [
            v
            for _, v in records
            if v["source"]["topic"] == d.topics.events
            and (v["source"]["partition"], v["source"]["offset"]) in sources
        ]

    def dead_letters() -> list[dict[str, Any]] | None:
        found = ours(read_json(d.bootstrap, d.topics.deadletter, idle_s=0.3))
        return found if len(found) >= len(bad) else None

    letters = wait_until(dead_letters, timeout=60, what="the dead letters", workers=[worker])
    context = f"\ndead letters: {letters}{d.logs()}"
    # The Kafka record timestamps as stored (the producer's metadata may differ by a rounding).
    stored = {
        (r.partition, r.offset): r.timestamp
        for r in read_topic(d.bootstrap, d.topics.events, idle_s=0.5, timeout_s=30.0)
    }
    assert len(letters) == len(bad), context
    for letter in letters:
        index = sources[(letter["source"]["partition"], letter["source"]["offset"])]
        assert index in expected_reason, (letter, context)
        value, reason = expected_reason[index]
        assert letter["reason"] == reason, (letter, context)
        assert letter["detail"], (letter, context)
        assert base64.b64decode(letter["original_base64"]) == value, (letter, context)
        assert letter["key_base64"] == base64.b64encode(keys[index] or b"").decode(), context
        try:
            text: str | None = value.decode()
        except UnicodeDecodeError:
            text = None
        assert letter["original"] == text, (letter, context)
        where = (letter["source"]["partition"], letter["source"]["offset"])
        assert letter["source"]["timestamp_ms"] == stored[where], (letter, context)
    dead_indices = sorted(
        sources[(x["source"]["partition"], x["source"]["offset"])] for x in letters
    )
    assert dead_indices == sorted(expected_reason), context

    # Counters: accepted exact, invalid by model label, dead letters by reason.
    def counted() -> Samples | None:
        s = scrape(worker)
        n = sample(s, "stream_drift_events_total", model=DEADLETTER_MODEL, outcome="accepted")
        return s if n == len(good) else None

    wait_until(counted, timeout=30, what="the accepted count", workers=[worker])
    time.sleep(2.5)  # two more flush intervals: nothing may be counted twice
    samples = scrape(worker)
    context = f"\n{worker.metrics_text()}{d.logs()}"

    def events_total(model: str, outcome: str) -> float | None:
        return sample(samples, "stream_drift_events_total", model=model, outcome=outcome)

    assert events_total(DEADLETTER_MODEL, "accepted") == len(good), context
    invalid_by_label: dict[str, int] = {}
    by_reason: dict[str, int] = {}
    for _, reason, label in bad:
        invalid_by_label[label] = invalid_by_label.get(label, 0) + 1
        by_reason[reason] = by_reason.get(reason, 0) + 1
    for label, n in invalid_by_label.items():
        assert events_total(label, "invalid") == n, (label, context)
    assert events_total("no-such-model", "accepted") is None, context
    assert events_total("no-such-model", "invalid") is None, context  # no label per junk name
    assert events_total("junk-7f3a", "invalid") is None, context
    dead = {
        dict(labels)["reason"]: value
        for (name, labels), value in samples.items()
        if name == "stream_drift_deadletter_total"
    }
    assert dead == by_reason, context

    health = worker.health()
    assert health.get("status") == "ok", (health, context)
    assert worker.is_running(), context


@pytest.mark.timeout(240)
def test_two_workers_split_partitions_and_count_every_event_once(pair: Deployment) -> None:
    """Two workers of one app share the events partitions; the merged window holds every
    produced event exactly once."""
    d = pair
    a, b = d.workers
    all_partitions = set(range(EVENT_PARTITIONS))
    partials_partitions = set(range(d.settings.topics.partitions.partials))

    def split() -> tuple[dict[str, Any], dict[str, Any]] | None:
        ha, hb = a.health(), b.health()
        ia, ib = set(ha.get("ingest_partitions") or ()), set(hb.get("ingest_partitions") or ())
        sa, sb = set(ha.get("stage2_partitions") or ()), set(hb.get("stage2_partitions") or ())
        ok = (
            ia
            and ib
            and not ia & ib
            and ia | ib == all_partitions
            and sa
            and sb
            and not sa & sb
            and sa | sb == partials_partitions
        )
        return (ha, hb) if ok else None

    ha, hb = wait_until(
        split,
        timeout=90,
        what="both workers owning disjoint partitions",
        workers=d.workers,
        interval=0.5,
    )
    # M events in one tumbling minute, spread over the 4 events partitions.
    base = next_base()
    events = make_events(SPLIT_MODEL, 1000, rate=20.0, seed=53, start=base)
    assert all(base <= e["ts"] < base + 60 for e in events)
    d.send(SPLIT_MODEL, [encode(e) for e in events], prime=False)

    def accepted(w: WorkerProcess) -> float:
        s = scrape(w)
        return sample(s, "stream_drift_events_total", model=SPLIT_MODEL, outcome="accepted") or 0

    wait_until(
        lambda: accepted(a) + accepted(b) >= len(events),
        timeout=60,
        what=f"{len(events)} accepted events over both workers",
        workers=d.workers,
    )
    d.wait_results(
        SPLIT_MODEL,
        lambda rs: any(r["window_start_ts"] == base for r in rs),
        timeout=60,
        what=f"the evaluation of the {SPLIT_MODEL} window",
    )
    time.sleep(1.0)  # a flush interval: anything counted twice would show now
    counts = (accepted(a), accepted(b))
    results = [r for r in d.results(SPLIT_MODEL, idle_s=1.0) if r["window_start_ts"] == base]
    context = (
        f"\nhealth at split: {ha} / {hb}\naccepted per worker: {counts}\n"
        f"results: {[(r['window'], r['n_events'], r['late_events']) for r in results]}{d.logs()}"
    )
    assert sum(counts) == len(events), context
    assert all(c > 0 for c in counts), context  # both workers ingested a share
    assert [(r["window_end_ts"], r["n_events"], r["late_events"]) for r in results] == [
        (base + 60, len(events), 0)
    ], context
    for name, f in results[0]["features"].items():
        assert f["n_current"] == len(events), (name, context)
    for w in d.workers:
        assert w.is_running(), context
        assert w.health().get("status") == "ok", context


@pytest.mark.timeout(120)
def test_backlog_over_partitions_is_not_counted_late(sliding: Deployment) -> None:
    """A burst of 20 s of events over 4 partitions, sent at once (a replay, or a worker
    catching up): every event lands in its window, none is late."""
    d = sliding
    base = next_base()
    events = make_events(BACKLOG_MODEL, 2000, rate=100.0, seed=61, start=base)
    d.send(BACKLOG_MODEL, [encode(e) for e in events], prime=False)
    results = d.wait_window_end(BACKLOG_MODEL, base + 25, timeout=60)
    got = [
        (r["window_end_ts"] - base, r["n_events"], r["late_events"])
        for r in results
        if r["window_end_ts"] <= base + 25
    ]
    assert got == [(5, 500, 0), (10, 1000, 0), (15, 1000, 0), (20, 1000, 0), (25, 500, 0)], (
        f"(window end, n, late): {got}{d.logs()}"
    )
