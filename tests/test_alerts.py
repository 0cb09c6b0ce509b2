"""Alert state machine: hysteresis, cooldown, dedup and the DESIGN §3.3 alert contract."""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_drift.pipeline.alert_record import Alert, AlertWindow, TopBin, decode_alert
from stream_drift.pipeline.alert_text import format_alert_line, format_timestamp
from stream_drift.pipeline.alerts import (
    DATA_QUALITY_SECTION,
    RUNBOOK_SECTIONS,
    AlertPolicy,
    AlertState,
    AlertTracker,
    alert_id,
)
from stream_drift.stats.quality import MismatchRate, MissingRate
from stream_drift.stats.result import DriftResult, Severity

THRESHOLD = 0.2
T0 = 1_764_237_600.0  # 2025-11-27T10:00:00Z
STEP = 300.0

ALERT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "alert_id": str,
    "status": str,
    "severity": str,
    "model": str,
    "model_version": str,
    "feature": str,
    "statistic": str,
    "category": str,
    "value": float,
    "threshold": float,
    "p_value": (float, type(None)),
    "window": dict,
    "n_current": int,
    "n_reference": int,
    "reference_id": str,
    "top_bins": list,
    "first_detected_at": str,
    "evaluated_at": str,
    "runbook_url": str,
    "summary": str,
    "dedup_key": str,
}


def result(
    value: float,
    *,
    severity: Severity | None = None,
    judged: bool = True,
    p_value: float | None = 0.001,
    statistic: str = "psi",
    threshold: float = THRESHOLD,
) -> DriftResult:
    drift = judged and value >= threshold
    if severity is None:
        severity = Severity.WARNING if drift else Severity.OK
    return DriftResult(
        statistic, value, threshold, p_value, drift, severity, 100_000, 5231, judged=judged
    )


DRIFT = 0.31  # >= threshold
BAND = 0.17  # between threshold * 0.8 = 0.16 and the threshold
CLEAR = 0.05  # below threshold * 0.8


@dataclass
class Feed:
    """Drives one tracker with windows of STEP seconds, evaluated 5 s after they close."""

    tracker: AlertTracker
    t: float = T0
    alerts: list[Alert] = field(default_factory=list)

    def __call__(
        self,
        r: DriftResult,
        *,
        feature: str = "amount",
        top_bins: list[dict[str, object]] | None = None,
        advance: float = STEP,
    ) -> Alert | None:
        alert = self.tracker.observe(
            model="fraud",
            model_version="7",
            feature=feature,
            result=r,
            window_start=self.t,
            window_end=self.t + STEP,
            evaluated_at=self.t + STEP + 5,
            reference_id="ref-abc",
            top_bins=top_bins or (),
        )
        self.t += advance
        if alert is not None:
            self.alerts.append(alert)
        return alert

    def statuses(self, results: list[DriftResult]) -> list[str | None]:
        out = []
        for r in results:
            a = self(r)
            out.append(None if a is None else a.status)
        return out


def feed(**policy: object) -> Feed:
    return Feed(AlertTracker(AlertPolicy(**policy)))  # type: ignore[arg-type]


# ----------------------------------------------------------------------- policy
@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("fire_after", 0),
        ("fire_after", 1.5),
        ("fire_after", True),
        ("resolve_after", 0),
        ("resolve_ratio", 0.0),
        ("resolve_ratio", 1.01),
        ("resolve_ratio", float("nan")),
        ("cooldown_seconds", -1.0),
        ("cooldown_seconds", float("inf")),
        ("runbook_base_url", None),
        ("runbook_base_url", "docs/runbook.md"),
        ("runbook_base_url", "https://wiki.example.org/runbook.md#drift"),
    ],
)
def test_policy_rejects_bad_values_naming_the_field(name: str, bad: object) -> None:
    # pydantic's message: the model, then the field (or, for a cross-key check, its key).
    with pytest.raises(ValueError, match=rf"for AlertPolicy\n\s*(alerts\.)?{name}\b"):
        AlertPolicy(**{name: bad})  # type: ignore[arg-type]


def test_no_runbook_base_url_means_no_link() -> None:
    f = feed(fire_after=1)
    alert = f(result(DRIFT))
    assert alert is not None and alert.runbook_url == ""


def test_runbook_url_links_the_section_of_the_alert_severity() -> None:
    base = "https://wiki.example.org/stream-drift/runbook.md"
    f = feed(fire_after=1, runbook_base_url=base)
    warning = f(result(DRIFT))
    critical = f(result(DRIFT, severity=Severity.CRITICAL))
    assert warning is not None and warning.runbook_url == f"{base}#streamdriftwarning"
    assert critical is not None and critical.status == "escalated"
    assert critical.runbook_url == f"{base}#streamdriftcritical"


def test_runbook_sections_exist_in_docs_runbook() -> None:
    """Every anchor an alert links to is a heading of docs/runbook.md."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "runbook.md").read_text()
    anchors = {line[3:].strip().lower() for line in text.splitlines() if line.startswith("## ")}
    assert set(RUNBOOK_SECTIONS.values()) | {DATA_QUALITY_SECTION} <= anchors


def test_policy_defaults() -> None:
    p = AlertPolicy()
    assert (p.fire_after, p.resolve_after, p.resolve_ratio, p.cooldown_seconds) == (
        2,
        2,
        0.8,
        600.0,
    )
    assert p.runbook_base_url == ""


# -------------------------------------------------------------------- sequences
def test_fires_after_k_consecutive_drifting_windows() -> None:
    f = feed(fire_after=3)
    assert f.statuses([result(DRIFT)] * 3) == [None, None, "firing"]
    assert f.tracker.state("fraud", "amount", "psi") is Severity.WARNING


def test_a_calm_window_restarts_the_fire_count() -> None:
    f = feed(fire_after=2)
    seq = [result(DRIFT), result(CLEAR), result(DRIFT), result(BAND), result(DRIFT), result(DRIFT)]
    assert f.statuses(seq) == [None, None, None, None, None, "firing"]


def test_no_refire_while_firing() -> None:
    f = feed(fire_after=1)
    assert f.statuses([result(DRIFT)] * 10) == ["firing"] + [None] * 9


def test_escalates_once_from_warning_to_critical_and_resolves_with_incident_severity() -> None:
    f = feed(fire_after=1, resolve_after=1)
    crit = result(0.6, severity=Severity.CRITICAL)
    seq = [result(DRIFT), crit, crit, result(DRIFT), result(CLEAR)]
    assert f.statuses(seq) == ["firing", "escalated", None, None, "resolved"]
    assert [a.severity for a in f.alerts] == ["warning", "critical", "critical"]
    assert f.tracker.state("fraud", "amount", "psi") is Severity.OK


def test_critical_at_fire_time_is_not_escalated_later() -> None:
    f = feed(fire_after=1)
    crit = result(0.6, severity=Severity.CRITICAL)
    assert f.statuses([crit, crit, result(DRIFT)]) == ["firing", None, None]
    assert f.alerts[0].severity == "critical"
    assert f.tracker.state("fraud", "amount", "psi") is Severity.CRITICAL


def test_drift_with_severity_ok_still_fires_as_warning() -> None:
    f = feed(fire_after=1)
    odd = DriftResult("psi", 0.3, 0.2, None, True, Severity.OK, 10, 10)
    assert f.statuses([odd]) == ["firing"]
    assert f.alerts[0].severity == "warning"


def test_hysteresis_band_keeps_firing() -> None:
    f = feed(fire_after=1, resolve_after=1)
    assert f.statuses([result(DRIFT)] + [result(BAND)] * 20) == ["firing"] + [None] * 20
    assert f.tracker.state("fraud", "amount", "psi") is Severity.WARNING
    assert f.statuses([result(CLEAR)]) == ["resolved"]


def test_band_breaks_the_resolve_streak() -> None:
    f = feed(fire_after=1, resolve_after=2)
    seq = [result(DRIFT), result(CLEAR), result(BAND), result(CLEAR), result(DRIFT), result(CLEAR)]
    assert f.statuses(seq) == ["firing", None, None, None, None, None]
    assert f.statuses([result(CLEAR)]) == ["resolved"]


def test_band_does_not_fire_an_ok_key() -> None:
    f = feed(fire_after=1)
    assert f.statuses([result(BAND)] * 5) == [None] * 5
    assert f.tracker.state("fraud", "amount", "psi") is Severity.OK


def test_resolves_after_k_clear_windows() -> None:
    f = feed(fire_after=1, resolve_after=3)
    assert f.statuses([result(DRIFT)] + [result(CLEAR)] * 3) == ["firing", None, None, "resolved"]
    assert f.statuses([result(CLEAR)] * 3) == [None] * 3


def test_cooldown_blocks_then_allows_refire() -> None:
    f = feed(fire_after=1, resolve_after=1, cooldown_seconds=900)
    assert f.statuses([result(DRIFT), result(CLEAR)]) == ["firing", "resolved"]
    resolved_at = f.t + 5  # evaluated_at of the resolving window (f.t already advanced)
    # Windows evaluated 300 s and 600 s after the resolve: still cooling down.
    assert f.statuses([result(DRIFT), result(DRIFT)]) == [None, None]
    assert f.tracker.state("fraud", "amount", "psi") is Severity.OK
    # 900 s after the resolve: the drift that persisted fires now.
    alert = f(result(DRIFT))
    assert alert is not None and alert.status == "firing"
    assert alert.evaluated_at == format_timestamp(resolved_at + 900)
    # first_detected_at is the first drifting window of the streak, inside the cooldown.
    assert alert.first_detected_at == format_timestamp(resolved_at + 300)


def test_cooldown_zero_allows_immediate_refire() -> None:
    f = feed(fire_after=1, resolve_after=1, cooldown_seconds=0)
    assert f.statuses([result(DRIFT), result(CLEAR), result(DRIFT)]) == [
        "firing",
        "resolved",
        "firing",
    ]


def test_cooldown_is_measured_in_evaluation_time_not_wall_clock() -> None:
    f = feed(fire_after=1, resolve_after=1, cooldown_seconds=600)
    assert f.statuses([result(DRIFT), result(CLEAR)]) == ["firing", "resolved"]
    # Evaluations that do not advance the clock never leave the cooldown.
    for _ in range(5):
        assert f(result(DRIFT), advance=0) is None
    f.t += 600
    assert f(result(DRIFT)) is not None


@pytest.mark.parametrize("value", [DRIFT, BAND, CLEAR])
def test_unjudged_windows_change_nothing(value: float) -> None:
    seq = [DRIFT, CLEAR, DRIFT, DRIFT, BAND, CLEAR, CLEAR, DRIFT, DRIFT, CLEAR, CLEAR]
    plain = feed(cooldown_seconds=0)
    expected = plain.statuses([result(v) for v in seq])
    mixed = feed(cooldown_seconds=0)
    got = []
    for v in seq:
        assert mixed(result(value, judged=False), advance=0) is None
        got.append(mixed(result(v)))
    assert [None if a is None else a.status for a in got] == expected
    assert [a.alert_id for a in mixed.alerts] == [a.alert_id for a in plain.alerts]


def test_unjudged_result_even_with_is_drift_set_is_ignored() -> None:
    f = feed(fire_after=1)
    r = DriftResult("psi", 0.9, 0.2, 0.0, True, Severity.CRITICAL, 10, 3, judged=False)
    assert f.statuses([r] * 3) == [None] * 3
    assert len(f.tracker) == 0


def test_alert_id_stable_within_incident_and_new_for_next() -> None:
    f = feed(fire_after=1, resolve_after=1, cooldown_seconds=0)
    crit = result(0.6, severity=Severity.CRITICAL)
    f.statuses([result(DRIFT), crit, result(CLEAR), result(DRIFT), result(CLEAR)])
    ids = [a.alert_id for a in f.alerts]
    assert [a.status for a in f.alerts] == [
        "firing",
        "escalated",
        "resolved",
        "firing",
        "resolved",
    ]
    assert ids[0] == ids[1] == ids[2]
    assert ids[3] == ids[4] != ids[0]
    first = {a.first_detected_at for a in f.alerts[:3]}
    assert len(first) == 1


def test_keys_are_independent() -> None:
    f = feed(fire_after=1)
    assert f(result(DRIFT), feature="amount") is not None
    assert f(result(DRIFT, statistic="ks"), feature="amount") is not None
    assert f(result(CLEAR), feature="age") is None
    assert f.tracker.state("fraud", "amount", "psi") is Severity.WARNING
    assert f.tracker.state("fraud", "amount", "ks") is Severity.WARNING
    assert f.tracker.state("fraud", "age", "psi") is Severity.OK
    assert {k for k, _ in f.tracker.open_alerts()} == {
        ("fraud", "amount", "psi"),
        ("fraud", "amount", "ks"),
    }


def test_idle_keys_are_pruned() -> None:
    f = feed(fire_after=2, resolve_after=1, cooldown_seconds=600)
    f.statuses([result(CLEAR)] * 3)
    assert len(f.tracker) == 0
    f.statuses([result(DRIFT)])
    assert len(f.tracker) == 1  # a streak is pending
    f.statuses([result(DRIFT), result(CLEAR)])
    assert len(f.tracker) == 1  # cooling down
    f.statuses([result(CLEAR)] * 3)
    assert len(f.tracker) == 0  # cooldown over: back to a fresh key


def test_observe_validates_timestamps() -> None:
    t = AlertTracker(AlertPolicy())
    kw: dict[str, object] = {
        "model": "m",
        "model_version": "1",
        "feature": "x",
        "result": result(DRIFT),
        "window_start": T0,
        "window_end": T0 + 60,
        "evaluated_at": T0 + 61,
        "reference_id": "r",
    }
    with pytest.raises(ValueError, match="window_end"):
        t.observe(**{**kw, "window_end": T0 - 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="evaluated_at"):
        t.observe(**{**kw, "evaluated_at": float("nan")})  # type: ignore[arg-type]


# ------------------------------------------------------------------ alert shape
TOP_BINS: list[dict[str, object]] = [
    {"bin": "[0, 10)", "reference": 0.2, "current": 0.15},
    {"bin": "[120, 250)", "reference": 0.1, "current": 0.32},
]


def _bins(alert: Alert) -> list[object]:
    return [msgspec.to_builtins(b) for b in alert.top_bins]


def _check_fields(record: Alert) -> None:
    """The alert as written to the topic: every field, in order, of the right JSON type."""
    alert = json.loads(msgspec.json.encode(record))
    assert set(alert) == set(ALERT_FIELDS)
    for name, kind in ALERT_FIELDS.items():
        assert isinstance(alert[name], kind), (name, alert[name])
    assert not isinstance(alert["n_current"], bool)
    window = alert["window"]
    assert isinstance(window, dict) and set(window) == {"start", "end"}
    for stamp in (
        window["start"],
        window["end"],
        alert["first_detected_at"],
        alert["evaluated_at"],
    ):
        assert isinstance(stamp, str) and stamp.endswith("Z")
        assert datetime.fromisoformat(stamp).utcoffset() is not None
    assert alert["dedup_key"] == f"fraud/amount/{alert['statistic']}"
    assert alert["status"] in ("firing", "escalated", "resolved")
    assert alert["severity"] in ("warning", "critical")
    json.dumps(alert, allow_nan=False)


def test_every_field_present_with_the_right_type() -> None:
    f = feed(fire_after=1, resolve_after=1)
    f(result(DRIFT), top_bins=TOP_BINS)
    f(result(0.6, severity=Severity.CRITICAL), top_bins=TOP_BINS)
    f(result(CLEAR, p_value=None))
    assert len(f.alerts) == 3
    for alert in f.alerts:
        _check_fields(alert)
    firing = f.alerts[0]
    assert firing.value == DRIFT and firing.threshold == THRESHOLD
    assert firing.p_value == 0.001
    assert firing.window == AlertWindow(start="2025-11-27T10:00:00Z", end="2025-11-27T10:05:00Z")
    assert firing.evaluated_at == "2025-11-27T10:05:05Z"
    assert firing.first_detected_at == "2025-11-27T10:05:05Z"
    assert (firing.n_current, firing.n_reference) == (5231, 100_000)
    assert firing.reference_id == "ref-abc"
    assert firing.model_version == "7"
    assert _bins(firing) == TOP_BINS
    assert firing.runbook_url == ""
    assert firing.category == "drift"
    assert f.alerts[2].p_value is None


def test_top_bins_are_copied() -> None:
    f = feed(fire_after=1)
    bins = [dict(b) for b in TOP_BINS]
    alert = f(result(DRIFT), top_bins=bins)
    bins[0]["current"] = 0.99
    assert alert is not None and _bins(alert) == TOP_BINS


def test_firing_summary_is_self_contained() -> None:
    f = feed(fire_after=1)
    alert = f(result(DRIFT, p_value=1e-9), top_bins=TOP_BINS)
    assert alert is not None
    assert alert.summary == (
        "fraud v7: feature 'amount' drifted (PSI 0.31 ≥ threshold 0.20, p=1e-09) over window "
        "2025-11-27 10:00–10:05 UTC on 5,231 events vs 100,000 reference; "
        "most changed bin [120, 250): 10% → 32%."
    )


def test_summaries_mention_model_feature_statistic_value_threshold_window() -> None:
    f = feed(fire_after=1, resolve_after=1)
    f(result(DRIFT))
    f(result(0.6, severity=Severity.CRITICAL))
    f(result(CLEAR, p_value=None))
    for alert in f.alerts:
        s = alert.summary
        for needle in ("fraud", "v7", "'amount'", "PSI", "0.20", "UTC", "5,231", "100,000"):
            assert needle in s, (needle, s)
        assert f"{alert.value:.2f}" in s
    assert "10:10–10:15 UTC" in f.alerts[2].summary
    resolved = f.alerts[2].summary
    assert "back to normal" in resolved and "resolve level 0.16" in resolved
    assert "critical" in resolved and "p=" not in resolved
    assert "escalated to critical" in f.alerts[1].summary


def test_summary_never_prints_value_equal_to_threshold_when_they_differ() -> None:
    f = feed(fire_after=1)
    alert = f(result(0.2004))
    assert alert is not None
    assert "0.2004 ≥ threshold 0.2" in alert.summary


def test_format_alert_line() -> None:
    f = feed(fire_after=1)
    alert = f(result(DRIFT))
    assert alert is not None
    line = format_alert_line(alert)
    assert "\n" not in line
    for needle in ("FIRING", "WARNING", "fraud/amount/psi", "0.31 vs 0.20", "10:00–10:05 UTC"):
        assert needle in line
    assert line.endswith(alert.summary)
    assert "fraud" in format_alert_line({"model": "fraud"})  # tolerant of partial input
    # A typed alert prints exactly as the JSON object it is on the topic.
    assert line == format_alert_line(json.loads(msgspec.json.encode(alert)))


def test_the_typed_alert_encodes_to_the_alert_contract() -> None:
    """DESIGN §3.3 as written to drift.alerts: a hand-built object, key order included."""
    f = feed(fire_after=1, resolve_after=1, runbook_base_url="https://wiki.example.org/runbook")
    alert = f(result(DRIFT, p_value=1e-9), top_bins=TOP_BINS)
    assert alert is not None
    # As DESIGN §3.3 shows it, plus category, dedup_key and summary.
    expected = json.loads(
        '{"alert_id": "", "status": "firing", "severity": "warning", "model": "fraud", '
        '"model_version": "7", "feature": "amount", "statistic": "psi", "category": "drift", '
        '"value": 0.31, "threshold": 0.2, "p_value": 1e-9, '
        '"window": {"start": "2025-11-27T10:00:00Z", "end": "2025-11-27T10:05:00Z"}, '
        '"n_current": 5231, "n_reference": 100000, "reference_id": "ref-abc", '
        '"top_bins": [{"bin": "[0, 10)", "reference": 0.2, "current": 0.15}, '
        '{"bin": "[120, 250)", "reference": 0.1, "current": 0.32}], '
        '"first_detected_at": "2025-11-27T10:05:05Z", "evaluated_at": "2025-11-27T10:05:05Z", '
        '"runbook_url": "https://wiki.example.org/runbook#streamdriftwarning", '
        '"dedup_key": "fraud/amount/psi", "summary": ""}'
    )
    expected["alert_id"] = alert_id("fraud", "amount", "psi", T0 + STEP + 5)
    expected["summary"] = alert.summary  # its text: test_firing_summary_is_self_contained
    wire = json.loads(msgspec.json.encode(alert))
    assert wire == expected
    assert list(wire) == list(expected)
    assert list(wire["window"]) == ["start", "end"]
    assert [list(b) for b in wire["top_bins"]] == [["bin", "reference", "current"]] * 2
    resolved = f(result(CLEAR, p_value=None))
    assert resolved is not None and resolved.status == "resolved"
    unset = json.loads(msgspec.json.encode(resolved))
    assert "p_value" in unset and unset["p_value"] is None  # null, never left out
    assert unset["top_bins"] == []


def test_decode_alert_types_what_it_can_and_keeps_other_objects() -> None:
    f = feed(fire_after=1)
    alert = f(result(DRIFT), top_bins=TOP_BINS)
    assert alert is not None
    assert decode_alert(msgspec.json.encode(alert)) == alert
    wire = json.loads(msgspec.json.encode(alert))
    assert decode_alert(json.dumps(wire)) == alert  # as json.dumps wrote it: spaces, \u escapes
    older = {k: v for k, v in wire.items() if k != "category"}
    assert decode_alert(json.dumps(older)) == older  # not an Alert: the object as it is
    assert decode_alert('{"status": "firing", "model": "fraud"}') == {
        "status": "firing",
        "model": "fraud",
    }
    for bad in ("not json {", "[1, 2]", '"firing"', b"\xff"):
        with pytest.raises(ValueError):
            decode_alert(bad)


# ---------------------------------------------------------------- serialisation
def test_state_round_trips_through_json() -> None:
    f = feed(fire_after=1)
    f(result(DRIFT))
    snapshot = json.loads(json.dumps(f.tracker.to_dict(), allow_nan=False))
    again = AlertTracker.from_dict(snapshot)
    assert again.to_dict() == f.tracker.to_dict()
    assert again.policy == f.tracker.policy
    assert again.get("fraud", "amount", "psi") == f.tracker.get("fraud", "amount", "psi")


def test_from_dict_can_override_policy() -> None:
    t = AlertTracker(AlertPolicy(fire_after=5))
    policy = AlertPolicy(fire_after=1)
    assert AlertTracker.from_dict(t.to_dict(), policy=policy).policy is policy


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"version": 99, "policy": {}, "states": []},
        {"version": 1, "policy": {"fire_after": 0}, "states": []},
        {"version": 1, "policy": {"nope": 1}, "states": []},
        {"version": 1, "policy": {}, "states": [{"model": "m"}]},
        {"version": 1, "policy": {}, "states": "x"},
    ],
)
def test_from_dict_rejects_malformed_state(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        AlertTracker.from_dict(data)


def test_alert_state_rejects_open_without_first_detection() -> None:
    bad = AlertState(Severity.WARNING).to_dict()
    with pytest.raises(ValueError, match="first_detected_at"):
        AlertState.from_dict(bad)


# ------------------------------------------------------------ hypothesis properties
FEATURES = ("amount", "age")
VALUES = (0.0, 0.05, 0.15, 0.16, 0.17, 0.19, 0.2, 0.25, 0.31, 0.6)

window_st = st.tuples(
    st.sampled_from(FEATURES),
    st.sampled_from(VALUES),
    st.booleans(),  # critical when drifting
    st.integers(0, 9).map(lambda i: i != 0),  # judged, ~90%
    st.floats(1.0, 900.0, allow_nan=False),  # seconds to the next evaluation
)
policy_st = st.builds(
    AlertPolicy,
    fire_after=st.integers(1, 3),
    resolve_after=st.integers(1, 3),
    resolve_ratio=st.sampled_from([0.5, 0.8, 1.0]),
    cooldown_seconds=st.sampled_from([0.0, 300.0, 1000.0]),
)

Window = tuple[str, float, bool, bool, float]


def _replay(tracker: AlertTracker, windows: list[Window], t: float) -> tuple[list[object], float]:
    out: list[object] = []
    for feature, value, critical, judged, dt in windows:
        drift = judged and value >= THRESHOLD
        severity = (Severity.CRITICAL if critical else Severity.WARNING) if drift else Severity.OK
        r = DriftResult("psi", value, THRESHOLD, 0.01, drift, severity, 1000, 500, judged=judged)
        out.append(
            tracker.observe(
                model="fraud",
                model_version="7",
                feature=feature,
                result=r,
                window_start=t - 60,
                window_end=t,
                evaluated_at=t,
                reference_id="ref",
            )
        )
        t += dt
    return out, t


@settings(max_examples=300, deadline=None)
@given(policy=policy_st, windows=st.lists(window_st, max_size=80))
def test_statuses_alternate_per_key(policy: AlertPolicy, windows: list[Window]) -> None:
    tracker = AlertTracker(policy)
    alerts, _ = _replay(tracker, windows, T0)
    for feature in FEATURES:
        mine = [a for a in alerts if isinstance(a, Alert) and a.feature == feature]
        statuses = [a.status for a in mine]
        assert all(a != b for a, b in itertools.pairwise(statuses))
        main = [s for s in statuses if s != "escalated"]
        assert main == ["firing", "resolved"] * (len(main) // 2) + ["firing"] * (len(main) % 2)
        # escalated only inside an incident, at most once, and from warning to critical
        previous = None
        incident_ids: list[str] = []
        for a in mine:
            if a.status == "escalated":
                assert previous is not None and previous.status == "firing"
                assert previous.severity == "warning" and a.severity == "critical"
                assert a.alert_id == previous.alert_id
            elif a.status == "resolved":
                assert previous is not None and previous.status != "resolved"
                assert a.alert_id == previous.alert_id
                assert a.severity == previous.severity
            else:
                incident_ids.append(str(a.alert_id))
            previous = a
        assert len(set(incident_ids)) == len(incident_ids)
        open_now = bool(mine) and mine[-1].status != "resolved"
        assert (tracker.state("fraud", feature, "psi") is not Severity.OK) == open_now


def _json_copy(tracker: AlertTracker) -> AlertTracker:
    return AlertTracker.from_dict(json.loads(json.dumps(tracker.to_dict(), allow_nan=False)))


@settings(max_examples=300, deadline=None)
@given(policy=policy_st, windows=st.lists(window_st, min_size=1, max_size=60), data=st.data())
def test_json_round_trip_mid_stream_gives_identical_future(
    policy: AlertPolicy, windows: list[Window], data: st.DataObject
) -> None:
    split = data.draw(st.integers(0, len(windows)), label="split")
    reference, _ = _replay(AlertTracker(policy), windows, T0)

    first = AlertTracker(policy)
    head, t = _replay(first, windows[:split], T0)
    tail, _ = _replay(_json_copy(first), windows[split:], t)
    assert head + tail == reference


@settings(max_examples=300, deadline=None)
@given(policy=policy_st, windows=st.lists(window_st, max_size=60))
def test_json_round_trip_before_every_window_gives_identical_behaviour(
    policy: AlertPolicy, windows: list[Window]
) -> None:
    reference, _ = _replay(AlertTracker(policy), windows, T0)
    tracker, t, got = AlertTracker(policy), T0, []
    for window in windows:
        tracker = _json_copy(tracker)  # as if every step were recovered from the changelog
        out, t = _replay(tracker, [window], t)
        got += out
    assert got == reference


# ----------------------------------------------------------------- data quality
def quality(
    rate: float,
    *,
    statistic: str = "mismatch_rate",
    reference: float = 0.0,
    n: int = 2000,
    kind: str = "numeric",
) -> DriftResult:
    """A data-quality verdict as the statistic gives it (real threshold and p-value)."""
    cls = MismatchRate if statistic == "mismatch_rate" else MissingRate
    m = 20_000
    k, x = round(reference * m), round(rate * n)
    r = cls().evaluate([m - k, k], [n - x, x])
    return dataclasses.replace(r, kind=kind)


def test_a_type_mismatch_fires_a_data_quality_alert_through_the_lifecycle() -> None:
    base = "https://wiki.example.org/stream-drift/runbook.md"
    f = feed(runbook_base_url=base)  # fire_after 2, resolve_after 2, cooldown 600 s
    rates = [0.0, 0.42, 0.42, 0.62, 0.61, 0.001, 0.0]
    statuses = f.statuses([quality(rate) for rate in rates])
    assert statuses == [None, None, "firing", "escalated", None, None, "resolved"]
    firing, escalated, resolved = f.alerts
    for alert in f.alerts:
        _check_fields(alert)
        assert alert.category == "data_quality"
        assert alert.statistic == "mismatch_rate"
        assert alert.runbook_url == f"{base}#streamdriftdataquality"
        assert alert.alert_id == firing.alert_id  # one incident, one id
    assert firing.severity == "warning" and escalated.severity == "critical"
    assert firing.value == 0.42 and firing.threshold == 0.05
    assert firing.top_bins == (TopBin(bin="(type mismatch)", reference=0.0, current=0.42),)
    assert firing.summary == (
        "fraud v7: feature 'amount' data quality — 42% of values are not numbers "
        "(type mismatch) vs 0% in the reference (threshold 5%) over window "
        "2025-11-27 10:10–10:15 UTC on 2,000 events."
    )
    assert escalated.summary.startswith(
        "fraud v7: feature 'amount' data quality worse (critical) — 62% of values are not "
        "numbers (type mismatch) vs 0% in the reference (threshold 5%)"
    )
    assert resolved.summary.startswith(
        "fraud v7: feature 'amount' data quality back to normal — 0% of values are not numbers "
        "(type mismatch) vs 0% in the reference, below the resolve level 4% (threshold 5%)"
    )
    assert "critical problem lasted 25 min since 2025-11-27 10:10 UTC" in resolved.summary
    # The cooldown applies as to drift alerts: no re-firing within 600 s of the resolve.
    assert [f(quality(0.5), advance=60.0) for _ in range(3)] == [None, None, None]


def test_missing_and_categorical_summaries_say_what_the_values_are() -> None:
    f = feed(fire_after=1)
    missing = f(quality(0.3, statistic="missing_rate", reference=0.02, n=1000), feature="age")
    cat = f(quality(0.2, kind="categorical"), feature="country")
    unknown = f(quality(0.2, kind=""), feature="zip")
    assert missing is not None and cat is not None and unknown is not None
    assert "30% of values are missing (absent or null) vs 2% in the reference (threshold 7%)" in (
        missing.summary
    )
    assert missing.top_bins == (TopBin(bin="(missing)", reference=0.02, current=0.3),)
    assert "20% of values are lists or objects, not categories (type mismatch)" in cat.summary
    assert "20% of values are of the wrong type (type mismatch)" in unknown.summary
    # A plain DriftResult of a quality statistic (no reference rate) still reads well.
    plain = DriftResult("missing_rate", 0.4, 0.05, 1e-9, True, Severity.WARNING, 20_000, 900)
    alert = f(plain, feature="b", top_bins=TOP_BINS)
    assert alert is not None and alert.category == "data_quality"
    assert "40% of values are missing (absent or null) (threshold 5%)" in alert.summary
    assert _bins(alert) == TOP_BINS


def test_data_quality_hysteresis_sits_above_the_reference_rate() -> None:
    """A feature null in 40 % of the reference resolves once back near 40 % (the band is
    above the reference rate: threshold × 0.8 = 36 % would never be reached)."""
    f = feed(fire_after=1, resolve_after=2)
    high = quality(0.55, statistic="missing_rate", reference=0.4, n=5000)
    normal = quality(0.4, statistic="missing_rate", reference=0.4, n=5000)
    band = quality(0.445, statistic="missing_rate", reference=0.4, n=5000)
    assert high.threshold == pytest.approx(0.45) and not normal.is_drift and not band.is_drift
    assert f.statuses([high, band, normal, normal]) == ["firing", None, None, "resolved"]
    assert "below the resolve level 44%" in f.alerts[-1].summary


def test_drift_and_data_quality_alerts_of_one_feature_are_separate_incidents() -> None:
    f = feed(fire_after=1)
    drift = f(result(DRIFT))
    dq = f(quality(0.42))
    assert drift is not None and dq is not None
    assert (drift.category, dq.category) == ("drift", "data_quality")
    assert drift.alert_id != dq.alert_id
    assert f.tracker.state("fraud", "amount", "psi") is Severity.WARNING
    assert f.tracker.state("fraud", "amount", "mismatch_rate") is Severity.WARNING
