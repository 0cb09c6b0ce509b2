"""Prometheus metrics of DESIGN §3.4: names, types, labels, series cap and ownership."""

from __future__ import annotations

import re

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stream_drift.app.metrics import DriftMetrics
from stream_drift.stats.result import DriftResult, Severity

STAT = ("model", "model_version", "feature", "statistic")
WINDOW = ("model", "model_version", "feature")

#: exposed name -> (type, label names) — DESIGN §3.4 plus the three extra counters.
EXPECTED: dict[str, tuple[str, frozenset[str]]] = {
    "stream_drift_statistic": ("gauge", frozenset(STAT)),
    "stream_drift_p_value": ("gauge", frozenset(STAT)),
    "stream_drift_alert_state": ("gauge", frozenset(STAT)),
    "stream_drift_window_samples": ("gauge", frozenset(WINDOW)),
    "stream_drift_missing_ratio": ("gauge", frozenset(WINDOW)),
    "stream_drift_events_total": ("counter", frozenset({"model", "outcome"})),
    "stream_drift_alerts_total": ("counter", frozenset({"model", "severity"})),
    "stream_drift_last_evaluation_timestamp_seconds": ("gauge", frozenset({"model"})),
    "stream_drift_evaluation_duration_seconds": ("histogram", frozenset()),
    "stream_drift_series_dropped_total": ("counter", frozenset({"metric"})),
    "stream_drift_deadletter_total": ("counter", frozenset({"reason"})),
    "stream_drift_send_failures_total": ("counter", frozenset({"kind", "reason"})),
    "stream_drift_late_events_total": ("counter", frozenset({"model"})),
    "stream_drift_invalid_values_total": ("counter", frozenset({"model", "feature", "reason"})),
    "stream_drift_threshold": ("gauge", frozenset(STAT)),
    "stream_drift_watermark_lag_seconds": ("gauge", frozenset({"model"})),
    "stream_drift_consumer_lag_records": ("gauge", frozenset({"topic", "partition"})),
    "stream_drift_window_size_seconds": ("gauge", frozenset()),
    "stream_drift_window_step_seconds": ("gauge", frozenset()),
    "stream_drift_build_info": ("gauge", frozenset({"version"})),
    "stream_drift_model_performance": ("gauge", frozenset({"model", "model_version", "metric"})),
    "stream_drift_domain_auc": ("gauge", frozenset({"model", "model_version"})),
    "stream_drift_domain_auc_threshold": ("gauge", frozenset({"model", "model_version"})),
    "stream_drift_concept_drift_detections_total": ("counter", frozenset({"model", "detector"})),
    "stream_drift_label_join_total": ("counter", frozenset({"model", "outcome"})),
}


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> DriftMetrics:
    return DriftMetrics(registry)


def stat_labels(
    model: str = "fraud", feature: str = "amount", statistic: str = "psi", version: str = "7"
) -> dict[str, str]:
    return {"model": model, "model_version": version, "feature": feature, "statistic": statistic}


def window_labels(model: str = "fraud", feature: str = "amount") -> dict[str, str]:
    return {"model": model, "model_version": "7", "feature": feature}


def psi(value: float = 0.31, p: float | None = 1e-9, judged: bool = True) -> DriftResult:
    drift = judged and value >= 0.2
    sev = Severity.WARNING if drift else Severity.OK
    return DriftResult("psi", value, 0.2, p, drift, sev, 100_000, 5231, judged=judged)


def populate(m: DriftMetrics, model: str = "fraud", feature: str = "amount") -> None:
    m.observe_result(model, "7", feature, psi(), Severity.WARNING)
    m.set_window(model, "7", feature, 5231, 0.02)
    m.count_events(model, "accepted", 3)
    m.count_events(model, "late")
    m.count_alert(model, "warning")
    m.count_deadletter("bad_json")
    m.mark_evaluated(model, 1_764_237_905.0)
    m.observe_evaluation(0.01)
    m.set_watermark_lag(model, 12.5)
    m.set_consumer_lag("drift.events", 0, 40)
    m.set_window_policy(300, 60)
    m.set_performance(model, "7", {"accuracy": 0.9, "roc_auc": 0.95})
    m.set_domain_auc(model, "7", 0.52, 0.61)
    m.count_concept_detections(model, "adwin")
    m.count_label_join(model, "joined", 5)


def exposition(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


# ---------------------------------------------------------------- names, types, labels
def test_exposed_names_types_and_labels_are_exact(
    registry: CollectorRegistry, metrics: DriftMetrics
) -> None:
    populate(metrics)
    metrics.count_send_failure("partial", "message_too_large")
    metrics.count_invalid_values("fraud", "age", "type_mismatch", 3)
    metrics.series_dropped.labels(metric="stream_drift_statistic")  # make a sample appear
    text = exposition(registry)
    # ``*_created`` companions are prometheus_client's own (process-wide switch
    # ``disable_created_metrics``), not part of the contract.
    types = {
        name: kind
        for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M)
        if not name.endswith("_created")
    }
    assert types == {name: kind for name, (kind, _) in EXPECTED.items()}

    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, (kind, labels) in EXPECTED.items():
        family = families[name.removesuffix("_total")]
        assert family.type == kind
        samples = [
            s
            for s in family.samples
            if s.name in (name, f"{name}_count", f"{name}_sum", f"{name}_bucket")
        ]
        assert samples, name
        for s in samples:
            assert set(s.labels) - {"le"} == labels, (name, s.labels)


def test_nothing_goes_to_the_default_registry(metrics: DriftMetrics) -> None:
    populate(metrics)
    assert (
        prometheus_client.REGISTRY.get_sample_value("stream_drift_statistic", stat_labels()) is None
    )


def test_two_instances_on_separate_registries_are_independent() -> None:
    a, b = CollectorRegistry(), CollectorRegistry()
    DriftMetrics(a).count_events("fraud", "accepted", 2)
    DriftMetrics(b)
    labels = {"model": "fraud", "outcome": "accepted"}
    assert a.get_sample_value("stream_drift_events_total", labels) == 2
    assert b.get_sample_value("stream_drift_events_total", labels) is None


def test_same_registry_twice_is_an_error(registry: CollectorRegistry) -> None:
    DriftMetrics(registry)
    with pytest.raises(ValueError):
        DriftMetrics(registry)


def test_max_series_is_validated(registry: CollectorRegistry) -> None:
    with pytest.raises(ValueError, match="max_series"):
        DriftMetrics(registry, max_series=0)


# ----------------------------------------------------------------------- values
def test_observe_result_sets_statistic_p_value_and_state(
    registry: CollectorRegistry, metrics: DriftMetrics
) -> None:
    metrics.observe_result("fraud", "7", "amount", psi(0.31, 1e-9), Severity.CRITICAL)
    assert registry.get_sample_value("stream_drift_statistic", stat_labels()) == 0.31
    assert registry.get_sample_value("stream_drift_p_value", stat_labels()) == 1e-9
    assert registry.get_sample_value("stream_drift_alert_state", stat_labels()) == 2
    metrics.observe_result("fraud", "7", "amount", psi(0.05, 0.7), Severity.OK)
    assert registry.get_sample_value("stream_drift_statistic", stat_labels()) == 0.05
    assert registry.get_sample_value("stream_drift_alert_state", stat_labels()) == 0


def test_p_value_none_removes_the_p_value_series(
    registry: CollectorRegistry, metrics: DriftMetrics
) -> None:
    metrics.observe_result("fraud", "7", "amount", psi(p=0.01), Severity.OK)
    metrics.observe_result("fraud", "7", "amount", psi(p=None), Severity.OK)
    assert registry.get_sample_value("stream_drift_p_value", stat_labels()) is None
    assert registry.get_sample_value("stream_drift_statistic", stat_labels()) == 0.31
    assert "stream_drift_p_value{" not in exposition(registry)


def test_unjudged_window_removes_statistic_but_keeps_alert_state(
    registry: CollectorRegistry, metrics: DriftMetrics
) -> None:
    metrics.observe_result("fraud", "7", "amount", psi(), Severity.WARNING)
    metrics.observe_result("fraud", "7", "amount", psi(2.5, judged=False), Severity.WARNING)
    assert registry.get_sample_value("stream_drift_statistic", stat_labels()) is None
    assert registry.get_sample_value("stream_drift_p_value", stat_labels()) is None
    assert registry.get_sample_value("stream_drift_alert_state", stat_labels()) == 1


def test_threshold_follows_the_judged_value_and_goes_with_it(
    registry: CollectorRegistry, metrics: DriftMetrics
) -> None:
    r = DriftResult("psi", 0.31, 0.137, 1e-9, True, Severity.WARNING, 100_000, 800)
    metrics.observe_result("fraud", "7", "amount", r, Severity.WARNING)
    assert registry.get_sample_value("stream_drift_threshold", stat_labels()) == 0.137
    metrics.observe_result("fraud", "7", "amount", psi(2.5, judged=False), Severity.WARNING)
    assert registry.get_sample_value("stream_drift_threshold", stat_labels()) is None


def test_build_info_names_the_running_version(registry: CollectorRegistry) -> None:
    from stream_drift import __version__

    DriftMetrics(registry)
    assert registry.get_sample_value("stream_drift_build_info", {"version": __version__}) == 1


def test_watermark_lag_is_a_model_gauge(registry: CollectorRegistry, metrics: DriftMetrics) -> None:
    metrics.set_watermark_lag("fraud", 42.0)
    assert registry.get_sample_value("stream_drift_watermark_lag_seconds", {"model": "fraud"}) == 42
    assert metrics.owned_models == {"fraud"}
    metrics.retain_only(())  # a rebalance: the new owner exports it
    assert (
        registry.get_sample_value("stream_drift_watermark_lag_seconds", {"model": "fraud"}) is None
    )
    with pytest.raises(ValueError, match="finite"):
        metrics.set_watermark_lag("fraud", float("nan"))


def test_consumer_lag_per_owned_partition(
    registry: CollectorRegistry, metrics: DriftMetrics
) -> None:
    def lag(p: int) -> float | None:
        return registry.get_sample_value(
            "stream_drift_consumer_lag_records", {"topic": "drift.events", "partition": str(p)}
        )

    metrics.set_consumer_lag("drift.events", 0, 100)
    metrics.set_consumer_lag("drift.events", 1, -3)  # a stale high-water mark never reads < 0
    assert (lag(0), lag(1)) == (100, 0)
    metrics.retain_partitions([("drift.events", 1)])
    assert (lag(0), lag(1)) == (None, 0)
    # stage-2 rebalances do not touch stage-1 series
    metrics.retain_only(())
    assert lag(1) == 0


def test_window_policy_gauges(registry: CollectorRegistry, metrics: DriftMetrics) -> None:
    metrics.set_window_policy(600, 120)
    assert registry.get_sample_value("stream_drift_window_size_seconds") == 600
    assert registry.get_sample_value("stream_drift_window_step_seconds") == 120


def test_window_gauges(registry: CollectorRegistry, metrics: DriftMetrics) -> None:
    metrics.set_window("fraud", "7", "amount", 5231, 0.25)
    assert registry.get_sample_value("stream_drift_window_samples", window_labels()) == 5231
    assert registry.get_sample_value("stream_drift_missing_ratio", window_labels()) == 0.25
    with pytest.raises(ValueError, match="missing_ratio"):
        metrics.set_window("fraud", "7", "amount", 1, 1.5)
    with pytest.raises(ValueError, match="n_samples"):
        metrics.set_window("fraud", "7", "amount", -1, 0.0)


def test_event_counters(registry: CollectorRegistry, metrics: DriftMetrics) -> None:
    metrics.count_events("fraud", "accepted", 5)
    metrics.count_events("fraud", "accepted")
    metrics.count_events("fraud", "invalid", 2)
    metrics.count_events("fraud", "late", 4)

    def events(outcome: str) -> float | None:
        return registry.get_sample_value(
            "stream_drift_events_total", {"model": "fraud", "outcome": outcome}
        )

    assert (events("accepted"), events("invalid"), events("late")) == (6, 2, 4)
    assert registry.get_sample_value("stream_drift_late_events_total", {"model": "fraud"}) == 4
    with pytest.raises(ValueError, match="outcome"):
        metrics.count_events("fraud", "dropped")
    with pytest.raises(ValueError):
        metrics.count_events("fraud", "accepted", -1)


def test_alert_counter_accepts_label_or_severity(
    registry: CollectorRegistry, metrics: DriftMetrics
) -> None:
    metrics.count_alert("fraud", "warning")
    metrics.count_alert("fraud", Severity.CRITICAL)
    metrics.count_alert("fraud", "critical")
    get = registry.get_sample_value
    assert get("stream_drift_alerts_total", {"model": "fraud", "severity": "warning"}) == 1
    assert get("stream_drift_alerts_total", {"model": "fraud", "severity": "critical"}) == 2
    with pytest.raises(ValueError, match="severity"):
        metrics.count_alert("fraud", Severity.OK)


def test_send_failures_by_kind_and_reason(
    registry: CollectorRegistry, metrics: DriftMetrics
) -> None:
    def failures(kind: str, reason: str) -> float | None:
        return registry.get_sample_value(
            "stream_drift_send_failures_total", {"kind": kind, "reason": reason}
        )

    metrics.count_send_failure("deadletter", "message_too_large")
    metrics.count_send_failure("deadletter", "message_too_large")
    metrics.count_send_failure("partial", "invalid_record")
    metrics.count_send_failure("reference", "error")
    assert failures("deadletter", "message_too_large") == 2
    assert failures("partial", "invalid_record") == 1
    assert failures("reference", "error") == 1
    assert failures("partial", "message_too_large") is None
    # Bounded label sets: anything else is a programming error, not a new series.
    with pytest.raises(ValueError, match="kind"):
        metrics.count_send_failure("alert", "error")
    with pytest.raises(ValueError, match="reason"):
        metrics.count_send_failure("partial", "MessageSizeTooLargeError")
    # The counters are not per-model: a rebalance keeps them.
    metrics.retain_only((), counters=True)
    assert failures("deadletter", "message_too_large") == 2


def test_deadletter_and_last_evaluation(registry: CollectorRegistry, metrics: DriftMetrics) -> None:
    metrics.count_deadletter("bad_json", 3)
    metrics.mark_evaluated("fraud", 1_764_237_905.5)
    get = registry.get_sample_value
    assert get("stream_drift_deadletter_total", {"reason": "bad_json"}) == 3
    assert (
        get("stream_drift_last_evaluation_timestamp_seconds", {"model": "fraud"}) == 1_764_237_905.5
    )


def test_evaluation_duration(registry: CollectorRegistry, metrics: DriftMetrics) -> None:
    metrics.observe_evaluation(0.001)
    metrics.observe_evaluation(0.2)
    get = registry.get_sample_value
    assert get("stream_drift_evaluation_duration_seconds_count") == 2
    total = get("stream_drift_evaluation_duration_seconds_sum")
    assert total is not None and 0.2 <= total < 1.0
    assert get("stream_drift_evaluation_duration_seconds_bucket", {"le": "0.25"}) == 2


# --------------------------------------------------------------------- series cap
def test_cap_drops_new_label_sets_and_counts_them(registry: CollectorRegistry) -> None:
    m = DriftMetrics(registry, max_series=4)
    m.observe_result("fraud", "7", "amount", psi(), Severity.WARNING)  # 4 series
    assert m.series_count == 4
    m.observe_result("fraud", "7", "age", psi(), Severity.OK)  # 4 refused
    m.count_events("churn", "accepted")  # refused
    get = registry.get_sample_value
    assert get("stream_drift_statistic", stat_labels(feature="age")) is None
    assert get("stream_drift_alert_state", stat_labels(feature="age")) is None
    assert get("stream_drift_events_total", {"model": "churn", "outcome": "accepted"}) is None
    dropped = "stream_drift_series_dropped_total"
    assert get(dropped, {"metric": "stream_drift_statistic"}) == 1
    assert get(dropped, {"metric": "stream_drift_p_value"}) == 1
    assert get(dropped, {"metric": "stream_drift_threshold"}) == 1
    assert get(dropped, {"metric": "stream_drift_alert_state"}) == 1
    assert get(dropped, {"metric": "stream_drift_events_total"}) == 1
    # existing series still update
    m.observe_result("fraud", "7", "amount", psi(0.5, 1e-3), Severity.CRITICAL)
    assert get("stream_drift_statistic", stat_labels()) == 0.5
    assert get("stream_drift_alert_state", stat_labels()) == 2
    assert m.series_count == 4


def test_cap_counts_across_metrics_and_frees_room_on_removal(registry: CollectorRegistry) -> None:
    m = DriftMetrics(registry, max_series=4)
    m.observe_result("fraud", "7", "amount", psi(), Severity.OK)  # 3
    m.mark_evaluated("fraud", 1.0)  # 4
    m.set_window("fraud", "7", "amount", 10, 0.0)  # 2 refused
    assert registry.get_sample_value("stream_drift_window_samples", window_labels()) is None
    m.observe_result("fraud", "7", "amount", psi(p=None), Severity.OK)  # frees p_value
    m.set_window("fraud", "7", "amount", 10, 0.0)  # window_samples fits, missing_ratio not
    assert registry.get_sample_value("stream_drift_window_samples", window_labels()) == 10
    assert registry.get_sample_value("stream_drift_missing_ratio", window_labels()) is None
    m.forget_model("fraud")
    assert m.series_count == 0
    populate(m, model="churn")
    assert m.series_count == 4


def test_cap_warns_once_per_metric(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    m = DriftMetrics(registry, max_series=1)
    for model in ("a", "b", "c", "d"):
        m.mark_evaluated(model, 1.0)
    warnings = [r for r in caplog.records if "series cap" in r.getMessage()]
    assert len(warnings) == 1
    assert (
        registry.get_sample_value(
            "stream_drift_series_dropped_total",
            {"metric": "stream_drift_last_evaluation_timestamp_seconds"},
        )
        == 3
    )


# ------------------------------------------------------------------ ownership
def test_forget_model_removes_every_gauge_series_of_that_model_only(
    registry: CollectorRegistry, metrics: DriftMetrics
) -> None:
    populate(metrics, "fraud", "amount")
    populate(metrics, "fraud", "age")
    populate(metrics, "churn", "tenure")
    metrics.forget_model("fraud")
    text = exposition(registry)
    gauge_lines = [
        line
        for line in text.splitlines()
        if line.startswith(("stream_drift_statistic", "stream_drift_p_value"))
        or line.startswith(("stream_drift_alert_state", "stream_drift_window_samples"))
        or line.startswith(("stream_drift_missing_ratio", "stream_drift_last_evaluation"))
    ]
    assert gauge_lines and all('model="churn"' in line for line in gauge_lines)
    assert metrics.owned_models == {"churn"}
    # counters are kept by default (summed across workers) ...
    events = {"model": "fraud", "outcome": "accepted"}
    assert registry.get_sample_value("stream_drift_events_total", events) == 6
    # ... and removed on request
    metrics.forget_model("fraud", counters=True)
    assert registry.get_sample_value("stream_drift_events_total", events) is None
    assert (
        registry.get_sample_value(
            "stream_drift_alerts_total", {"model": "fraud", "severity": "warning"}
        )
        is None
    )
    assert registry.get_sample_value("stream_drift_late_events_total", {"model": "fraud"}) is None
    assert 'model="fraud"' not in exposition(registry)
    assert (
        registry.get_sample_value("stream_drift_statistic", stat_labels("churn", "tenure")) == 0.31
    )


def test_forget_one_model_version(registry: CollectorRegistry, metrics: DriftMetrics) -> None:
    metrics.observe_result("fraud", "7", "amount", psi(), Severity.OK)
    metrics.observe_result("fraud", "8", "amount", psi(0.4), Severity.OK)
    metrics.mark_evaluated("fraud", 5.0)
    metrics.forget_model("fraud", model_version="7")
    get = registry.get_sample_value
    assert get("stream_drift_statistic", stat_labels(version="7")) is None
    assert get("stream_drift_statistic", stat_labels(version="8")) == 0.4
    assert get("stream_drift_last_evaluation_timestamp_seconds", {"model": "fraud"}) == 5.0


def test_retain_only_keeps_owned_models(registry: CollectorRegistry, metrics: DriftMetrics) -> None:
    for model in ("a", "b", "c"):
        populate(metrics, model)
    assert metrics.owned_models == {"a", "b", "c"}
    metrics.retain_only(["b", "z"])
    assert metrics.owned_models == {"b"}
    get = registry.get_sample_value
    assert get("stream_drift_statistic", stat_labels("a")) is None
    assert get("stream_drift_statistic", stat_labels("b")) == 0.31
    assert get("stream_drift_events_total", {"model": "a", "outcome": "accepted"}) == 3
    metrics.retain_only([], counters=True)
    assert metrics.owned_models == frozenset()
    assert get("stream_drift_events_total", {"model": "a", "outcome": "accepted"}) is None
    assert get("stream_drift_deadletter_total", {"reason": "bad_json"}) == 3
    # only the deadletter counter and the stage-1 lag (not a model's series) are left
    assert metrics.series_count == 2


def test_forgotten_series_can_come_back(registry: CollectorRegistry, metrics: DriftMetrics) -> None:
    metrics.observe_result("fraud", "7", "amount", psi(), Severity.WARNING)
    metrics.forget_model("fraud")
    metrics.observe_result("fraud", "7", "amount", psi(0.4), Severity.WARNING)
    assert registry.get_sample_value("stream_drift_statistic", stat_labels()) == 0.4


# ------------------------------------------------------------------- invalid values
def test_invalid_values_by_model_feature_and_reason(
    registry: CollectorRegistry, metrics: DriftMetrics
) -> None:
    labels = {"model": "fraud", "feature": "age", "reason": "type_mismatch"}
    metrics.count_invalid_values("fraud", "age", "type_mismatch", 40)
    metrics.count_invalid_values("fraud", "age", "type_mismatch")
    metrics.count_invalid_values("fraud", "age", "type_mismatch", 0)
    assert registry.get_sample_value("stream_drift_invalid_values_total", labels) == 41.0
    # Bounded labels: missing values are not invalid ones, and reasons come from a fixed set.
    for reason in ("missing", "non_finite", ""):
        with pytest.raises(ValueError, match="reason must be one of"):
            metrics.count_invalid_values("fraud", "age", reason)
    with pytest.raises(ValueError, match="finite number >= 0"):
        metrics.count_invalid_values("fraud", "age", "type_mismatch", -1)


def test_invalid_values_respect_the_cap_and_go_with_the_model_counters(
    registry: CollectorRegistry,
) -> None:
    m = DriftMetrics(registry, max_series=2)
    for feature in ("a", "b", "c"):
        m.count_invalid_values("fraud", feature, "type_mismatch", 5)
    dropped = {"metric": "stream_drift_invalid_values_total"}
    assert registry.get_sample_value("stream_drift_series_dropped_total", dropped) == 1.0
    sample = "stream_drift_invalid_values_total"
    c = {"model": "fraud", "feature": "c", "reason": "type_mismatch"}
    assert registry.get_sample_value(sample, c) is None
    m.forget_model("fraud")  # gauges only: counters are summed across workers
    a = {"model": "fraud", "feature": "a", "reason": "type_mismatch"}
    assert registry.get_sample_value(sample, a) == 5.0
    m.forget_model("fraud", counters=True)
    assert registry.get_sample_value(sample, a) is None
    assert m.series_count == 0


def test_quality_metrics_values_and_contract(
    registry: CollectorRegistry, metrics: DriftMetrics
) -> None:
    metrics.set_performance("fraud", "7", {"accuracy": 0.875, "roc_auc": float("nan")})
    get = registry.get_sample_value
    perf = {"model": "fraud", "model_version": "7"}
    assert get("stream_drift_model_performance", {**perf, "metric": "accuracy"}) == 0.875
    # A figure that cannot be computed (one class only: no AUC) is absent, never NaN.
    assert get("stream_drift_model_performance", {**perf, "metric": "roc_auc"}) is None
    metrics.set_domain_auc("fraud", "7", 0.71, 0.58)
    assert get("stream_drift_domain_auc", perf) == 0.71
    assert get("stream_drift_domain_auc_threshold", perf) == 0.58
    for outcome, n in [("joined", 7), ("orphan_label", 2), ("expired", 1), ("duplicate", 3)]:
        metrics.count_label_join("fraud", outcome, n)
        assert get("stream_drift_label_join_total", {"model": "fraud", "outcome": outcome}) == n
    with pytest.raises(ValueError, match="outcome"):
        metrics.count_label_join("fraud", "lost")
    metrics.count_concept_detections("fraud", "adwin", 2)
    assert (
        get("stream_drift_concept_drift_detections_total", {"model": "fraud", "detector": "adwin"})
        == 2
    )
    # Gauges of a model go with it when its stage-2 partition moves; counters stay.
    metrics.forget_model("fraud")
    assert get("stream_drift_model_performance", {**perf, "metric": "accuracy"}) is None
    assert get("stream_drift_domain_auc", perf) is None
    assert get("stream_drift_label_join_total", {"model": "fraud", "outcome": "joined"}) == 7
