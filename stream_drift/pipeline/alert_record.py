"""The records of alerting: what the tracker observes, and the alert it publishes.

:class:`Alert` is the DESIGN §3.3 contract of the ``drift.alerts`` topic as a typed record:
encoded with msgspec it is the JSON object the worker has always written (same keys in the
same order, timestamps as RFC 3339 strings, ``p_value`` null when the statistic has none).
:class:`Observation` is one evaluation as :class:`~stream_drift.pipeline.alerts.AlertTracker`
is fed it, with the exact epoch-second clock the alert text is written from.

Consumers reading the topic back use :func:`decode_alert`: the typed record when the JSON
object is one, else the object as it is (a record of an older or foreign producer still gets
printed and acted on, its missing fields empty).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from stream_drift.stats.quality import QUALITY_STATISTICS
from stream_drift.stats.result import DriftResult

__all__ = [
    "Alert",
    "AlertWindow",
    "Category",
    "Observation",
    "Status",
    "TopBin",
    "alert_category",
    "decode_alert",
]

Status = Literal["firing", "escalated", "resolved"]
"""The state changes an alert announces, in the order an incident goes through them."""

Category = Literal["drift", "data_quality"]
"""``drift``: the data moved (PSI, KS, …); ``data_quality``: values missing or mistyped."""


def alert_category(statistic: str) -> Category:
    """``data_quality`` for the missing and type-mismatch rates, ``drift`` for the others.

    Examples
    --------
    >>> alert_category("mismatch_rate"), alert_category("psi")
    ('data_quality', 'drift')
    """
    return "data_quality" if statistic in QUALITY_STATISTICS else "drift"


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
