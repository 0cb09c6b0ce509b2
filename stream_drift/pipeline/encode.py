"""Encode one event or label in the wire contract (DESIGN §3.1), refusing what the worker
would refuse.

The service-side :class:`~stream_drift.client.DriftEmitter` sends what these functions
return; they are Kafka-free so that anyone (a batch job, a test) can produce the exact bytes.

Examples
--------
>>> encode_label("fraud", 42, True, ts=1764213000)
b'{"model":"fraud","event_id":"42","label":true,"ts":1764213000.0}'
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

import msgspec

from stream_drift.pipeline.events import PREDICTION_SERIES, is_prediction_series
from stream_drift.pipeline.timestamps import parse_timestamp

__all__ = [
    "InvalidInput",
    "Scalar",
    "check_model",
    "check_version",
    "encode_event",
    "encode_label",
    "event_document",
    "label_document",
]

_INT64: Final = 2**63
encode_json: Final = msgspec.json.Encoder().encode
"""Compact JSON bytes of a document (what the emitter sends)."""

Scalar = float | int | str | bool | None


class InvalidInput(ValueError):
    """Input that cannot become a valid event or label (raised by the ``encode_*`` helpers
    and, with ``strict=True``, by :class:`DriftEmitter`)."""


def _scalar(value: object, where: str) -> Scalar:
    """A JSON scalar for a feature / prediction value; non-finite floats become ``None``."""
    cls = value.__class__
    if cls is float:
        return value if math.isfinite(value) else None  # type: ignore[return-value,arg-type]
    if cls is str or cls is int or cls is bool or value is None:
        if cls is int and not -_INT64 <= value < _INT64:  # type: ignore[operator]
            return _big_int(value, where)  # type: ignore[arg-type]
        return value  # type: ignore[return-value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return _scalar(int(value), where)
    if isinstance(value, float):
        return _scalar(float(value), where)
    if isinstance(value, str):
        return str(value)
    item = getattr(value, "item", None)  # numpy scalars and one-element arrays
    if item is not None and callable(item):
        size = getattr(value, "size", 1)
        if size != 1:
            raise InvalidInput(
                f"{where}: expected a number, string, bool or None, got an array of {size} values"
            )
        plain = item()
        if plain.__class__ not in (float, int, str, bool) and plain is not None:
            raise InvalidInput(f"{where}: unsupported value of type {type(value).__name__}")
        return _scalar(plain, where)
    raise InvalidInput(
        f"{where}: expected a number, string, bool or None, got {type(value).__name__}"
    )


def _big_int(value: int, where: str) -> float | None:
    try:
        out = float(value)
    except OverflowError:
        return None
    return out if math.isfinite(out) else None


def _name(key: object, where: str) -> str:
    if not isinstance(key, str):
        raise InvalidInput(f"{where}: names must be strings, got {type(key).__name__}")
    if not key:
        raise InvalidInput(f"{where}: empty name")
    return str(key)


def _features(features: object) -> dict[str, Scalar] | None:
    if features is None:
        return None
    items = getattr(features, "items", None)
    if items is None or not callable(items):
        raise InvalidInput(
            f"features: expected a mapping of name -> value, got {type(features).__name__}"
        )
    out: dict[str, Scalar] = {}
    for key, value in items():
        # Fast path (a few hundred ns for 10 plain floats); the rest in the helpers.
        if key.__class__ is not str or not key or key.startswith(PREDICTION_SERIES):
            key = _feature_name(key)
        cls = value.__class__
        if cls is float:
            out[key] = value if value - value == 0.0 else None  # NaN and ±inf -> null
        elif cls is str or cls is bool or value is None:
            out[key] = value
        else:
            out[key] = _scalar(value, f"features.{key}")
    return out or None


def _feature_name(key: object) -> str:
    name = _name(key, "features")
    if is_prediction_series(name):
        raise InvalidInput(f"features: the name {name!r} is reserved for predictions")
    return name


def _prediction(prediction: object) -> Scalar | dict[str, Scalar]:
    if prediction is None:
        return None
    items = getattr(prediction, "items", None)
    if items is not None and callable(items):
        outputs = {_name(k, "prediction"): _scalar(v, f"prediction.{k}") for k, v in items()}
        return outputs or None
    return _scalar(prediction, "prediction")


def _timestamp(ts: object) -> float:
    """Float epoch seconds from ``ts`` (``None``: now), range-checked like the worker does."""
    if ts is None:
        return time.time()
    try:
        if isinstance(ts, datetime):
            if ts.tzinfo is None:
                ts = ts.replace(tzinfo=UTC)
            return parse_timestamp(ts.timestamp())
        if isinstance(ts, bool):
            raise InvalidInput("ts: expected a number, string or datetime, got bool")
        if isinstance(ts, int | float | str):
            return parse_timestamp(ts)
        dtype = getattr(ts, "dtype", None)
        if dtype is not None and getattr(dtype, "kind", "") == "M":  # numpy.datetime64
            return _timestamp(ts.astype("datetime64[us]").item())  # type: ignore[attr-defined]
        plain = _scalar(ts, "ts")
        if plain is None:
            raise InvalidInput("ts: not a finite number")
        return _timestamp(plain)
    except (ValueError, TypeError, OverflowError, OSError) as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput(f"ts: {exc}") from None


def _event_id(event_id: object, required: bool) -> str | None:
    if event_id is None:
        if required:
            raise InvalidInput("event_id: required for labels (the join key)")
        return None
    if isinstance(event_id, bool):
        raise InvalidInput("event_id: expected a string or an integer, got bool")
    if isinstance(event_id, str | int):
        text = str(int(event_id)) if isinstance(event_id, int) else str(event_id)
    else:
        plain = _scalar(event_id, "event_id")  # numpy integers
        if plain.__class__ is not int:
            raise InvalidInput(
                f"event_id: expected a string or an integer, got {type(event_id).__name__}"
            )
        text = str(plain)
    if not text:
        raise InvalidInput("event_id: must be non-empty")
    return text


def check_model(model: object) -> str:
    if not isinstance(model, str) or not model or model.isspace():
        raise ValueError(f"model: must be a non-empty string, got {model!r}")
    return str(model)


def check_version(model_version: object) -> str | None:
    if model_version is None:
        return None
    if isinstance(model_version, bool) or not isinstance(model_version, str | int):
        raise ValueError(f"model_version: must be a string or an integer, got {model_version!r}")
    return str(model_version)


def event_document(
    model: str,
    model_version: str | None,
    features: object,
    prediction: object,
    event_id: object,
    ts: object,
) -> tuple[dict[str, object], str | None]:
    feats = _features(features)
    pred = _prediction(prediction)
    if feats is None and pred is None:
        raise InvalidInput(
            "nothing to send: features and prediction are both absent, empty or null"
        )
    doc: dict[str, object] = {"model": model}
    if model_version is not None:
        doc["model_version"] = model_version
    eid = _event_id(event_id, required=False)
    if eid is not None:
        doc["event_id"] = eid
    doc["ts"] = _timestamp(ts)
    if feats is not None:
        doc["features"] = feats
    if pred is not None:
        doc["prediction"] = pred
    return doc, eid


def label_document(
    model: str, event_id: object, label: object, ts: object
) -> tuple[dict[str, object], str]:
    eid = _event_id(event_id, required=True)
    assert eid is not None
    value = _scalar(label, "label")
    if value is None:
        raise InvalidInput("label: required, got None or a non-finite number")
    return {"model": model, "event_id": eid, "label": value, "ts": _timestamp(ts)}, eid


def encode_event(
    model: str,
    features: Mapping[str, object] | None = None,
    prediction: object = None,
    *,
    model_version: str | int | None = None,
    event_id: str | int | None = None,
    ts: object = None,
) -> bytes:
    """The JSON bytes of one event (DESIGN §3.1), exactly as
    :meth:`stream_drift.client.DriftEmitter.emit` sends them.

    Parameters
    ----------
    model
        Model name (non-empty).
    features
        Feature name -> number, string, bool or ``None``; numpy scalars accepted.
    prediction
        A number, a class label, a bool, or a mapping of named outputs.
    model_version, event_id
        Optional; written as strings.
    ts
        Event time: epoch seconds or milliseconds, RFC 3339 string, ``datetime`` (naive:
        UTC) or ``numpy.datetime64``; ``None`` means now.

    Returns
    -------
    bytes
        Strict JSON (no ``NaN``/``Infinity``: non-finite numbers become ``null``).

    Raises
    ------
    InvalidInput
        If the event would be refused by the worker or a value cannot be encoded.

    Examples
    --------
    >>> import numpy as np
    >>> encode_event("fraud", {"amount": np.float32(12.5), "n": np.int64(3), "vip": np.bool_(True),
    ...                        "age": float("nan")}, 0.93, event_id=17, ts=1764213000.25)
    b'{"model":"fraud","event_id":"17","ts":1764213000.25,"features":{"amount":12.5,"n":3,"vip":true,"age":null},"prediction":0.93}'
    >>> from datetime import datetime, timezone
    >>> encode_event("fraud", prediction={"score": np.array([0.5])},
    ...              ts=datetime(2025, 11, 27, 3, 10, tzinfo=timezone.utc))
    b'{"model":"fraud","ts":1764213000.0,"prediction":{"score":0.5}}'
    >>> encode_event("fraud", {"x": [1, 2]})
    Traceback (most recent call last):
    ...
    stream_drift.pipeline.encode.InvalidInput: features.x: expected a number, ... got list
    """
    doc, _ = event_document(
        check_model(model), check_version(model_version), features, prediction, event_id, ts
    )
    return encode_json(doc)


def encode_label(model: str, event_id: str | int, label: object, *, ts: object = None) -> bytes:
    """The JSON bytes of one label (``{"model", "event_id", "label", "ts"}``).

    ``label`` is a number, a class label or a bool (numpy scalars accepted); ``None`` or a
    non-finite number raises :class:`InvalidInput`. ``ts`` as for :func:`encode_event`.

    Examples
    --------
    >>> import numpy as np
    >>> encode_label("fraud", "8c1", np.int64(1), ts=1764213000250)  # ms are converted
    b'{"model":"fraud","event_id":"8c1","label":1,"ts":1764213000.25}'
    """
    doc, _ = label_document(check_model(model), event_id, label, ts)
    return encode_json(doc)
