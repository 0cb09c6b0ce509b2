"""The records of stage 1's input (DESIGN §3.1): raw Kafka records, events, labels, rejections.

An input event is one JSON object (UTF-8) per Kafka record::

    {"model": "fraud", "model_version": "7", "event_id": "8c1…", "ts": 1764213000.25,
     "features": {"amount": 12.3, "country": "DE", "age": null},
     "prediction": 0.93}

:class:`~stream_drift.pipeline.decode.EventDecoder` turns each :class:`RawRecord` into an
:class:`Event` (or a :class:`Label`) or a :class:`Rejection`, so that nothing is dropped
silently; the decoding rules are in :mod:`stream_drift.pipeline.decode`, the time rules in
:mod:`stream_drift.pipeline.timestamps`. An event's values are keyed by *series* name:
features keep their names, predictions are :data:`PREDICTION_SERIES` or
``PREDICTION_PREFIX + output``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, TypeAlias

__all__ = [
    "PREDICTION_PREFIX",
    "PREDICTION_SERIES",
    "DecodedBatch",
    "DecodedLabelBatch",
    "Event",
    "Label",
    "RawRecord",
    "RejectReason",
    "Rejection",
    "Value",
    "is_prediction_series",
    "shorten",
]

Value: TypeAlias = float | str | None
"""One observed value: a number, a category, or ``None`` (missing)."""

PREDICTION_SERIES: Final = "prediction"
"""Name of a scalar prediction's series, and prefix (``"prediction."``) of named outputs."""

PREDICTION_PREFIX: Final = PREDICTION_SERIES + "."
"""Prefix of a named prediction output's series: ``{"score": 0.9}`` is ``prediction.score``."""


def is_prediction_series(name: str) -> bool:
    """Whether a series name is a prediction series (``prediction`` or ``prediction.*``).

    Examples
    --------
    >>> is_prediction_series("prediction.score"), is_prediction_series("amount")
    (True, False)
    """
    return name == PREDICTION_SERIES or name.startswith(PREDICTION_PREFIX)


def shorten(text: str, limit: int = 80) -> str:
    """Truncate user-provided text quoted in a rejection's detail.

    Examples
    --------
    >>> shorten("x" * 100, limit=5)
    'xxxx…'
    """
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One Kafka record as the ingest loop sees it.

    Parameters
    ----------
    value
        The record value, ``None`` for a tombstone.
    topic, partition, offset
        Where the record came from (carried to the dead-letter payload).
    timestamp_ms
        The Kafka record timestamp in epoch milliseconds (``-1`` when the broker has
        none); used when the event carries no ``ts``.
    key
        The record key, if any.

    Examples
    --------
    >>> RawRecord(b'{"model": "m", "prediction": 1}', "drift.events", 0, 42, 1764213000000)
    RawRecord(value=b'{"model": "m", "prediction": 1}', topic='drift.events', partition=0,
              offset=42, timestamp_ms=1764213000000, key=None)
    """

    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None = None


class RejectReason(enum.StrEnum):
    """Why a record was refused; the value is a stable code.

    The code is used as a Prometheus label value and in the dead-letter payload, so
    existing codes never change.

    Examples
    --------
    >>> RejectReason.BAD_TIMESTAMP.value
    'bad_timestamp'
    >>> RejectReason("no_payload") is RejectReason.NO_PAYLOAD
    True
    """

    #: Bytes that are not one JSON document (syntax, bad UTF-8 in a read string, too deep).
    MALFORMED_JSON = "malformed_json"
    #: Valid JSON whose top level is not an object.
    NOT_AN_OBJECT = "not_an_object"
    #: ``model`` absent, null, empty or only whitespace.
    MISSING_MODEL = "missing_model"
    #: A field of the wrong JSON type (``detail`` names the field).
    INVALID_TYPE = "invalid_type"
    #: Neither ``features`` nor ``prediction`` carries anything.
    NO_PAYLOAD = "no_payload"
    #: ``ts`` unusable (wrong type, not RFC 3339, no UTC offset, out of range), or
    #: absent while the Kafka record has no timestamp either.
    BAD_TIMESTAMP = "bad_timestamp"
    #: ``model`` not among the decoder's ``known_models``.
    UNKNOWN_MODEL = "unknown_model"
    #: The record value is larger than ``max_message_bytes``.
    OVERSIZE = "oversize"
    #: Tombstone, empty or whitespace-only record value.
    EMPTY = "empty"
    #: An empty feature/output name, or a feature named ``prediction`` or ``prediction.*``.
    INVALID_NAME = "invalid_name"
    #: Label record without ``event_id`` (the join key).
    MISSING_EVENT_ID = "missing_event_id"
    #: Label record whose ``label`` is absent or null.
    MISSING_LABEL = "missing_label"
    #: The decoder itself failed (a bug); the record is kept for replay, never dropped.
    DECODER_ERROR = "decoder_error"
    #: ``ts`` further ahead of the worker's clock than ``window.max_future_seconds``: one
    #: event from a skewed clock must not move a model's event time (and its watermark)
    #: into the future, which would make every later event late.
    FUTURE_TIMESTAMP = "future_timestamp"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused record, with the reason and a human-readable detail.

    Parameters
    ----------
    record
        The record as received (its bytes go to the dead-letter topic unchanged).
    reason
        Stable code, see :class:`RejectReason`.
    detail
        Human-readable, names the offending field, e.g.
        ``"features.amount: expected number, string, bool or null, got array"``.
    model
        The record's ``model`` when it could be read as a string (for the
        ``stream_drift_events_total{outcome="invalid"}`` counter), else ``None``. For
        ``unknown_model`` it is the unknown name: map it to a fixed label value before
        using it as a metric label.

    Examples
    --------
    >>> from stream_drift.pipeline.decode import EventDecoder
    >>> rec = RawRecord(b"[]", "drift.events", 0, 7, 0)
    >>> r = EventDecoder().decode(rec)
    >>> r.reason, r.detail, r.model
    (<RejectReason.NOT_AN_OBJECT: 'not_an_object'>, 'expected a JSON object, got array', None)
    """

    record: RawRecord
    reason: RejectReason
    detail: str
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One accepted input event.

    Parameters
    ----------
    model
        Model name (non-empty).
    model_version
        Model version, ``""`` when absent.
    event_id
        Producer's event id (the label-join key), or ``None``.
    ts
        Event time, float epoch seconds.
    values
        Features by name plus flattened prediction series (``"prediction"`` for a
        scalar prediction, ``"prediction.<output>"`` for named outputs). ``None`` is a
        missing value. Numbers are ``float``, categories (and bools) ``str``.

    Examples
    --------
    >>> from stream_drift.pipeline.decode import EventDecoder
    >>> rec = RawRecord(b'{"model": "fraud", "ts": 1764213000.25, '
    ...                 b'"features": {"amount": 12, "vip": true}, "prediction": 0.93}',
    ...                 "drift.events", 0, 1, 0)
    >>> ev = EventDecoder().decode(rec)
    >>> ev.model, ev.model_version, ev.ts
    ('fraud', '', 1764213000.25)
    >>> ev.values
    {'amount': 12.0, 'vip': 'true', 'prediction': 0.93}
    """

    model: str
    model_version: str
    event_id: str | None
    ts: float
    values: dict[str, Value]


@dataclass(frozen=True, slots=True)
class Label:
    """One ground-truth label (topic ``drift.labels``), joined to events by ``event_id``.

    Parameters
    ----------
    model
        Model name (non-empty).
    event_id
        Id of the event this label belongs to (required).
    label
        The ground truth: a number, or a category string (bools as ``"true"``/``"false"``).
    ts
        Label time, float epoch seconds (same rules as :attr:`Event.ts`).
    model_version
        The model version the label is for, when the label says (optional on the wire; an
        integer becomes its decimal string); ``None`` when absent. The join pairs a label
        with its prediction's version; this one only attributes labels without a prediction.

    Examples
    --------
    >>> from stream_drift.pipeline.decode import EventDecoder
    >>> rec = RawRecord(b'{"model": "fraud", "event_id": "8c1", "label": true}',
    ...                 "drift.labels", 0, 3, 1764213000000)
    >>> EventDecoder().decode_label(rec)
    Label(model='fraud', event_id='8c1', label='true', ts=1764213000.0, model_version=None)
    """

    model: str
    event_id: str
    label: float | str
    ts: float
    model_version: str | None = None


@dataclass
class DecodedBatch:
    """Accepted events and rejections of one batch
    (:meth:`~stream_drift.pipeline.decode.EventDecoder.decode_batch`).

    ``len(events) + len(rejections)`` equals the number of input records, each list
    in input order.
    """

    events: list[Event]
    rejections: list[Rejection]


@dataclass
class DecodedLabelBatch:
    """Labels and rejections of one batch
    (:meth:`~stream_drift.pipeline.decode.EventDecoder.decode_label_batch`)."""

    labels: list[Label]
    rejections: list[Rejection]
