"""Broker faults under a real worker: the broker paused for 10 s, and the broker restarted.

Each test runs its own embedded (Tansu) broker, not the session's, because it pauses
(SIGSTOP / SIGCONT on that broker's PID) or replaces it. The worker is a real
``stream-drift worker`` process (:class:`~stream_drift.tools.supervisor.WorkerProcess`).

- **Paused broker.** A paced stream is being ingested when the broker freezes for 10 s; the
  producer and the worker both wait across the pause. Nothing may be lost or counted twice:
  the one window the stream falls in must count exactly the records of the events topic.
- **Restarted broker.** Tansu keeps nothing across a restart (topics, offsets and groups are
  gone, KAFKA-LOCAL.md §5): the worker's ``/health`` must turn ``failing`` (HTTP 503) within
  30 s, so that an orchestrator notices, and ``/health/ready`` must stop answering ready.
  The timeline of all three views (``/health/live`` too) is printed and in failure messages.
- **Restart on the same port.** ``EmbeddedBroker`` itself must be able to start again on the
  port it just left while clients were connected.

The paced producer (:class:`PacedSender`) and the window/log helpers are shared with
``test_faults_scaling.py`` and ``test_faults_report.py``. Every wait is bounded; failures
carry the workers' log tails (repeats dropped), their most frequent warnings and errors, and
the broker's log tail.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from kafka_helpers import describe_partitions, read_topic, running

# Shared with the other real-broker tests (tests/ is on sys.path).
from test_worker_kafka import (
    EVENT_PARTITIONS,
    Deployment,
    encode,
    make_events,
    make_reference,
    publish,
    start_all,
    stop_all,
    wait_until,
)
from test_worker_recovery import accepted, recovery_settings, renumber, summary, worker_of

from stream_drift.app.tables import STATE_TABLE
from stream_drift.config import Settings
from stream_drift.tools.embedded import EmbeddedBroker, find_free_port
from stream_drift.tools.supervisor import WorkerProcess

pytestmark = pytest.mark.kafka

BASE = 1_772_323_200.0
"""2026-03-01T00:00:00Z: in the past (events more than ``window.max_future_seconds`` ahead of
the worker's clock are dead-lettered) and a multiple of every window step used here."""

# One 120 s window holding a whole stream whose event times span [0, SPAN) s. It closes on the
# idle fallback once every source has been silent for the idle timeout *and* the max event
# time plus that silence passes the window's end: ~13 s after the traffic stops. A stall of
# the pipeline shorter than that (a 10 s pause, a rebalance) cannot close it early.
SPAN = 108.0
WINDOW_120 = {
    "size_seconds": 120,
    "step_seconds": 120,
    "allowed_lateness_seconds": 1.0,
    "idle_timeout_seconds": 8.0,
}
CHUNK = 2_000
"""``ingest.replay_chunk_records``: small, so that every rebalance or restart replays some."""


# ------------------------------------------------------------------------------- broker


class OwnBroker:
    """A test's own embedded broker on a fixed port: paused, resumed or replaced by PID."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = find_free_port()
        self.generation = 0
        self.paused = False
        self.broker = self._new()

    def _new(self) -> EmbeddedBroker:
        self.generation += 1
        log_path = self.workdir / f"tansu-{self.generation}.log"
        return EmbeddedBroker(port=self.port, log_path=log_path)

    @property
    def bootstrap_servers(self) -> str:
        return self.broker.bootstrap_servers

    @property
    def pid(self) -> int:
        pid = self.broker.pid
        assert pid is not None, "broker not running"
        return pid

    def start(self) -> None:
        self.broker.start()

    def pause(self) -> None:
        """SIGSTOP this test's broker (its PID only)."""
        os.kill(self.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.paused and self.broker.is_running():
            os.kill(self.pid, signal.SIGCONT)
        self.paused = False

    def restart(self) -> float:
        """Stop the broker and start an empty one on the same port; returns the seconds the
        port was closed (~5 s: Tansu does not exit on SIGTERM while clients are connected, so
        ``EmbeddedBroker.stop`` SIGKILLs it after its 5 s grace)."""
        stopped = time.monotonic()
        self.broker.stop()
        self.broker = self._new()
        self.broker.start()
        return time.monotonic() - stopped

    def stop(self) -> None:
        self.resume()  # a stopped process would only act on SIGTERM after a SIGCONT
        self.broker.stop()

    def log_tail(self, lines: int = 25) -> str:
        return f"\n----- tansu #{self.generation} log tail -----\n{self.broker.log_tail(lines)}"


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[OwnBroker]:
    with running(OwnBroker(tmp_path)) as broker:
        yield broker


# ----------------------------------------------------------------------------- producer


@dataclass
class PacedSender:
    """Sends ``values`` to ``topic`` from a thread: ``batch`` records at a time, ``gap_s``
    seconds apart; value ``i`` goes to partition ``i % partitions`` (each partition gets its
    events in time order), or to the producer's choice with ``partitions=0``.

    A record whose delivery fails is sent again (up to ``attempts`` times): the producer waits
    across a paused broker (``request_timeout_ms`` longer than the pause) and retries across
    an outage. ``gates`` holds batches back: the batch starting at index ``i`` is sent only once
    ``gates[i]`` is set (bounded by ``timeout_s`` like everything else).
    """

    bootstrap: str
    topic: str
    values: Sequence[bytes]
    batch: int
    gap_s: float
    partitions: int = EVENT_PARTITIONS
    gates: dict[int, threading.Event] = field(default_factory=dict)
    attempts: int = 10
    request_timeout_ms: int = 60_000
    timeout_s: float = 180.0
    acked: int = 0
    resent: int = 0
    errors: list[str] = field(default_factory=list)
    slowest_batch_s: float = 0.0
    finished_at: float | None = None
    failure: BaseException | None = None

    def __post_init__(self) -> None:
        misplaced = [i for i in self.gates if i % self.batch]
        assert not misplaced, f"gates {misplaced} are not at batch starts (batch {self.batch})"
        self.stop_event = threading.Event()
        self._thread = threading.Thread(target=self._main, name="paced-sender", daemon=True)

    def start(self) -> PacedSender:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop before the next batch (the test is over or failed)."""
        self.stop_event.set()
        for gate in self.gates.values():
            gate.set()

    def join(self, timeout: float) -> None:
        """Wait for the last batch's acknowledgement; raise what went wrong."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(
                f"the producer did not finish within {timeout:.0f} s ({self.describe()})"
            )
        if self.failure is not None:
            raise AssertionError(f"the producer failed: {self.failure!r} ({self.describe()})")

    @property
    def done(self) -> bool:
        return self.finished_at is not None

    def describe(self) -> str:
        return (
            f"{self.acked}/{len(self.values)} acknowledged, {self.resent} resent, slowest batch "
            f"{self.slowest_batch_s:.1f} s, errors {self.errors[:3]}"
        )

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by join()
            self.failure = exc

    async def _run(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            linger_ms=5,
            request_timeout_ms=self.request_timeout_ms,
            retry_backoff_ms=200,
        )
        async with asyncio.timeout(self.timeout_s):
            await producer.start()
            try:
                for lo in range(0, len(self.values), self.batch):
                    gate = self.gates.get(lo)
                    while gate is not None and not gate.is_set():
                        await asyncio.sleep(0.05)
                    if self.stop_event.is_set():
                        return
                    started = time.monotonic()
                    await self._send_batch(
                        producer, range(lo, min(lo + self.batch, len(self.values)))
                    )
                    self.slowest_batch_s = max(self.slowest_batch_s, time.monotonic() - started)
                    await asyncio.sleep(self.gap_s)
                self.finished_at = time.monotonic()
            finally:
                await producer.stop()

    async def _send_batch(self, producer: AIOKafkaProducer, indices: Sequence[int]) -> None:
        pending = list(indices)
        for attempt in range(self.attempts):
            futures: dict[int, Any] = {}
            failed: list[int] = []
            for i in pending:
                partition = i % self.partitions if self.partitions else None
                try:
                    futures[i] = await producer.send(
                        self.topic, self.values[i], partition=partition
                    )
                except Exception as exc:  # buffer full for too long, metadata unavailable
                    self.errors.append(repr(exc))
                    failed.append(i)
            outcomes = await asyncio.gather(*futures.values(), return_exceptions=True)
            for i, outcome in zip(futures, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    self.errors.append(repr(outcome))
                    failed.append(i)
            self.acked += len(pending) - len(failed)
            if not failed:
                return
            self.resent += len(failed)
            pending = sorted(failed)
            await asyncio.sleep(min(0.5 * 2**attempt, 5.0))
        raise RuntimeError(f"{len(pending)} records not delivered after {self.attempts} attempts")


# ------------------------------------------------------------------------------ helpers


def paced_events(model: str, n: int, *, seed: int, base: float = BASE) -> list[dict[str, Any]]:
    """``n`` events drawn like the reference, event times spread evenly over [0, SPAN) s."""
    return renumber(make_events(model, n, rate=n / SPAN, seed=seed, start=base), model)


def stored_records(bootstrap: str, topic: str) -> int:
    """Records in ``topic`` (read without a group until idle): what was really produced."""
    return len(read_topic(bootstrap, topic, idle_s=1.0, timeout_s=60.0))


def window_result(d: Deployment, model: str, base: float, *, timeout: float) -> dict[str, Any]:
    """The one result of the window starting at ``base``, after it appeared and a tick and a
    flush more (a second result for it would show by then)."""
    d.wait_results(
        model,
        lambda rs: any(r["window_start_ts"] == base for r in rs),
        timeout=timeout,
        what=f"the {model} window starting at {base}",
    )
    time.sleep(1.5)
    results = [r for r in d.results(model, idle_s=1.0) if r["window_start_ts"] == base]
    assert len(results) == 1, f"{len(results)} results for one window: {summary(results, base)}"
    return results[0]


def health_views(worker: WorkerProcess) -> dict[str, tuple[int, dict[str, Any]]]:
    """(HTTP status, JSON body) of ``/health``, ``/health/ready`` and ``/health/live``;
    status 0 when the worker does not answer."""
    out = {}
    for path in ("/health", "/health/ready", "/health/live"):
        try:
            code, body = worker.get(path)
            data = json.loads(body)
        except (OSError, ValueError) as exc:
            code, data = 0, {"error": repr(exc)}
        out[path] = (code, data if isinstance(data, dict) else {})
    return out


def brief(views: dict[str, tuple[int, dict[str, Any]]]) -> str:
    """One line of the three views: status code, status and problems of each."""
    parts = []
    for path, (code, body) in views.items():
        problems = body.get("problems")
        parts.append(f"{path} {code} {body.get('status')}" + (f" {problems}" if problems else ""))
    return " | ".join(parts)


def settings_for(broker: OwnBroker, tmp_path: Path, name: str, **overrides: Any) -> Settings:
    app_id = f"sd-{name}-{uuid.uuid4().hex[:8]}"
    return recovery_settings(broker.bootstrap_servers, tmp_path, app_id, WINDOW_120).override(
        {"ingest.replay_chunk_records": CHUNK, **overrides}
    )


def digest(worker: WorkerProcess, top: int = 8) -> str:
    """The worker log's most frequent WARNING/ERROR messages (numbers masked), with counts."""
    try:
        text = worker.log_path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        if "[WARNING]" in line or "[ERROR]" in line:
            message = re.sub(r"\d+", "N", line.split("] ", 3)[-1])[:160]
            counts[message] = counts.get(message, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
    return f"\n----- {worker.name}: most frequent warnings/errors -----\n" + "\n".join(
        f"{n:6d} x {m}" for m, n in ranked
    )


def tails(*workers: WorkerProcess, lines: int = 60) -> str:
    """The workers' log tails with repeated messages left out after their third occurrence
    (a retry loop would otherwise fill the whole tail)."""
    out = []
    for w in workers:
        try:
            text = w.log_path.read_text(errors="replace").splitlines()[-2000:]
        except FileNotFoundError:
            text = ["(no log)"]
        seen: dict[str, int] = {}
        kept = []
        for line in text:
            key = re.sub(r"\d+", "N", line.split("] ", 3)[-1])
            seen[key] = seen.get(key, 0) + 1
            if seen[key] <= 3:
                kept.append(line)
        out.append(
            f"\n----- {w.name} (pid {w.pid}, running={w.is_running()}) log tail, repeats "
            f"dropped -----\n" + "\n".join(kept[-lines:])
        )
    return "".join(out)


def ingest_crashed(worker: WorkerProcess) -> bool:
    try:
        return "ingest loop crashed" in worker.log_path.read_text(errors="replace")
    except FileNotFoundError:
        return False


# -------------------------------------------------------------------------------- tests

PAUSE_S = 10.0
PAUSE_EVENTS = 20_000


@pytest.mark.timeout(240)
def test_broker_paused_10s_mid_stream_loses_nothing(own_broker: OwnBroker, tmp_path: Path) -> None:
    """SIGSTOP the broker for 10 s while a worker ingests a paced stream, then SIGCONT: the
    worker keeps running (same process, ingest loop alive) and the stream's one window counts
    exactly the records produced, none late, every feature too."""
    model = "fraud-pause"
    settings = settings_for(own_broker, tmp_path, "pause")
    publish(settings, make_reference(model))
    worker = worker_of(settings, tmp_path, "worker")
    d = Deployment(settings, [worker], {})
    events = paced_events(model, PAUSE_EVENTS, seed=5)
    # ~25 s of sending: 50 batches of 400, 0.4 s apart; the pause lands in the first third.
    sender = PacedSender(d.bootstrap, settings.topics.events, [encode(e) for e in events], 400, 0.4)
    notes: list[str] = []
    try:
        start_all([worker])
        pid = worker.pid
        sender.start()
        wait_until(
            lambda: accepted(worker, model) >= PAUSE_EVENTS // 4,
            timeout=60,
            what=f"{PAUSE_EVENTS // 4} events accepted before the pause",
            workers=[worker],
            interval=0.1,
        )
        notes.append(f"paused at {accepted(worker, model):.0f} accepted, {sender.acked} acked")
        own_broker.pause()
        paused_at = time.monotonic()
        seen: list[str] = []
        try:
            while time.monotonic() - paused_at < PAUSE_S:
                line = brief(health_views(worker))
                if not seen or seen[-1].split(": ", 1)[1] != line:
                    seen.append(f"+{time.monotonic() - paused_at:4.1f} s: {line}")
                time.sleep(0.5)
        finally:
            own_broker.resume()
        resumed_at = time.monotonic()
        notes.append(f"paused {resumed_at - paused_at:.1f} s; views while paused: {seen}")

        notes.append(f"accepted at the resume: {accepted(worker, model):.0f}")
        sender.join(120)
        notes.append(
            f"producer done {(sender.finished_at or resumed_at) - resumed_at:.1f} s after the "
            f"resume: {sender.describe()}"
        )
        produced = stored_records(d.bootstrap, settings.topics.events)
        notes.append(f"records in the events topic: {produced}")
        result = window_result(d, model, BASE, timeout=90)
        notes.append(f"window result {time.monotonic() - resumed_at:.1f} s after the resume")
        ok = wait_until(
            lambda: (
                (v := health_views(worker))["/health"][0] == 200
                and v["/health"][1].get("status") == "ok"
                and v
            ),
            timeout=30,
            what="/health back to ok after the pause",
            workers=[worker],
        )
        notes.append(f"after: {brief(ok)}; accepted {accepted(worker, model):.0f} (with replays)")
        alive = worker.is_running() and worker.pid == pid
        crashed = ingest_crashed(worker)
        print("\n".join(notes))
        ctx = f"\n{chr(10).join(notes)}\nsender: {sender.describe()}"
        ctx += digest(worker) + tails(worker) + own_broker.log_tail()
    finally:
        sender.stop()
        stop_all([worker])

    assert alive, "the worker process died or was replaced" + ctx
    assert not crashed, "the ingest loop crashed" + ctx
    assert produced == PAUSE_EVENTS, "the test producer duplicated or lost records" + ctx
    assert (result["n_events"], result["late_events"]) == (produced, 0), (
        summary([result], BASE),
        ctx,
    )
    for name, feature in result["features"].items():  # no value is missing in this stream
        assert feature["n_current"] == produced, (name, ctx)


@pytest.mark.timeout(60)
def test_embedded_broker_restarts_on_its_port_right_after_a_stop(tmp_path: Path) -> None:
    """``EmbeddedBroker(port=P).start()`` right after the broker on P was stopped while a client
    was connected (a worker always is): the new broker must start, although the old
    connections linger in TIME_WAIT (the pre-launch check binds with ``SO_REUSEADDR``, as
    Tansu does; without it, it refused for ~60 s)."""
    port = find_free_port()
    first = EmbeddedBroker(port=port, log_path=tmp_path / "tansu-1.log")
    first.start()
    client = socket.create_connection(("127.0.0.1", port))
    try:
        first.stop()
    finally:
        client.close()
    second = EmbeddedBroker(port=port, log_path=tmp_path / "tansu-2.log")
    try:
        second.start()
    except RuntimeError as exc:
        pytest.fail(f"a broker cannot be restarted on its port right after stop(): {exc}")
    finally:
        second.stop()


RESTART_DEADLINE_S = 30.0


@pytest.mark.timeout(180)
@pytest.mark.parametrize("traffic", [False, True], ids=["idle", "traffic"])
def test_broker_restart_turns_health_failing_within_30s(
    own_broker: OwnBroker, tmp_path: Path, traffic: bool
) -> None:
    """A worker that ingested and committed; the broker is replaced by an empty one on the same
    port (topics, offsets and groups gone). ``/health`` must answer HTTP 503 with status
    ``failing`` and a non-empty ``problems`` within 30 s, and ``/health/ready`` 503 with it:
    with no events after the restart (``idle``), and with producers still sending
    (``traffic``: the events topic is auto-created again by their metadata requests, as on
    Tansu and on a Kafka with ``auto.create.topics.enable``)."""
    model = "fraud-restart"
    settings = settings_for(own_broker, tmp_path, "restart")
    publish(settings, make_reference(model))
    worker = worker_of(settings, tmp_path, "worker")
    d = Deployment(settings, [worker], {})
    first = paced_events(model, 2_000, seed=9)
    sender: PacedSender | None = None
    timeline: list[str] = []
    failing_at: float | None = None
    views: dict[str, tuple[int, dict[str, Any]]] = {}
    ctx = ""
    try:
        start_all([worker])
        values = [encode(e) for e in first]
        PacedSender(d.bootstrap, settings.topics.events, values, 500, 0.0).start().join(60)
        wait_until(
            lambda: (
                accepted(worker, model) >= len(first)
                and (h := worker.health()).get("last_commit_ok") is True
                and h.get("status") == "ok"
            ),
            timeout=60,
            what="the first events ingested and committed, /health ok",
            workers=[worker],
        )
        before = brief(health_views(worker))
        closed_s = own_broker.restart()
        restarted_at = time.monotonic()
        timeline.append(f"before: {before}; port closed for {closed_s:.2f} s")
        if traffic:
            later = [
                encode(dict(e, ts=e["ts"] + 60.0, event_id=f"{e['event_id']}-after"))
                for e in paced_events(model, 4_000, seed=10)
            ]
            # 50 events every 0.25 s, partitions chosen by the producer: the topic is new.
            sender = PacedSender(
                d.bootstrap, settings.topics.events, later, 50, 0.25, partitions=0, timeout_s=90
            ).start()
        last = ""
        while time.monotonic() - restarted_at < RESTART_DEADLINE_S + 5:
            views = health_views(worker)
            line = brief(views)
            at = time.monotonic() - restarted_at
            if line != last:
                timeline.append(f"+{at:4.1f} s: {line}")
                last = line
            code, body = views["/health"]
            if code == 503 and body.get("status") == "failing" and body.get("problems"):
                failing_at = at
                break
            if not worker.is_running():
                timeline.append(f"+{at:4.1f} s: the worker exited")
                break
            time.sleep(0.5)
        h = views["/health"][1]
        topics = [t for t in settings.topics.model_dump().values() if isinstance(t, str)]
        topics.append(f"{settings.app_id}-{STATE_TABLE}-changelog")
        timeline.append(
            f"+{time.monotonic() - restarted_at:4.1f} s: records_consumed "
            f"{h.get('records_consumed')}, last_commit_ok {h.get('last_commit_ok')}, "
            f"ingest_partitions {h.get('ingest_partitions')}; topics on the new broker "
            f"{describe_partitions(d.bootstrap, topics)}"
        )
        if sender is not None:
            timeline.append(f"sender: {sender.describe()}")
        ctx = "\ntimeline after the restart:\n  " + "\n  ".join(timeline)
        ctx += digest(worker) + tails(worker) + own_broker.log_tail()
        print(ctx.split("\n-----")[0])
    finally:
        if sender is not None:
            sender.stop()
        stop_all([worker])

    assert failing_at is not None and failing_at <= RESTART_DEADLINE_S, (
        f"/health did not turn failing (503) within {RESTART_DEADLINE_S:.0f} s of the broker "
        f"losing its state" + ctx
    )
    ready_code, ready = views["/health/ready"]
    assert ready_code == 503 and ready.get("status") == "not_ready", (
        "/health/ready still ready while /health is failing" + ctx
    )
