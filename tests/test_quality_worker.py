"""Issue 7 on a real worker: a feature switching type mid-stream is watched, not dropped.

``age`` (numeric in the reference) arrives as the string ``"forty"`` in a share of the events
of the second half of the stream. The worker must count exactly those values in
``stream_drift_invalid_values_total{feature="age", reason="type_mismatch"}``, raise one
``data_quality`` alert for ``age`` (and for nothing else), and no PSI drift alert for ``age``:
the strings are neither binned nor counted as missing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from test_worker_kafka import (
    RUNBOOK,
    SLIDING,
    VERSION,
    Deployment,
    deployed,
    encode,
    make_events,
    make_reference,
    make_settings,
    next_base,
    sample,
    scrape,
    wait_until,
)

from stream_drift.pipeline.alert_text import format_timestamp
from stream_drift.tools.embedded import EmbeddedBroker
from stream_drift.tools.supervisor import WorkerProcess

pytestmark = pytest.mark.kafka

QUALITY_MODEL = "fraud-quality"


@pytest.fixture(scope="module")
def quality(
    kafka_broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """One worker, sliding windows (10 s by 5 s), default decision settings (data-quality
    alerts on), alerts firing on the first flagged window."""
    workdir = tmp_path_factory.mktemp("quality")
    app_id = f"sd-quality-{uuid.uuid4().hex[:8]}"
    settings = make_settings(kafka_broker.bootstrap_servers, workdir, app_id, SLIDING)
    assert settings.alerts.fire_after == 1
    assert settings.decision.quality_alerts
    references = {QUALITY_MODEL: make_reference(QUALITY_MODEL)}
    with deployed(
        settings, references, [WorkerProcess(settings, workdir, name="quality-worker")]
    ) as d:
        yield d


@pytest.mark.timeout(240)
def test_a_type_change_mid_stream_is_counted_and_alerted_as_data_quality(
    quality: Deployment,
) -> None:
    d, worker = quality, quality.worker
    base = next_base()
    # 20 s of event time at 100 events/s: steps [0,5) … [15,20), 500 events each. From 10 s
    # on, 40 % of the events (i % 5 in {0, 1}) carry age = "forty".
    events = make_events(QUALITY_MODEL, 2000, rate=100.0, seed=53, start=base)
    changed: list[dict[str, Any]] = []
    for i, e in enumerate(events):
        if e["ts"] >= base + 10 and i % 5 < 2:
            e["features"]["age"] = "forty"
            changed.append(e)
    assert len(changed) == 400
    d.send(QUALITY_MODEL, [encode(e) for e in events], prime=True)

    last_end = base + 25
    results = d.wait_window_end(QUALITY_MODEL, last_end, timeout=90)
    labels = {"model": QUALITY_MODEL, "feature": "age", "reason": "type_mismatch"}
    # Stage 1 has counted every batch before stage 2 closed the last window from its partials.
    samples = wait_until(
        lambda: (
            (s := scrape(worker))
            and sample(s, "stream_drift_invalid_values_total", **labels) == len(changed)
            and s
        ),
        timeout=30,
        what="stream_drift_invalid_values_total for age",
        workers=[worker],
    )
    alerts = d.alerts(QUALITY_MODEL, idle_s=1.5)
    summary = [
        (r["window_start_ts"] - base, r["window_end_ts"] - base, r["n_events"]) for r in results
    ]
    context = f"\nalerts: {alerts}\nresults (start, end, n): {summary}{d.logs()}"

    # Exactly the changed values, for age only; no other reason or feature.
    invalid = {
        k: v for k, v in samples.items() if k[0] == "stream_drift_invalid_values_total" and v
    }
    assert invalid == {
        ("stream_drift_invalid_values_total", tuple(sorted(labels.items()))): 400.0
    }, context
    assert sample(
        samples, "stream_drift_events_total", model=QUALITY_MODEL, outcome="accepted"
    ) == len(events), context  # the events themselves are accepted, not dead-lettered

    # One alert: the type-mismatch rate of age, category data_quality. No PSI alert for age,
    # no missing-rate alert (the strings are not missing), nothing for the other features.
    assert [(a["feature"], a["statistic"], a["status"], a["category"]) for _, a in alerts] == [
        ("age", "mismatch_rate", "firing", "data_quality")
    ], context
    key, alert = alerts[0]
    assert key == f"{QUALITY_MODEL}/age/mismatch_rate".encode(), context
    assert alert["runbook_url"] == f"{RUNBOOK}#streamdriftdataquality", context
    # fire_after=1: the first window holding changed events, [5, 10) + [10, 15) (sliding 10 s):
    # 200 of its 1,000 events (20 %).
    assert alert["window"]["end"] == format_timestamp(base + 15), context
    assert (alert["n_current"], alert["value"]) == (1000, pytest.approx(0.2)), context
    assert alert["severity"] == "warning" and alert["threshold"] == pytest.approx(0.05), context
    assert alert["top_bins"] == [
        {"bin": "(type mismatch)", "reference": 0.0, "current": pytest.approx(0.2)}
    ], context
    assert alert["summary"].startswith(
        f"{QUALITY_MODEL} v{VERSION}: feature 'age' data quality — 20% of values are not "
        "numbers (type mismatch) vs 0% in the reference (threshold 5%) over window "
    ), context
    print(f"\nalert summary: {alert['summary']}")

    # The audit trail: age's rates per window, and PSI of age unmoved where judged.
    for r in results:
        age = r["features"]["age"]
        start, end = r["window_start_ts"], r["window_end_ts"]
        n_changed = sum(1 for e in changed if start <= e["ts"] < end)
        assert age["mismatch_ratio"] == pytest.approx(n_changed / r["n_events"]), context
        assert age["missing_ratio"] == 0.0, context
        assert age["n_current"] == r["n_events"] - n_changed, context
        assert not age["drift"], context
        assert age["results"]["mismatch_rate"]["is_drift"] == (n_changed > 0), context
    # The state the worker exports: a warning on age's mismatch rate, ok elsewhere.
    state = {"model": QUALITY_MODEL, "model_version": VERSION}
    assert (
        sample(
            samples, "stream_drift_alert_state", feature="age", statistic="mismatch_rate", **state
        )
        == 1.0
    ), context
    for feature in ("amount", "age", "country", "prediction"):
        for statistic in ("psi", "missing_rate") + (("mismatch_rate",) if feature != "age" else ()):
            got = sample(
                samples, "stream_drift_alert_state", feature=feature, statistic=statistic, **state
            )
            assert got == 0.0, (feature, statistic, context)
    assert worker.is_running(), context
