"""The stream against the offline maths, end to end, on the embedded broker.

- **Flapping.** One feature's PSI wanders around its threshold for 30 tumbling windows (some
  windows drawn like the reference, the others from a mildly shifted distribution whose PSI
  sits near the threshold). With the default alert policy (fire after 2 drifted windows,
  resolve after 2 windows below 0.8 x threshold, 600 s cooldown) ``drift.alerts`` carries at
  most one ``firing`` and at most one ``resolved`` for that feature, and nothing for the
  others. The windows are calibrated offline (fixed seeds and event times): each window's PSI
  and verdict as ``stream-drift report`` computes them is asserted first, and the worker's
  must equal them.
- **Stream = report.** One window's worth of events (fixed event times) streamed through a
  worker gives, for every feature, the statistics ``stream-drift report`` computes on the same
  events (psi, kl, js, ks, chi2, their p-values and n_current, to 1e-9) — also when the worker
  is SIGKILLed in the middle of the stream and a new one takes over.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

# Shared with the other real-broker tests (tests/ is on sys.path).
from test_faults_broker import (
    BASE,
    CHUNK,
    SPAN,
    WINDOW_120,
    PacedSender,
    digest,
    stored_records,
    tails,
    window_result,
)
from test_worker_kafka import (
    STATISTICS,
    Deployment,
    encode,
    make_events,
    make_reference,
    offline_report,
    publish,
    start_all,
    stop_all,
    wait_until,
)
from test_worker_recovery import (
    accepted,
    recovery_settings,
    renumber,
    summary,
    worker_of,
    xfail_on_recovery_hang,
)

from stream_drift.pipeline.alerts import AlertPolicy, AlertTracker
from stream_drift.tools.embedded import EmbeddedBroker
from stream_drift.tools.report import DriftReport

pytestmark = pytest.mark.kafka

# ------------------------------------------------------------------------------ flapping

STEP = 5.0
FLAP_WINDOW = {
    "size_seconds": 5,
    "step_seconds": 5,
    "allowed_lateness_seconds": 1.0,
    "idle_timeout_seconds": 8.0,
}
PER_WINDOW = 500
# R: drawn like the reference (PSI ~0.02); S: amount shifted by +4.5 (PSI ~1.15 x threshold,
# sampling spread ~0.3 x threshold, so it lands above, inside the hysteresis band or below it).
SCHEDULE = "SSRSRSRSSRSRSRSRRSSRSRSRSSRSRS"
SHIFT = 4.5
SEED = 600
"""Window ``k`` is drawn with seed ``SEED + k``: calibrated offline so that this schedule
drifts in 13 of the 30 windows, fires at window 1, resolves at window 16 and drifts twice in a
row again at windows 17-18 and 24-25, inside the cooldown."""


def flap_windows(model: str) -> list[list[dict[str, Any]]]:
    return [
        make_events(
            model,
            PER_WINDOW,
            rate=PER_WINDOW / STEP,
            seed=SEED + k,
            shift=SHIFT if kind == "S" else 0.0,
            start=BASE + k * STEP,
        )
        for k, kind in enumerate(SCHEDULE)
    ]


def expected_alerts(reports: list[DriftReport]) -> list[tuple[int, str]]:
    """(window, status) of what the default alert policy makes of these verdicts."""
    tracker = AlertTracker(AlertPolicy())
    out = []
    for k, report in enumerate(reports):
        alert = tracker.observe(
            model="m",
            model_version="1",
            feature="amount",
            result=report.evaluations["amount"].results["psi"],
            window_start=BASE + k * STEP,
            window_end=BASE + (k + 1) * STEP,
            evaluated_at=BASE + 1000 + k,  # all within the cooldown, as in the burst below
            reference_id="r",
        )
        if alert is not None:
            out.append((k, alert.status))
    return out


@pytest.mark.timeout(180)
def test_psi_flapping_around_its_threshold_for_30_windows_pages_once(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """30 windows whose ``amount`` PSI crosses its threshold again and again: one ``firing``,
    one ``resolved`` (never a second page within the cooldown), and every window's PSI and
    verdict equal to the offline report's."""
    model = "fraud-flap"
    profile = make_reference(model)
    windows = flap_windows(model)
    reports = [offline_report(profile, w, tmp_path / "window.jsonl") for w in windows]
    psi = [r.evaluations["amount"].results["psi"] for r in reports]
    threshold = psi[0].threshold
    above = [k for k, r in enumerate(psi) if r.is_drift]
    below_band = [k for k, r in enumerate(psi) if r.value < 0.8 * r.threshold]
    # The calibration: the value really flaps, and the policy makes one incident of it.
    assert all(r.threshold == pytest.approx(threshold) for r in psi)
    assert len(above) == 13 and len(below_band) >= 10, [round(r.value / threshold, 2) for r in psi]
    assert expected_alerts(reports) == [(1, "firing"), (16, "resolved")]
    assert all(r.drifted in ([], ["amount"]) for r in reports), [r.drifted for r in reports]

    app_id = f"sd-flap-{uuid.uuid4().hex[:8]}"
    settings = recovery_settings(kafka_broker.bootstrap_servers, tmp_path, app_id, FLAP_WINDOW)
    settings = settings.override({"alerts.fire_after": 2})  # the default (make_settings: 1)
    assert (settings.alerts.resolve_ratio, settings.alerts.resolve_after) == (0.8, 2)
    assert settings.alerts.cooldown_seconds == 600.0
    publish(settings, profile)
    worker = worker_of(settings, tmp_path, "worker")
    d = Deployment(settings, [worker], {model: profile})
    events = renumber([e for w in windows for e in w], model)
    ctx = ""
    try:
        start_all([worker])
        started = time.monotonic()
        d.send(model, [encode(e) for e in events], prime=True)
        last = BASE + (len(SCHEDULE) - 1) * STEP
        d.wait_results(
            model,
            lambda rs: any(r["window_start_ts"] == last for r in rs),
            timeout=90,
            what=f"the 30th window of {model}",
        )
        elapsed = time.monotonic() - started
        time.sleep(1.5)  # a tick and a flush: a late alert would show now
        every = sorted(d.results(model, idle_s=1.0), key=lambda r: r["window_start_ts"])
        # The 30 windows of the stream (a tumbling window right after the last one may be
        # evaluated too, empty, when the idle fallback moves event time on).
        results = [r for r in every if r["window_start_ts"] <= last]
        after = summary([r for r in every if r["window_start_ts"] > last], BASE)
        alerts = d.alerts(model, idle_s=1.0)
        got = [
            (r["window_start_ts"], r["n_events"], r["features"]["amount"]["psi"], r["drifted"])
            for r in results
        ]
        ctx = (
            f"\nthreshold {threshold:.4f}; offline PSI / threshold per window: "
            f"{[round(r.value / threshold, 2) for r in psi]}"
            f"\nworker (start - base, n, psi, drifted): "
            f"{[(s - BASE, n, round(v, 4), dr) for s, n, v, dr in got]}"
            f"\nafter the stream (start - base, n, late): {after}"
            f"\nalerts: {[(k, a['status'], a['alert_id'], a['window']) for k, a in alerts]}"
            + digest(worker)
            + tails(worker)
        )
        print(
            f"30 windows judged {elapsed:.1f} s after the send; windows above the threshold "
            f"{above}; alerts {[(k.decode() if k else k, a['status']) for k, a in alerts]}; "
            f"results after the stream's windows (start - base, n, late): {after}"
        )
    finally:
        stop_all([worker])

    assert [s for s, *_ in got] == [BASE + k * STEP for k in range(len(SCHEDULE))], ctx
    for k, (_, n, value, drifted) in enumerate(got):
        assert n == PER_WINDOW, (k, ctx)
        assert value == pytest.approx(psi[k].value, rel=1e-9, abs=1e-12), (k, ctx)
        assert drifted == reports[k].drifted, (k, ctx)
    statuses = [a["status"] for _, a in alerts]
    assert statuses.count("firing") <= 1, ctx
    assert statuses.count("resolved") <= 1, ctx
    assert {k for k, _ in alerts} == {f"{model}/amount/psi".encode()}, ctx
    # ... and exactly the one incident the policy makes of it, under one id.
    assert statuses == ["firing", "resolved"], ctx
    assert alerts[0][1]["alert_id"] == alerts[1][1]["alert_id"], ctx
    assert [a["window"]["start"] for _, a in alerts] == [
        results[1]["window"]["start"],
        results[16]["window"]["start"],
    ], ctx


# ------------------------------------------------------------------------ stream = report

REPORT_EVENTS = 20_000
RESUME_AT = 12_000


def compare(result: dict[str, Any], offline: DriftReport) -> list[str]:
    """Every difference between a window's ``drift.results`` message and the offline report
    on the same events (statistics and p-values to 1e-9, sample counts exactly)."""
    diffs = []
    if set(result["features"]) != set(offline.evaluations):
        diffs.append(f"features {sorted(result['features'])} != {sorted(offline.evaluations)}")
    for name, evaluation in offline.evaluations.items():
        got = result["features"].get(name, {})
        if got.get("n_current") != evaluation.n_current:
            diffs.append(f"{name}.n_current {got.get('n_current')} != {evaluation.n_current}")
        if got.get("missing_ratio") != pytest.approx(evaluation.missing_ratio, rel=1e-12):
            diffs.append(f"{name}.missing_ratio {got.get('missing_ratio')}")
        for stat in STATISTICS:
            r = evaluation.results.get(stat)
            want = None if r is None else r.value
            value = got.get(stat)
            if (want is None) != (value is None) or (
                want is not None and value != pytest.approx(want, rel=1e-9, abs=1e-12)
            ):
                diffs.append(f"{name}.{stat} {value!r} != {want!r}")
            key = f"{stat}_p_value"
            if r is not None and key in got:
                p = got[key]
                if (r.p_value is None) != (p is None) or (
                    r.p_value is not None and p != pytest.approx(r.p_value, rel=1e-9, abs=1e-300)
                ):
                    diffs.append(f"{name}.{key} {p!r} != {r.p_value!r}")
    if result["drifted"] != offline.drifted:
        diffs.append(f"drifted {result['drifted']} != {offline.drifted}")
    return diffs


@pytest.mark.timeout(240)
@pytest.mark.parametrize("crash", [False, True], ids=["clean", "sigkill-mid-stream"])
def test_streamed_window_equals_offline_report(
    kafka_broker: EmbeddedBroker, tmp_path: Path, crash: bool
) -> None:
    """20,000 events (a shifted ``amount``, missing ages, unseen countries) in one window,
    streamed at a pace: the window's ``drift.results`` message equals ``stream-drift report``
    on the same events, feature by feature; with ``sigkill-mid-stream`` the worker is killed
    once it has accepted half the stream and a new worker of the same app finishes it."""
    model = "fraud-report"
    app_id = f"sd-report-{uuid.uuid4().hex[:8]}"
    settings = recovery_settings(kafka_broker.bootstrap_servers, tmp_path, app_id, WINDOW_120)
    settings = settings.override({"ingest.replay_chunk_records": CHUNK})
    profile = make_reference(model)
    publish(settings, profile)
    events = renumber(
        make_events(
            model,
            REPORT_EVENTS,
            rate=REPORT_EVENTS / SPAN,
            seed=43,
            shift=3.0,
            start=BASE,
            missing_age_every=10,
            unseen_country_every=25,
        ),
        model,
    )
    offline = offline_report(profile, events, tmp_path / "events.jsonl")
    assert offline.any_judged and offline.evaluations["age"].n_current == REPORT_EVENTS * 9 // 10
    first = worker_of(settings, tmp_path, "worker-1")
    second = worker_of(settings, tmp_path, "worker-2") if crash else None
    d = Deployment(settings, [first], {model: profile})
    # ~10 s of sending: 40 batches of 500, 0.25 s apart. With a crash, the last 40 % is held
    # back until the new worker is ready: the stream goes on live after the takeover (what
    # was sent while no worker ran is a backlog).
    resume = threading.Event()
    if not crash:
        resume.set()
    values = [encode(e) for e in events]
    sender = PacedSender(
        d.bootstrap, settings.topics.events, values, 500, 0.25, gates={RESUME_AT: resume}
    )
    notes: list[str] = []
    ctx = ""
    workers = [w for w in (first, second) if w is not None]
    try:
        with xfail_on_recovery_hang(*workers):
            start_all([first])
            sender.start()
            if second is not None:
                wait_until(
                    lambda: accepted(first, model) >= REPORT_EVENTS // 2,
                    timeout=90,
                    what=f"{REPORT_EVENTS // 2} events accepted before the kill",
                    workers=[first],
                    interval=0.02,
                )
                seen = accepted(first, model)
                first.kill()
                killed_at = time.monotonic()
                notes.append(f"killed worker-1 after {seen:.0f} accepted, {sender.acked} produced")
                second.start()
                second.wait_ready(90)
                d.workers = [second]
                notes.append(
                    f"worker-2 ready {time.monotonic() - killed_at:.1f} s after the kill, "
                    f"{sender.acked} produced by then; the rest is sent live"
                )
                resume.set()
            sender.join(120)
            produced = stored_records(d.bootstrap, settings.topics.events)
            started = time.monotonic()
            result = window_result(d, model, BASE, timeout=120)
            notes.append(
                f"records in the topic {produced}; window {summary([result], BASE)} "
                f"{time.monotonic() - started:.1f} s after the last record was read back"
            )
            print("\n".join(notes))
            ctx = "\n" + "\n".join(notes) + digest(workers[-1]) + tails(*workers)
    finally:
        sender.stop()
        stop_all(workers)

    assert produced == REPORT_EVENTS, "the test producer duplicated or lost records" + ctx
    assert (result["n_events"], result["late_events"]) == (REPORT_EVENTS, 0), ctx
    assert result["reference_id"] == profile.id, ctx
    diffs = compare(result, offline)
    assert diffs == [], "\n".join(diffs) + ctx
