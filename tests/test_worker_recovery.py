"""Recovery of ``stream-drift worker`` processes against the embedded (Tansu) broker.

A worker restarted with SIGTERM, or killed with SIGKILL and taken over by another worker of
the same app, must carry on from the state in Kafka: stage 1 from its committed offsets,
stage 2 from the ``model-state`` table's changelog (windows, watermarks, applied source
offsets and open alerts). What a user sees must not change: no event lost, none counted
twice, no second ``firing`` for an alert that is still open, and the ``resolved`` message
carrying the original ``alert_id``.

Every test has its own app id and topics, and sets ``kafka.producer_max_batch_size: 1``:
Tansu answers a too-low "latest offset" for multi-record batches and Faust's table recovery
would stop short of the changelog's tail (KAFKA-LOCAL.md §2). Every wait is bounded and
failures carry the workers' log tails (§9). A wait that times out because Faust's table
recovery hung (an intermittent third-party hang, see :func:`xfail_on_recovery_hang`) is
reported as xfail; every other failure fails.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from kafka_helpers import read_topic

# Shared with the other real-broker tests (tests/ is on sys.path).
from test_worker_kafka import (
    EVENT_PARTITIONS,
    VERSION,
    Deployment,
    encode,
    in_window,
    logs,
    make_events,
    make_reference,
    make_settings,
    publish,
    sample,
    scrape,
    start_all,
    stop_all,
    wait_until,
)

from stream_drift.app.tables import STATE_TABLE
from stream_drift.config import Settings
from stream_drift.tools.embedded import EmbeddedBroker, find_free_port
from stream_drift.tools.supervisor import WorkerError, WorkerProcess

pytestmark = pytest.mark.kafka

BASE = 1_735_689_600
"""2025-01-01T00:00:00Z, a multiple of every window step used here (in the past: events more
than window.max_future_seconds ahead of the worker's clock are refused)."""

ALL_PARTITIONS = list(range(EVENT_PARTITIONS))

# Tumbling 5 s windows whose steps close on the watermark only: the idle timeout is longer
# than a restart, so the processing-time fallback cannot close the step that spans it.
TUMBLING_5 = {
    "size_seconds": 5,
    "step_seconds": 5,
    "allowed_lateness_seconds": 1.0,
    "idle_timeout_seconds": 45.0,
}
# One 120 s window for the takeover test; it closes on the idle fallback ~15 s after the
# traffic stops, and not before the second batch arrives (that would take ~90 s of silence).
TUMBLING_120 = {
    "size_seconds": 120,
    "step_seconds": 120,
    "allowed_lateness_seconds": 1.0,
    "idle_timeout_seconds": 15.0,
}


def recovery_settings(
    bootstrap: str, workdir: Path, app_id: str, window: dict[str, Any]
) -> Settings:
    """The settings of test_worker_kafka.py plus one record per producer batch (§2)."""
    return make_settings(bootstrap, workdir, app_id, window).override(
        {"kafka.producer_max_batch_size": 1}
    )


def worker_of(settings: Settings, workdir: Path, name: str) -> WorkerProcess:
    """A worker process with its own web port and data directory."""
    own = settings.override({"web.port": find_free_port(), "worker.data_dir": str(workdir / name)})
    return WorkerProcess(own, workdir, name=name)


RECOVERY_HANG = "No event received for active tp"
"""Faust's warning when its table recovery waits for a changelog partition that never
delivers (repeated every 5 s after 30 s)."""


@contextlib.contextmanager
def xfail_on_recovery_hang(*workers: WorkerProcess) -> Iterator[None]:
    """Turn a timed-out wait into an xfail when a worker's table recovery hung.

    Seen in ~1 of 20 takeovers (faust-streaming 0.15.3 on Tansu): the survivor promotes the
    changelog partition it held as a standby to active, seeks it to 0 and never receives
    its records again; "Restoring state from changelog topics..." is its last recovery
    line and stage 2 stays stopped. Only timed-out waits are converted (an assertion
    about the data always fails), and only when that warning is in a worker's log.
    """
    try:
        yield
    except (pytest.fail.Exception, WorkerError) as exc:
        for w in workers:
            try:
                text = w.log_path.read_text(errors="replace")
            except FileNotFoundError:
                continue
            hung = [line for line in text.splitlines() if RECOVERY_HANG in line]
            if hung:
                pytest.xfail(
                    f"known intermittent Faust table-recovery hang in {w.name} "
                    f"(stage 2 never resumes): {hung[0].strip()}; the wait failed with: "
                    f"{str(exc).splitlines()[0]}"
                )
        raise


def renumber(events: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """Give events ids unique across the segments of one test."""
    return [dict(e, event_id=f"{prefix}-{i}") for i, e in enumerate(events)]


def changelog_state(d: Deployment, model: str) -> tuple[int, dict[str, Any]] | None:
    """(partition, latest row) of ``model`` in the state table's changelog, or ``None``."""
    key = json.dumps(model).encode()
    topic = f"{d.settings.app_id}-{STATE_TABLE}-changelog"
    rows = [r for r in read_topic(d.bootstrap, topic, idle_s=0.3) if r.key == key]
    if not rows or rows[-1].value is None:
        return None
    return rows[-1].partition, json.loads(rows[-1].value)


def version_state(state: dict[str, Any]) -> dict[str, Any]:
    versions: dict[str, Any] = state.get("versions", {})
    return dict(versions.get(VERSION, {}))


def accepted(worker: WorkerProcess, model: str) -> float:
    s = scrape(worker)
    return sample(s, "stream_drift_events_total", model=model, outcome="accepted") or 0.0


def summary(results: Sequence[dict[str, Any]], base: float) -> list[tuple[float, int, int]]:
    """(window start relative to ``base``, n_events, late_events) of every result, in order."""
    return [(r["window_start_ts"] - base, r["n_events"], r["late_events"]) for r in results]


# -------------------------------------------------------------------------------- tests


@pytest.mark.timeout(240)
def test_restart_keeps_window_and_alert_state(kafka_broker: EmbeddedBroker, tmp_path: Path) -> None:
    """SIGTERM, then a new worker of the same app: the open alert stays open (no second
    ``firing``), resolves later with its original ``alert_id``, and the step that spans the
    restart counts each of its events once."""
    model = "fraud-restart"
    app_id = f"sd-restart-{uuid.uuid4().hex[:8]}"
    settings = recovery_settings(kafka_broker.bootstrap_servers, tmp_path, app_id, TUMBLING_5)
    references = {model: make_reference(model)}
    publish(settings, *references.values())

    # 100 events/s. Drift (amount + 30) over [0, 20) s, none over [20, 35) s: tumbling steps
    # of 500 events each. The worker restarts after 7.5 s of event time, in step [5, 10).
    base = float(BASE)
    drifted = make_events(model, 2000, rate=100.0, seed=11, shift=30.0, start=base)
    clean = make_events(model, 1500, rate=100.0, seed=23, start=base + 20)
    events = renumber(drifted + clean, model)
    split = 750
    before, after = events[:split], events[split:]
    assert before[-1]["ts"] < base + 7.5 <= after[0]["ts"]

    first = worker_of(settings, tmp_path, "worker-1")
    second = worker_of(settings, tmp_path, "worker-2")
    d = Deployment(settings, [first], references)
    key = f"{model}/amount/psi".encode()

    def context(extra: str = "") -> str:
        alerts = [(k, a["status"], a["alert_id"]) for k, a in d.alerts(model, idle_s=0.3)]
        results = summary(d.results(model, idle_s=0.3), base)
        return f"\nalerts: {alerts}\nresults (start, n, late): {results}{extra}" + logs(
            first, second
        )

    try:
        with xfail_on_recovery_hang(first, second):
            start_all([first])
            # Step [0, 5) closes on the watermark (7.49 - 1 s lateness) and fires (fire_after=1).
            d.send(model, [encode(e) for e in before], prime=True)
            firing = wait_until(
                lambda: [a for k, a in d.alerts(model, idle_s=0.3) if k == key],
                timeout=60,
                what=f"the firing alert of {model}",
                workers=[first],
            )
            assert [a["status"] for a in firing] == ["firing"], context()
            original = firing[0]
            # The state of step [5, 10) so far (250 events) is in the changelog.
            wait_until(
                lambda: (
                    (row := changelog_state(d, model)) is not None
                    and version_state(row[1]).get("pending_events", {}).get(repr(base + 5.0)) == 250
                ),
                timeout=30,
                what="step [5, 10) holding 250 events in the state changelog",
                workers=[first],
            )

            code = first.stop(timeout=20.0)
            assert code == 0, f"worker-1 exited with {code}" + context()
            second.start()
            second.wait_ready(90)
            d.workers = [second]

            d.send(model, [encode(e) for e in after], prime=False)
            # Steps [5, 10) .. [25, 30) close on the watermark (34.99 - 1); two clean steps
            # (resolve_after=2) resolve the alert.
            d.wait_results(
                model,
                lambda rs: any(r["window_start_ts"] >= base + 25 for r in rs),
                timeout=90,
                what=f"the {model} window starting at +25 s",
            )
            alerts = wait_until(
                lambda: (
                    (found := [a for k, a in d.alerts(model, idle_s=0.5) if k == key])
                    and found[-1]["status"] == "resolved"
                    and found
                ),
                timeout=30,
                what=f"the resolved alert of {model}",
                workers=[second],
            )
            time.sleep(1.5)  # a tick and a flush: a late second "firing" would show now
            every_alert = d.alerts(model, idle_s=1.0)
            results = d.results(model, idle_s=1.0)
            ctx = context()
            print(ctx.split("\n-----")[0])  # alerts and results, shown with -rP
    finally:
        stop_all([first, second])

    # One incident: fired before the restart, resolved after it, under one id.
    assert [(k, a["status"]) for k, a in every_alert] == [(key, "firing"), (key, "resolved")], ctx
    assert [a["alert_id"] for a in alerts] == [original["alert_id"]] * 2, ctx
    resolved = alerts[-1]
    assert resolved["first_detected_at"] == original["first_detected_at"], ctx
    assert resolved["window"]["start"] != original["window"]["start"], ctx

    # Every step once, with exactly the events produced into it; the one spanning the
    # restart ([5, 10): 250 events before, 250 after) included.
    got = [r for r in results if r["window_start_ts"] < base + 30]
    expected = [
        (float(k * 5), len(in_window(events, base + 5 * k, base + 5 * k + 5)), 0) for k in range(6)
    ]
    assert all(n == 500 for _, n, _ in expected)
    assert summary(got, base) == expected, ctx
    assert [r["drifted"] for r in got] == [["amount"]] * 4 + [[]] * 2, ctx


@pytest.mark.timeout(240)
def test_sigkill_takeover_loses_nothing(kafka_broker: EmbeddedBroker, tmp_path: Path) -> None:
    """Two workers; the one evaluating the model is SIGKILLed after the first batch, the
    second batch is produced while it is dead, the survivor takes over every partition of
    both stages: the window holds every event exactly once."""
    model = "fraud-takeover"
    app_id = f"sd-takeover-{uuid.uuid4().hex[:8]}"
    settings = recovery_settings(kafka_broker.bootstrap_servers, tmp_path, app_id, TUMBLING_120)
    references = {model: make_reference(model)}
    publish(settings, *references.values())
    workers = [worker_of(settings, tmp_path, name) for name in ("worker-a", "worker-b")]
    d = Deployment(settings, workers, references)

    # One 120 s window: 1200 events over [0, 30) s, then 3600 over [30, 120) s.
    base = float(BASE)
    events = renumber(make_events(model, 4800, rate=40.0, seed=71, start=base), model)
    first_batch, second_batch = events[:1200], events[1200:]
    assert first_batch[-1]["ts"] < base + 30 <= second_batch[0]["ts"]
    assert events[-1]["ts"] < base + 120

    def split() -> bool:
        hs = [w.health() for w in workers]
        for stage in ("ingest_partitions", "stage2_partitions"):
            owned = [set(h.get(stage) or ()) for h in hs]
            if not all(owned) or owned[0] & owned[1] or owned[0] | owned[1] != set(ALL_PARTITIONS):
                return False
        return True

    notes: list[str] = []

    def context() -> str:
        results = summary(d.results(model, idle_s=0.3), base)
        row = changelog_state(d, model)
        dups = None if row is None else version_state(row[1]).get("duplicate_events")
        return (
            f"\n{chr(10).join(notes)}\nresults (start, n, late): {results}"
            f"\nstage-2 duplicate_events: {dups}" + logs(*workers)
        )

    try:
        with xfail_on_recovery_hang(*workers):
            start_all(workers)
            wait_until(
                split,
                timeout=90,
                what="both workers owning disjoint partitions of both stages",
                workers=workers,
                interval=0.5,
            )
            d.send(model, [encode(e) for e in first_batch], prime=False)
            wait_until(
                lambda: (
                    sum(accepted(w, model) for w in workers) >= len(first_batch)
                    and all(accepted(w, model) > 0 for w in workers)
                ),
                timeout=60,
                what=f"{len(first_batch)} accepted events, some on each worker",
                workers=workers,
            )
            # Stage 2 merged a partial of every source partition: the worker that owns the
            # model's state partition is the one to kill.
            row = wait_until(
                lambda: (
                    (r := changelog_state(d, model)) is not None
                    and len(version_state(r[1]).get("sources", {})) == EVENT_PARTITIONS
                    and r
                ),
                timeout=60,
                what=f"stage 2 merging {model}'s partials of every partition",
                workers=workers,
            )
            state_partition = row[0]
            owners = [
                w for w in workers if state_partition in (w.health().get("stage2_partitions") or ())
            ]
            assert len(owners) == 1, f"state partition {state_partition}" + context()
            victim = owners[0]
            survivor = next(w for w in workers if w is not victim)
            victim_ingest = list(victim.health().get("ingest_partitions") or ())
            # The victim's last consumed batch was flushed and committed. Commits stop at chunk
            # starts (ingest.replay_chunk_records), so the survivor still replays the victim's
            # partitions from the start of their chunk; stage 2 counts those events once.
            wait_until(
                lambda: (h := victim.health()).get("last_flush_at", 0) > h.get("last_batch_at", 1),
                timeout=30,
                what=f"{victim.name} committing its last batch",
                workers=workers,
            )
            before_kill = {w.name: accepted(w, model) for w in workers}
            notes.append(
                f"state partition {state_partition}; killed {victim.name} "
                f"(ingest {victim_ingest}); accepted before the kill {before_kill}"
            )
            victim.kill()
            killed_at = time.monotonic()

            d.send(model, [encode(e) for e in second_batch], prime=False)
            d.workers = [survivor]

            def owns_all() -> bool:
                h = survivor.health()
                return (
                    h.get("ingest_partitions") == ALL_PARTITIONS
                    and h.get("stage2_partitions") == ALL_PARTITIONS
                )

            wait_until(
                owns_all,
                timeout=60,
                what=f"{survivor.name} owning every partition of both stages",
                workers=[survivor],
                interval=0.25,
            )
            notes.append(f"takeover after {time.monotonic() - killed_at:.1f} s")
            results = d.wait_results(
                model,
                lambda rs: any(r["window_start_ts"] == base for r in rs),
                timeout=90,
                what=f"the {model} window [+0, +120) (idle fallback)",
            )
            time.sleep(1.5)  # a tick and a flush: a second result for the window would show now
            results = [r for r in d.results(model, idle_s=1.0) if r["window_start_ts"] == base]
            survivor_accepted = accepted(survivor, model)
            notes.append(f"accepted by {survivor.name} at the end: {survivor_accepted}")
            ctx = context()
            print(ctx.split("\n-----")[0])  # the figures of the takeover, shown with -rP
    finally:
        stop_all(workers)

    produced = len(events)
    # What stage 1 re-read: after each rebalance every partition resumes from its chunk start
    # (4,800 events < one chunk: from 0), the survivor's own partitions included.
    replayed = survivor_accepted + before_kill[victim.name] - produced
    assert replayed >= 0, ctx  # fewer accepted than produced: events lost in stage 1
    assert len(results) == 1, ctx
    result = results[0]
    assert (result["window_end_ts"], result["late_events"]) == (base + 120, 0), ctx
    # Nothing lost, nothing counted twice, although the survivor replayed the victim's chunk.
    assert result["n_events"] >= produced, ctx
    assert result["n_events"] == produced, ctx
    for name, f in result["features"].items():
        assert f["n_current"] == produced, (name, ctx)
