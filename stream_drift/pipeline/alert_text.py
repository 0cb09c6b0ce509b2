"""The words of an alert: its summary sentence, its one-line form, and how times read.

An SRE reads these at 3 a.m., often from a phone notification alone, so a summary names the
model and version, the feature, the statistic with its value against the threshold (or the
resolve level), the window and the sample sizes; the most changed bin for drift, the rates in
percent for data quality. :func:`format_alert_line` is what ``stream-drift alerts`` prints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

import msgspec

from stream_drift.pipeline.alert_record import (
    Alert,
    ConceptDriftResult,
    MultivariateResult,
    Observation,
    Status,
    TopBin,
    alert_category,
)
from stream_drift.stats.result import DriftResult, Severity

__all__ = ["format_alert_line", "format_timestamp", "parse_timestamp", "summary"]

_STAT_NAMES: Final[Mapping[str, str]] = {
    "psi": "PSI",
    "kl": "KL",
    "js": "JS distance",
    "ks": "KS",
    "chi2": "chi-square",
    "missing_rate": "missing rate",
    "mismatch_rate": "type-mismatch rate",
    "concept_drift": "concept-drift detections",
    "domain_auc": "domain-classifier AUC",
}

_DETECTOR_TITLES: Final[Mapping[str, str]] = {
    "adwin": "ADWIN",
    "ddm": "DDM",
    "eddm": "EDDM",
    "hddm_a": "HDDM_A",
    "hddm_w": "HDDM_W",
    "page_hinkley": "Page-Hinkley",
    "kswin": "KSWIN",
}


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def format_timestamp(ts: float) -> str:
    """RFC 3339 UTC string of epoch seconds (milliseconds shown only when non-zero).

    Examples
    --------
    >>> format_timestamp(1764237600)
    '2025-11-27T10:00:00Z'
    >>> format_timestamp(1764237600.25)
    '2025-11-27T10:00:00.250Z'
    """
    dt = _utc(ts)
    if dt.microsecond // 1000:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: object) -> float | None:
    """Epoch seconds of an RFC 3339 string (UTC when it has no offset); ``None`` if not one.

    Examples
    --------
    >>> parse_timestamp("2025-11-27T10:00:00.250Z")
    1764237600.25
    >>> parse_timestamp("yesterday") is None
    True
    """
    if not isinstance(text, str):
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _num(x: float) -> str:
    """Short human form of a statistic value: 0.31, 0.20, 0.043, 1.5e-05, 12,345."""
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    mag = abs(x)
    if mag >= 10_000:
        return f"{x:,.0f}"
    if mag >= 0.1:
        return f"{x:.2f}"
    return f"{x:.2g}"


def _pair(value: float, threshold: float) -> tuple[str, str]:
    """Format two numbers so that different values never print identically."""
    v, t = _num(value), _num(threshold)
    if v == t and value != threshold:
        v, t = f"{value:.6g}", f"{threshold:.6g}"
    return v, t


def _pct(p: object) -> str:
    if isinstance(p, bool) or not isinstance(p, int | float) or not math.isfinite(p):
        return "?"
    return f"{p * 100:.3g}%"


def _hm(dt: datetime) -> str:
    return dt.strftime("%H:%M:%S" if dt.second or dt.microsecond else "%H:%M")


def _window_text(start: float, end: float) -> str:
    """``2025-11-27 10:00–10:05 UTC`` (dates repeated only when the day changes)."""
    a, b = _utc(start), _utc(end)
    if a.date() == b.date():
        return f"{a:%Y-%m-%d} {_hm(a)}–{_hm(b)} UTC"
    return f"{a:%Y-%m-%d} {_hm(a)} – {b:%Y-%m-%d} {_hm(b)} UTC"


def _duration(seconds: float) -> str:
    minutes = max(0, round(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} days {hours % 24} h"


def _lasted(seen: Observation, severity: Severity, since: float, what: str) -> str:
    """``critical drift lasted 25 min since 2025-11-27 10:05 UTC.``"""
    return (
        f"{severity.label} {what} lasted {_duration(seen.evaluated_at - since)} since "
        f"{_utc(since):%Y-%m-%d %H:%M} UTC."
    )


def _most_changed(bins: Sequence[TopBin]) -> str | None:
    best: tuple[float, TopBin] | None = None
    for b in bins:
        delta = abs(float(b.current) - float(b.reference))
        if math.isfinite(delta) and (best is None or delta > best[0]):
            best = (delta, b)
    if best is None:
        return None
    b = best[1]
    return f"most changed bin {b.bin}: {_pct(b.reference)} → {_pct(b.current)}"


def _who(model: str, model_version: str) -> str:
    version = model_version.strip()
    if not version:
        return model
    if version[:1] in ("v", "V"):
        return f"{model} {version}"
    return f"{model} v{version}"


def summary(
    seen: Observation, status: Status, severity: Severity, since: float, lower: float
) -> str:
    """One sentence an SRE understands from the text alone.

    Parameters
    ----------
    seen
        The evaluation that changed the incident's state.
    status, severity
        The state change and the incident's severity.
    since
        When the incident was first detected (epoch seconds).
    lower
        The resolve level (:func:`~stream_drift.pipeline.alerts.resolve_level`).

    Examples
    --------
    >>> r = DriftResult("psi", 0.31, 0.2, 1e-9, True, Severity.CRITICAL, 100_000, 5231)
    >>> seen = Observation("fraud", "7", "amount", r, 1764237600, 1764237900, 1764237905,
    ...                    "ref-1", (TopBin(bin="[120, 250)", reference=0.1, current=0.32),))
    >>> print(summary(seen, "firing", Severity.CRITICAL, 1764237905, 0.16))
    fraud v7: feature 'amount' drifted (PSI 0.31 ≥ threshold 0.20, p=1e-09) over window 2025-11-27 10:00–10:05 UTC on 5,231 events vs 100,000 reference; most changed bin [120, 250): 10% → 32%.
    """  # noqa: E501
    result, feature = seen.result, seen.feature
    who = _who(seen.model, seen.model_version)
    if alert_category(result.statistic) == "data_quality":
        return _quality_summary(seen, who, status, severity, since, lower)
    if isinstance(result, ConceptDriftResult):
        return _concept_summary(seen, result, who, status, severity, since)
    if isinstance(result, MultivariateResult):
        return _multivariate_summary(seen, result, who, status, severity, since, lower)
    stat = _STAT_NAMES.get(result.statistic, result.statistic.upper())
    p = "" if result.p_value is None else f", p={result.p_value:.2g}"
    where = (
        f"over window {_window_text(seen.window_start, seen.window_end)} on "
        f"{result.n_current:,} events vs {result.n_reference:,} reference"
    )
    if status == "resolved":
        v, lo = _pair(result.value, lower)
        return (
            f"{who}: feature '{feature}' back to normal ({stat} {v} < resolve level {lo}, "
            f"threshold {_num(result.threshold)}{p}) {where}; "
            + _lasted(seen, severity, since, "drift")
        )
    v, t = _pair(result.value, result.threshold)
    verb = "drifted" if status == "firing" else f"drift escalated to {severity.label}"
    tail = _most_changed(seen.top_bins)
    return f"{who}: feature '{feature}' {verb} ({stat} {v} ≥ threshold {t}{p}) {where}" + (
        f"; {tail}." if tail else "."
    )


def _flagged_text(result: DriftResult) -> str:
    """What the flagged values of a data-quality statistic are, in words."""
    if result.statistic == "missing_rate":
        return "are missing (absent or null)"
    kind = getattr(result, "kind", "")
    if kind == "numeric":
        return "are not numbers (type mismatch)"
    if kind == "categorical":
        return "are lists or objects, not categories (type mismatch)"
    return "are of the wrong type (type mismatch)"


def _quality_summary(
    seen: Observation, who: str, status: Status, severity: Severity, since: float, lower: float
) -> str:
    """The sentence of a data-quality alert: rates in percent, against the reference's.

    Examples
    --------
    >>> from stream_drift.stats.quality import MismatchRate
    >>> import dataclasses
    >>> r = dataclasses.replace(MismatchRate().evaluate([20_000, 0], [1160, 840]), kind="numeric")
    >>> seen = Observation("fraud", "7", "age", r, 1764213000, 1764213300, 1764213305, "ref")
    >>> print(_quality_summary(seen, "fraud v7", "firing", Severity.WARNING, 1764213305, 0.04))
    fraud v7: feature 'age' data quality — 42% of values are not numbers (type mismatch) vs 0% in the reference (threshold 5%) over window 2025-11-27 03:10–03:15 UTC on 2,000 events.
    """  # noqa: E501
    result, feature = seen.result, seen.feature
    reference = getattr(result, "reference_rate", None)
    versus = f" vs {_pct(reference)} in the reference" if isinstance(reference, float) else ""
    share = f"{_pct(result.value)} of values {_flagged_text(result)}{versus}"
    where = (
        f"over window {_window_text(seen.window_start, seen.window_end)} "
        f"on {result.n_current:,} events"
    )
    if status == "resolved":
        return (
            f"{who}: feature '{feature}' data quality back to normal — {share}, below the "
            f"resolve level {_pct(lower)} (threshold {_pct(result.threshold)}) {where}; "
            + _lasted(seen, severity, since, "problem")
        )
    head = "data quality" if status == "firing" else f"data quality worse ({severity.label})"
    return (
        f"{who}: feature '{feature}' {head} — {share} (threshold {_pct(result.threshold)}) {where}."
    )


def _error_text(value: float, regression: bool) -> str:
    """An error figure: a rate in percent (0/1 errors) or a mean absolute error."""
    if not math.isfinite(value):
        return "n/a"
    if regression:
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return f"{value * 100:.1f} %"


def _concept_summary(
    seen: Observation,
    result: ConceptDriftResult,
    who: str,
    status: Status,
    severity: Severity,
    since: float,
) -> str:
    """The sentence of a concept-drift alert: the model's error before and after the change.

    Examples
    --------
    >>> r = ConceptDriftResult("concept_drift", 1.0, 1.0, None, True, Severity.CRITICAL,
    ...                        2048, 1204, detector="adwin", detected_at=1796173920.0,
    ...                        error_before=0.041, error_after=0.173, error_now=0.16)
    >>> seen = Observation("fraud", "7", "(predictions)", r, 1796173800, 1796174100,
    ...                    1796174105, "ref-1")
    >>> print(_concept_summary(seen, r, "fraud v7", "firing", Severity.CRITICAL, 1796174105))
    fraud v7: concept drift — the model's error rate rose from 4.1 % to 17.3 % (ADWIN detected a change at 2026-12-02T01:12:00Z); labelled pairs since the last window: 1,204.
    """  # noqa: E501
    measure = "mean absolute error" if result.regression else "error rate"
    pairs = f"labelled pairs since the last window: {result.n_current:,}"
    detector = _DETECTOR_TITLES.get(result.detector, result.detector or "the detector")
    if status == "resolved":
        return (
            f"{who}: concept drift over — {detector} detected no further change of the model's "
            f"{measure}, now {_error_text(result.error_now, result.regression)} ({pairs}); "
            f"stable is not recovered: compare it with the reference's performance "
            f"(stream-drift model-card --model {seen.model}); "
            + _lasted(seen, severity, since, "incident")
        )
    before, after = result.error_before, result.error_after
    verb = "changed"
    if math.isfinite(before) and math.isfinite(after):
        verb = "rose" if after > before else "fell" if after < before else "changed"
    n = int(result.value)
    at = "" if result.detected_at is None else f" at {format_timestamp(result.detected_at)}"
    what = "a change" if n <= 1 else f"{n} changes, the first"
    head = "concept drift" if status == "firing" else f"concept drift ({severity.label})"
    return (
        f"{who}: {head} — the model's {measure} {verb} from "
        f"{_error_text(before, result.regression)} to {_error_text(after, result.regression)} "
        f"({detector} detected {what}{at}); {pairs}."
    )


def _multivariate_summary(
    seen: Observation,
    result: MultivariateResult,
    who: str,
    status: Status,
    severity: Severity,
    since: float,
    lower: float,
) -> str:
    """The sentence of a multivariate alert: the domain classifier's AUC and its features.

    Examples
    --------
    >>> r = MultivariateResult("domain_auc", 0.71, 0.58, None, True, Severity.WARNING, 1024,
    ...                        1024, top_features=("amount", "age"))
    >>> seen = Observation("fraud", "7", "(all features)", r, 1796173800, 1796174100,
    ...                    1796174105, "ref-1")
    >>> print(_multivariate_summary(seen, r, "fraud v7", "firing", Severity.WARNING,
    ...                             1796174105, 0.564))
    fraud v7: multivariate drift — a classifier tells current rows from reference rows with AUC 0.71 (threshold 0.58; 0.5 = indistinguishable) over window 2026-12-02 01:10–01:15 UTC on 1,024 sampled rows; features it relies on most: amount, age.
    """  # noqa: E501
    where = (
        f"over window {_window_text(seen.window_start, seen.window_end)} on "
        f"{result.n_current:,} sampled rows"
    )
    if status == "resolved":
        v, lo = _pair(result.value, lower)
        return (
            f"{who}: multivariate drift over — the domain classifier's AUC {v} is below the "
            f"resolve level {lo} (threshold {_num(result.threshold)}) {where}; "
            + _lasted(seen, severity, since, "drift")
        )
    v, t = _pair(result.value, result.threshold)
    head = "multivariate drift" if status == "firing" else f"multivariate drift ({severity.label})"
    features = ", ".join(result.top_features)
    return (
        f"{who}: {head} — a classifier tells current rows from reference rows with AUC {v} "
        f"(threshold {t}; 0.5 = indistinguishable) {where}"
        + (f"; features it relies on most: {features}." if features else ".")
    )


def format_alert_line(alert: Alert | Mapping[str, object]) -> str:
    """One readable line for ``stream-drift alerts``; tolerant of missing fields.

    Layout: evaluation time, status, severity, ``model/feature/statistic``, value vs
    threshold, window, then the summary after ``|``. A typed :class:`Alert` and a JSON object
    that is not one (see :func:`~stream_drift.pipeline.alert_record.decode_alert`) print
    alike: the line is made from the wire form.

    Examples
    --------
    >>> line = format_alert_line({
    ...     "status": "firing", "severity": "critical", "model": "fraud",
    ...     "feature": "amount", "statistic": "psi", "value": 0.31, "threshold": 0.2,
    ...     "window": {"start": "2025-11-27T10:00:00Z", "end": "2025-11-27T10:05:00Z"},
    ...     "evaluated_at": "2025-11-27T10:05:07Z", "summary": "fraud v7: ..."})
    >>> print(line)  # doctest: +NORMALIZE_WHITESPACE
    2025-11-27T10:05:07Z FIRING CRITICAL fraud/amount/psi 0.31 vs 0.20
    window 2025-11-27 10:00–10:05 UTC | fraud v7: ...
    """
    fields: Mapping[str, object] = msgspec.to_builtins(alert) if isinstance(alert, Alert) else alert

    def text(name: str) -> str:
        value = fields.get(name)
        return "?" if value is None else str(value)

    def number(name: str) -> str:
        value = fields.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _num(float(value))
        return "?"

    window = fields.get("window")
    span = "?"
    if isinstance(window, Mapping):
        start, end = parse_timestamp(window.get("start")), parse_timestamp(window.get("end"))
        if start is not None and end is not None:
            span = _window_text(start, end)
        else:
            span = f"{window.get('start', '?')} → {window.get('end', '?')}"
    return (
        f"{text('evaluated_at')} {text('status').upper():<9} {text('severity').upper():<8} "
        f"{text('model')}/{text('feature')}/{text('statistic')} "
        f"{number('value')} vs {number('threshold')} window {span} | {text('summary')}"
    )
