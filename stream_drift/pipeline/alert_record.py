"""The records of alerting: what the tracker observes, and the alert it publishes.

:class:`Alert` is the DESIGN §3.3 contract of the ``drift.alerts`` topic as a typed record:
encoded with msgspec it is the JSON object the worker has always written (same keys in the
same order, timestamps as RFC 3339 strings, ``p_value`` null when the statistic has none).
:class:`Observation` is one evaluation as :class:`~stream_drift.pipeline.alerts.AlertTracker`
is fed it, with the exact epoch-second clock the alert text is written from.

Consumers reading the topic back use :func:`decode_alert`: the typed record when the JSON
object is one, else the object as it is (a record of an older or foreign producer still gets
printed and acted on, its missing fields empty).

Two results of model quality are fed to the tracker beside the per-feature statistics:
:class:`ConceptDriftResult` (the concept-drift detector flagged a change of the model's error
stream: ``feature="(predictions)"``, statistic ``concept_drift``) and
:class:`MultivariateResult` (the domain classifier tells current rows from reference rows:
``feature="(all features)"``, statistic ``domain_auc``). They carry what their alert's summary
says beyond value and threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec

from stream_drift.stats.quality import QUALITY_STATISTICS
from stream_drift.stats.result import DriftResult

__all__ = [
    "CONCEPT_DRIFT",
    "DOMAIN_AUC",
    "EVENT_CATEGORIES",
    "Alert",
    "AlertWindow",
    "Category",
    "ConceptDriftResult",
    "MultivariateResult",
    "Observation",
    "Status",
    "TopBin",
    "alert_category",
    "decode_alert",
]

Status = Literal["firing", "escalated", "resolved"]
"""The state changes an alert announces, in the order an incident goes through them."""

Category = Literal["drift", "data_quality", "concept_drift", "multivariate"]
"""``drift``: the data moved (PSI, KS, …); ``data_quality``: values missing or mistyped;
``concept_drift``: the model's error stream changed (a detector on the labelled pairs);
``multivariate``: the features moved jointly (a domain classifier tells current rows from
reference rows)."""

CONCEPT_DRIFT: Final = "concept_drift"
"""Statistic (and category) of a concept-drift result: detections of the River detector."""

DOMAIN_AUC: Final = "domain_auc"
"""Statistic of a multivariate result: the domain classifier's ROC AUC (category
``multivariate``)."""

EVENT_CATEGORIES: Final[frozenset[str]] = frozenset({CONCEPT_DRIFT})
"""Categories whose drifted observation is an event, not a level: one window with a detection
fires (the tracker does not wait for ``fire_after`` windows in a row: a detector that flagged a
change resets itself and will not flag it again in the next window)."""


def alert_category(statistic: str) -> Category:
    """The category of a statistic's alerts.

    ``data_quality`` for the missing and type-mismatch rates, ``concept_drift`` and
    ``multivariate`` for the model-quality results, ``drift`` for the others.

    Examples
    --------
    >>> alert_category("mismatch_rate"), alert_category("psi")
    ('data_quality', 'drift')
    >>> alert_category("concept_drift"), alert_category("domain_auc")
    ('concept_drift', 'multivariate')
    """
    if statistic in QUALITY_STATISTICS:
        return "data_quality"
    if statistic == CONCEPT_DRIFT:
        return "concept_drift"
    if statistic == DOMAIN_AUC:
        return "multivariate"
    return "drift"


@dataclass(frozen=True, slots=True)
class ConceptDriftResult(DriftResult):
    """The concept-drift detector's verdict on the labelled pairs since the last window.

    ``value`` is the number of detections reported with this window, ``threshold`` is 1 (one
    detection is a drifted window; the resolve level ``threshold × resolve_ratio`` < 1 is met
    by a window without one), ``n_current`` the labelled pairs fed since the previous window
    and ``n_reference`` the pairs behind ``error_before``. Errors are 0/1 for a classifier
    (``error_*`` are error rates) and absolute errors for a regressor (``regression``: the
    figures are mean absolute errors).

    Parameters
    ----------
    detector
        The configured detector's name (``adwin``, ``ddm``, …).
    detected_at
        Event time of the prediction at which the first reported detection happened, epoch
        seconds; ``None`` when there was none.
    error_before, error_after
        Mean error before and after the change point the detection points at (NaN when none).
    error_now
        Mean error of the pairs fed since the previous window (NaN when none).
    regression
        ``True`` for absolute errors (a regressor), ``False`` for 0/1 errors.

    Examples
    --------
    >>> from stream_drift.stats.result import Severity
    >>> r = ConceptDriftResult("concept_drift", 1.0, 1.0, None, True, Severity.CRITICAL,
    ...                        2048, 1204, detector="adwin", detected_at=1796173920.0,
    ...                        error_before=0.041, error_after=0.173, error_now=0.16)
    >>> alert_category(r.statistic), r.is_drift
    ('concept_drift', True)
    """

    detector: str = ""
    detected_at: float | None = None
    error_before: float = math.nan
    error_after: float = math.nan
    error_now: float = math.nan
    regression: bool = False


@dataclass(frozen=True, slots=True)
class MultivariateResult(DriftResult):
    """The domain classifier's verdict on one window: ``value`` is its ROC AUC.

    ``threshold`` is the AUC calibrated on reference-vs-reference splits, ``n_current`` the
    current rows scored and ``n_reference`` the reference rows they were mixed with.
    ``reference_rate`` is the AUC of a classifier that cannot tell the two apart (0.5): the
    tracker's resolve level is taken above it (:func:`~stream_drift.pipeline.alerts.resolve_level`),
    as an AUC never falls towards 0 when nothing drifted. ``top_features`` are the features
    the classifier relies on most, most important first.

    Examples
    --------
    >>> from stream_drift.stats.result import Severity
    >>> r = MultivariateResult("domain_auc", 0.71, 0.58, None, True, Severity.WARNING, 1024,
    ...                        1024, top_features=("amount", "age"))
    >>> alert_category(r.statistic), r.reference_rate
    ('multivariate', 0.5)
    """

    top_features: tuple[str, ...] = ()
    reference_rate: float = 0.5


class TopBin(msgspec.Struct, frozen=True, kw_only=True):
    """One of the bins whose share changed most: its label and both shares (0–1)."""

    bin: str
    reference: float
    current: float


class AlertWindow(msgspec.Struct, frozen=True, kw_only=True):
    """The evaluated window, RFC 3339 UTC timestamps."""

    start: str
    end: str


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One state change of one ``(model, feature, statistic)`` incident (DESIGN §3.3).

    Field order is the order of the keys on the wire. ``severity`` is ``warning`` or
    ``critical`` (the incident's, also on ``resolved``); ``runbook_url`` is ``""`` when no
    runbook base URL is configured; ``dedup_key`` is the record's Kafka key.

    Examples
    --------
    >>> alert = Alert(
    ...     alert_id="a1", status="firing", severity="critical", model="fraud",
    ...     model_version="7", feature="amount", statistic="psi", category="drift",
    ...     value=0.31, threshold=0.2, p_value=None,
    ...     window=AlertWindow(start="2025-11-27T10:00:00Z", end="2025-11-27T10:05:00Z"),
    ...     n_current=5231, n_reference=100000, reference_id="ref-1",
    ...     top_bins=(TopBin(bin="[120, 250)", reference=0.1, current=0.32),),
    ...     first_detected_at="2025-11-27T10:05:05Z", evaluated_at="2025-11-27T10:05:05Z",
    ...     runbook_url="", dedup_key="fraud/amount/psi", summary="…")
    >>> msgspec.json.encode(alert)[:57]
    b'{"alert_id":"a1","status":"firing","severity":"critical",'
    >>> decode_alert(msgspec.json.encode(alert)) == alert
    True
    """

    alert_id: str
    status: Status
    severity: str
    model: str
    model_version: str
    feature: str
    statistic: str
    category: Category
    value: float
    threshold: float
    p_value: float | None
    window: AlertWindow
    n_current: int
    n_reference: int
    reference_id: str
    top_bins: tuple[TopBin, ...]
    first_detected_at: str
    evaluated_at: str
    runbook_url: str
    dedup_key: str
    summary: str


@dataclass(frozen=True, slots=True)
class Observation:
    """One evaluation of one statistic on one feature, as the alert tracker is fed it.

    Times are epoch seconds: the alert carries them as RFC 3339 strings (milliseconds), its
    summary is written from these exact values.
    """

    model: str
    model_version: str
    feature: str
    result: DriftResult
    window_start: float
    window_end: float
    evaluated_at: float
    reference_id: str
    top_bins: tuple[TopBin, ...] = ()


_ALERT_DECODER = msgspec.json.Decoder(Alert)


def decode_alert(data: bytes | str) -> Alert | dict[str, Any]:
    """An alert read back from the alerts topic: typed when it is one, else its JSON object.

    Raises
    ------
    ValueError
        When ``data`` is not JSON, or is JSON but not an object.

    Examples
    --------
    >>> decode_alert('{"model": "fraud", "status": "firing"}')
    {'model': 'fraud', 'status': 'firing'}
    >>> decode_alert("[1]")
    Traceback (most recent call last):
    ...
    ValueError: not a JSON object
    """
    try:
        return _ALERT_DECODER.decode(data)
    except msgspec.ValidationError:
        pass  # JSON, but not (all of) an alert: tolerated as a plain object
    obj = msgspec.json.decode(data)
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    return obj
