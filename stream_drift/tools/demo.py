"""``stream-drift demo``: the whole system on one machine, no Kafka installed.

Starts the embedded broker, creates the topics, builds and publishes references for four
synthetic models, runs a worker, and produces a live stream (event time = wall time) in which
a drift is injected at a known moment into known features and into nothing else. One model
(``credit``) is labelled: its labels follow its events a second later, and at the same moment
its concept changes (what the label depends on) while its features and predictions keep their
distributions, a change only the concept-drift detector can see. A live terminal view shows
the statistics per model and feature and the alerts as they fire; at the end it prints what
was injected when and what was detected when (``--json``: as one object).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import numpy as np

from stream_drift.config import Settings
from stream_drift.pipeline.alert_record import Alert
from stream_drift.pipeline.alert_text import format_timestamp, parse_timestamp
from stream_drift.pipeline.evaluator import CONCEPT_FEATURE
from stream_drift.pipeline.reference import ReferenceProfile, build_reference

T = TypeVar("T")

# The demo shows only what its own worker publishes: a record that is not an alert is skipped.
_ALERTS = msgspec.json.Decoder(Alert)

Generator = Callable[[np.random.Generator, int, bool], dict[str, Any]]


def _fraud(rng: np.random.Generator, n: int, drifted: bool) -> dict[str, Any]:
    # Drift: transaction amounts move up by 0.8 σ on the log scale (a new merchant mix).
    return {
        "amount": rng.lognormal(3.0 + (0.64 if drifted else 0.0), 0.8, n),
        "age": rng.normal(40, 12, n).round(),
        "country": rng.choice(["DE", "FR", "US", "GB", "ES"], n, p=[0.3, 0.25, 0.2, 0.15, 0.1]),
        "prediction": rng.beta(2, 8, n),
    }


def _churn(rng: np.random.Generator, n: int, drifted: bool) -> dict[str, Any]:
    # Drift: 20 points of customers move from the "monthly" to the "trial" plan.
    p = [0.3, 0.3, 0.15, 0.25] if drifted else [0.5, 0.3, 0.15, 0.05]
    return {
        "tenure_months": rng.gamma(2.0, 12.0, n),
        "plan": rng.choice(["monthly", "annual", "family", "trial"], n, p=p),
        "support_calls": rng.poisson(1.5, n).astype(float),
        "prediction": rng.beta(3, 5, n),
    }


def _credit(rng: np.random.Generator, n: int, drifted: bool) -> dict[str, Any]:
    # Concept change: the model scores debt_ratio as it learnt; after the change, defaults
    # follow income instead. Features and scores keep their distributions.
    income = rng.normal(0.0, 1.0, n)
    debt_ratio = rng.normal(0.0, 1.0, n)
    score = 1.0 / (1.0 + np.exp(-2.5 * debt_ratio))
    driver = -2.5 * income if drifted else 2.5 * debt_ratio
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-driver))).astype(int)
    return {"income": income, "debt_ratio": debt_ratio, "prediction": score, "label": label}


def _pricing(rng: np.random.Generator, n: int, drifted: bool) -> dict[str, Any]:
    # The control model: never drifts.
    return {
        "basket_size": rng.poisson(4, n).astype(float) + 1,
        "hour": rng.integers(0, 24, n).astype(float),
        "channel": rng.choice(["app", "web", "store"], n, p=[0.5, 0.3, 0.2]),
        "prediction": rng.normal(20, 5, n),
    }


@dataclass(frozen=True)
class DemoModel:
    name: str
    version: str
    generate: Generator
    drifting: tuple[str, ...]


MODELS = (
    DemoModel("fraud", "3", _fraud, ("amount",)),
    DemoModel("churn", "12", _churn, ("plan",)),
    DemoModel("pricing", "1", _pricing, ()),
    DemoModel("credit", "2", _credit, (CONCEPT_FEATURE,)),
)
"""``drifting``: the features a drift goes into; ``(predictions)`` for a concept change."""

LABEL_DELAY_SECONDS = 1.0
"""Labels of the labelled model are sent this long after their events."""


def demo_settings(bootstrap: str, web_port: int, data_dir: str) -> Settings:
    """Short windows so a drift shows within seconds; timeouts tuned for the embedded broker."""
    return Settings().override(
        {
            "app_id": "stream-drift-demo",
            "kafka.bootstrap_servers": bootstrap,
            "kafka.session_timeout_seconds": 6,
            "kafka.heartbeat_interval_seconds": 1,
            "kafka.rebalance_timeout_seconds": 6,
            "window.size_seconds": 10,
            "window.step_seconds": 5,
            "window.allowed_lateness_seconds": 1,
            "window.idle_timeout_seconds": 3,
            "ingest.flush_interval_seconds": 0.5,
            "alerts.fire_after": 2,
            "alerts.resolve_after": 2,
            "alerts.cooldown_seconds": 60,
            # The labelled model: a join co-partitioned by event_id (equal partition counts).
            "labels.enabled": True,
            "labels.min_pairs": 50,
            "topics.partitions.labels": Settings().topics.partitions.events,
            "web.port": web_port,
            "worker.data_dir": data_dir,
        }
    )


def build_references(seed: int = 7, n: int = 20_000) -> list[ReferenceProfile]:
    rng = np.random.default_rng(seed)
    out = []
    for m in MODELS:
        columns = m.generate(rng, n, False)
        cols = {k: (v.tolist() if v.dtype.kind in "US" else v) for k, v in columns.items()}
        out.append(
            build_reference(
                cols,
                model=m.name,
                model_version=m.version,
                prediction=["prediction"],
                label="label" if "label" in cols else None,
                # No row sample: the demo shows per-feature and concept drift only.
                sample_rows=0,
                source="demo training set",
            )
        )
    return out


@dataclass
class DemoState:
    """What the live view shows and the summary reports."""

    started_at: float
    inject_at: float
    produced: int = 0
    results: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    evaluations: int = 0

    def injected(self) -> list[dict[str, Any]]:
        return [
            {"model": m.name, "feature": f, "at": format_timestamp(self.inject_at)}
            for m in MODELS
            for f in m.drifting
        ]

    def summary(self) -> dict[str, Any]:
        targets = {(m.name, f) for m in MODELS for f in m.drifting}
        detected: dict[tuple[str, str], dict[str, Any]] = {}
        false_alerts = []
        for a in self.alerts:
            if a.status != "firing":
                continue
            key = (a.model, a.feature)
            at = parse_timestamp(a.evaluated_at)
            if key in targets and at is not None and at >= self.inject_at:
                if key not in detected:
                    detected[key] = {
                        "model": key[0],
                        "feature": key[1],
                        "statistic": a.statistic,
                        "at": a.evaluated_at,
                        "delay_seconds": round(at - self.inject_at, 1),
                    }
            else:
                false_alerts.append(a)
        return {
            "injected": self.injected(),
            "alerts": msgspec.to_builtins(self.alerts),
            "detected": sorted(detected.values(), key=lambda d: (d["model"], d["feature"])),
            "false_alerts": msgspec.to_builtins(false_alerts),
            "missed": [{"model": m, "feature": f} for m, f in sorted(targets - set(detected))],
            "events_produced": self.produced,
            "evaluations": self.evaluations,
        }


async def _produce(
    bootstrap: str,
    topics: tuple[str, str],
    state: DemoState,
    stop: asyncio.Event,
    rate: float,
    seed: int,
) -> None:
    from collections import deque

    from aiokafka import AIOKafkaProducer

    events_topic, labels_topic = topics
    labels: deque[tuple[float, bytes, bytes]] = deque()  # (due, event id, label record)
    rng = np.random.default_rng(seed)
    encode = msgspec.json.Encoder().encode
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10)
    await producer.start()
    try:
        tick = 0.1
        per_tick = max(1, round(rate * tick))
        next_at = time.time()
        while not stop.is_set():
            now = time.time()
            drifted = now >= state.inject_at
            for m in MODELS:
                cols = m.generate(rng, per_tick, drifted)
                for i in range(per_tick):
                    ts = now + i * tick / per_tick
                    features = {
                        k: _py(v[i]) for k, v in cols.items() if k not in ("prediction", "label")
                    }
                    event = {
                        "model": m.name,
                        "model_version": m.version,
                        "ts": round(ts, 3),
                        "features": features,
                        "prediction": _py(cols["prediction"][i]),
                    }
                    key = None
                    if "label" in cols:
                        # Keyed by event id, as DriftEmitter does: the label lands on the same
                        # partition number of the labels topic.
                        eid = f"{m.name}-{state.produced + i}"
                        event["event_id"] = eid
                        key = eid.encode()
                        label = {"model": m.name, "event_id": eid, "label": _py(cols["label"][i])}
                        labels.append((ts + LABEL_DELAY_SECONDS, key, encode(label)))
                    await producer.send(events_topic, encode(event), key=key)
                state.produced += per_tick
            while labels and labels[0][0] <= now:
                _, key, value = labels.popleft()
                await producer.send(labels_topic, value, key=key)
            next_at += tick
            await asyncio.sleep(max(0.0, next_at - time.time()))
        await producer.flush()
    finally:
        await producer.stop()


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


async def _follow(
    bootstrap: str, topic: str, decode: Callable[[bytes], T], handle: Callable[[T], None]
) -> None:
    from stream_drift.app.kafka_io import follow

    async for record in follow(bootstrap, topic, from_beginning=True):
        with contextlib.suppress(ValueError):  # an unreadable record is not shown
            handle(decode(record.value))


def _table(state: DemoState) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    elapsed = time.time() - state.started_at
    to_inject = state.inject_at - time.time()
    title = f"stream-drift demo  t+{elapsed:4.0f}s  events {state.produced:,}  " + (
        f"drift injected in {to_inject:.0f}s" if to_inject > 0 else "drift injected"
    )
    table = Table(title=title, title_justify="left")
    for col in ("model", "feature", "window n", "PSI", "threshold", "KS / χ² p", "state"):
        table.add_column(col, justify="left" if col in ("model", "feature", "state") else "right")
    firing = {(a.model, a.feature): a for a in state.alerts}
    for (model, feature), f in sorted(state.results.items()):
        alert = firing.get((model, feature))
        status = alert.status if alert else "ok"
        style = {"firing": "bold red", "escalated": "bold red", "resolved": "green"}.get(status, "")
        p = f.get("ks_p_value") if f.get("ks_p_value") is not None else f.get("chi2_p_value")
        table.add_row(
            model,
            feature,
            f"{f['n_current']:,}",
            "–" if f.get("psi") is None else f"{f['psi']:.3f}",
            "–" if f.get("psi_threshold") is None else f"{f['psi_threshold']:.3f}",
            "–" if p is None else f"{p:.1e}",
            Text(status.upper() if alert else ("drift" if f.get("drift") else "ok"), style=style),
        )
    lines = [
        Text(a.summary, style="red" if a.status != "resolved" else "green")
        for a in state.alerts[-6:]
    ]
    return Group(table, *lines)


async def run_demo(
    *,
    duration: float | None,
    inject_after: float = 20.0,
    rate: float = 200.0,
    live: bool = True,
    bootstrap: str | None = None,
    web_port: int | None = None,
    seed: int = 11,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the demo; return the summary (see the module docstring)."""
    from stream_drift.app.kafka_io import publish_reference
    from stream_drift.app.worker import prepare_topics
    from stream_drift.tools.embedded import EmbeddedBroker, find_free_port
    from stream_drift.tools.supervisor import WorkerProcess

    broker = None
    workdir = Path(tempfile.mkdtemp(prefix="stream-drift-demo-"))
    worker = None
    try:
        if bootstrap is None:
            broker = EmbeddedBroker(log_path=workdir / "broker.log")
            broker.start()
            bootstrap = broker.bootstrap_servers
            echo(f"embedded broker (Tansu) at {bootstrap}, pid {broker.pid}")
        port = web_port or find_free_port()
        settings = demo_settings(bootstrap, port, str(workdir / "data"))
        await asyncio.to_thread(prepare_topics, settings)
        for profile in build_references():
            await publish_reference(bootstrap, settings.topics.references, profile)
            echo(f"reference {profile.id} published for {profile.key}")
        worker = WorkerProcess(settings, workdir, "worker")
        worker.start()
        echo(
            f"worker pid {worker.pid} starting; metrics at {worker.base_url}/metrics "
            f"(log {worker.log_path})"
        )
        await asyncio.to_thread(worker.wait_ready, 90.0)
        now = time.time()
        state = DemoState(started_at=now, inject_at=now + inject_after)
        echo(
            f"worker ready; streaming {len(MODELS)} models at "
            f"{rate:.0f} events/s each; drift goes into "
            + ", ".join(f"{m.name}.{f}" for m in MODELS for f in m.drifting)
            + f" at {format_timestamp(state.inject_at)}"
        )
        stop = asyncio.Event()

        def on_result(r: dict[str, Any]) -> None:
            state.evaluations += 1
            for feature, f in r.get("features", {}).items():
                state.results[(r["model"], feature)] = f

        def on_alert(a: Alert) -> None:
            state.alerts.append(a)

        tasks = [
            asyncio.create_task(
                _produce(
                    bootstrap,
                    (settings.topics.events, settings.topics.labels),
                    state,
                    stop,
                    rate,
                    seed,
                )
            ),
            asyncio.create_task(_follow(bootstrap, settings.topics.results, json.loads, on_result)),
            asyncio.create_task(
                _follow(bootstrap, settings.topics.alerts, _ALERTS.decode, on_alert)
            ),
        ]
        deadline = None if duration is None else state.started_at + duration
        try:
            if live:
                from rich.live import Live

                with Live(_table(state), refresh_per_second=2) as view:
                    while deadline is None or time.time() < deadline:
                        await asyncio.sleep(0.5)
                        view.update(_table(state))
                        if any(t.done() and t.exception() for t in tasks):
                            break
            else:
                while deadline is None or time.time() < deadline:
                    await asyncio.sleep(0.5)
                    if any(t.done() and t.exception() for t in tasks):
                        break
        finally:
            stop.set()
            await asyncio.sleep(0.5)
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        return state.summary()
    finally:
        if worker is not None:
            await asyncio.to_thread(worker.stop)
        if broker is not None:
            broker.stop()


def render_summary(summary: dict[str, Any]) -> Any:
    """The end-of-demo verdict: what was injected when, what was detected when."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title="What was injected, and when it was detected", title_justify="left")
    for col in ("model", "feature", "injected at", "detected at", "statistic", "delay"):
        table.add_column(col)
    detected = {(d["model"], d["feature"]): d for d in summary["detected"]}
    for inj in summary["injected"]:
        d = detected.get((inj["model"], inj["feature"]))
        table.add_row(
            inj["model"],
            inj["feature"],
            inj["at"],
            d["at"] if d else Text("not detected", style="bold red"),
            d["statistic"] if d else "–",
            f"{d['delay_seconds']:.1f} s" if d else "–",
        )
    false_alerts = summary["false_alerts"]
    verdict = Text(
        f"{len(summary['detected'])}/{len(summary['injected'])} injected drifts detected, "
        f"{len(false_alerts)} false alert(s); {summary['events_produced']:,} events, "
        f"{summary['evaluations']} evaluations.",
        style="bold green" if not false_alerts and not summary["missed"] else "bold red",
    )
    parts: list[Any] = [table, verdict]
    parts += [Text("false alert: " + str(a.get("summary")), style="red") for a in false_alerts]
    return Group(*parts)
