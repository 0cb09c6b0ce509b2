"""The slow path of decoding: name what is wrong with a record the typed decoder refused.

The fast path (:mod:`stream_drift.pipeline.decode`) only learns *that* a record does not fit
the schema. Here the record is read again, untyped, to give the rejection a stable reason and
a detail that names the offending field (``features.amount: expected number, ...``), in the
order of the contract. Only refused records come here, so none of it is on the hot path.
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from stream_drift.pipeline.events import RawRecord, Rejection, RejectReason, shorten
from stream_drift.pipeline.timestamps import parse_timestamp

__all__ = ["diagnose", "refuse_model"]


def refuse_model(record: RawRecord, model: str, known: frozenset[str] | None) -> Rejection:
    """Rejection of a record whose ``model`` is empty (or only whitespace), or not among
    ``known`` (which the detail lists, up to 10).

    The decoders check both inline on the hot path and call this only to refuse.

    Examples
    --------
    >>> rec = RawRecord(b"", "drift.events", 0, 0, 0)
    >>> refuse_model(rec, "churn", frozenset({"fraud"})).detail
    "model: 'churn' is not a known model (known: 'fraud')"
    >>> refuse_model(rec, " ", None).reason.value
    'missing_model'
    """
    if not model or model.isspace():
        return Rejection(
            record, RejectReason.MISSING_MODEL, f"model: must be non-empty, got {model!r}"
        )
    names = sorted(known or ())
    shown = ", ".join(repr(k) for k in names[:10]) + (", …" if len(names) > 10 else "")
    return Rejection(
        record,
        RejectReason.UNKNOWN_MODEL,
        f"model: {shorten(model)!r} is not a known model (known: {shown or 'none'})",
        model,
    )


def _json_type(value: object) -> str:
    """JSON type name of a decoded value, for error details."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__  # pragma: no cover - JSON decodes to nothing else


def _number_error(value: object) -> str | None:
    """``None`` if ``value`` is a JSON number that fits a float, else why not."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            return "number out of range"
    return None


def _scalar_error(value: object) -> str | None:
    """``None`` for number/string/bool/null, else the error text."""
    if value is None or isinstance(value, str | bool | float):
        return None
    if isinstance(value, int):
        return _number_error(value)
    return f"expected number, string, bool or null, got {_json_type(value)}"


_MSGSPEC_PATH = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


def _utf8_problem(raw: bytes | bytearray | memoryview) -> str | None:
    """Our own description of invalid UTF-8 in ``raw``, or ``None`` when it is valid.

    Examples
    --------
    >>> _utf8_problem(b'{"model": "fr\\xffaud"}')
    'not valid UTF-8: byte 0xff at offset 13'
    >>> _utf8_problem(b'{}') is None
    True
    """
    try:
        bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8: byte 0x{exc.object[exc.start]:02x} at offset {exc.start}"
    return None


def _out_of_range(record: RawRecord, message: str) -> Rejection:
    """Rejection for a number beyond the float range, at the path msgspec's message names."""
    m = _MSGSPEC_PATH.match(message)
    field = ((m["path"] or "") if m else "").lstrip(".") or "value"
    if field == "ts":
        return Rejection(record, RejectReason.BAD_TIMESTAMP, "ts: number out of range")
    return Rejection(record, RejectReason.INVALID_TYPE, f"{field}: number out of range")


def _classify_msgspec(message: str) -> tuple[RejectReason, str]:
    """Reason and detail from a msgspec ``ValidationError`` message (fallback path)."""
    m = _MSGSPEC_PATH.match(message)
    msg, path = (m["msg"], m["path"] or "") if m else (message, "")
    field = path.lstrip(".")
    if not field:
        if msg.startswith("Object missing required field `model`"):
            return RejectReason.MISSING_MODEL, "model: required field is absent"
        if msg.startswith("Expected `object`"):
            return RejectReason.NOT_AN_OBJECT, f"expected a JSON object: {msg}"
        return RejectReason.INVALID_TYPE, msg
    if field == "ts":
        return RejectReason.BAD_TIMESTAMP, f"ts: {msg}"
    return RejectReason.INVALID_TYPE, f"{field}: {msg}"


def diagnose(
    record: RawRecord,
    raw: bytes,
    exc: Exception,
    kind: Literal["event", "label"],
    known: frozenset[str] | None,
) -> Rejection:
    """Name the first problem of a record the typed decoder refused.

    Parameters
    ----------
    record, raw
        The record and its value.
    exc
        What the typed decoder raised.
    kind
        ``event`` or ``label``: which schema refused it.
    known
        The decoder's known models (``None``: any).

    Examples
    --------
    >>> raw = b'{"model": "m", "features": {"x": [1]}}'
    >>> try:
    ...     msgspec.json.decode(raw, type=dict[str, dict[str, int]])
    ... except msgspec.ValidationError as exc:
    ...     r = diagnose(RawRecord(raw, "drift.events", 0, 0, 0), raw, exc, "event", None)
    >>> r.reason.value, r.detail
    ('invalid_type', 'features.x: expected number, string, bool or null, got array')
    """
    if isinstance(exc, RecursionError):
        return Rejection(record, RejectReason.MALFORMED_JSON, "JSON nested too deeply")
    # Our own check, not msgspec's wording (which changed between releases).
    bad_utf8 = _utf8_problem(raw)
    if bad_utf8 is not None:
        return Rejection(record, RejectReason.MALFORMED_JSON, bad_utf8)
    if not isinstance(exc, msgspec.ValidationError):
        if not bytes(raw).strip():
            return Rejection(record, RejectReason.EMPTY, "record value is only whitespace")
        message = str(exc).removeprefix("JSON is malformed: ")
        return Rejection(record, RejectReason.MALFORMED_JSON, f"not valid JSON: {message}")
    # A schema error; the document may still be malformed further on.
    try:
        obj = msgspec.json.decode(raw)
    except RecursionError:
        return Rejection(record, RejectReason.MALFORMED_JSON, "JSON nested too deeply")
    except msgspec.ValidationError:
        # An untyped decode of well-formed JSON fails validation only for a number beyond
        # the float range; the typed decoder's message says where.
        return _out_of_range(record, str(exc))
    except msgspec.DecodeError as err:
        message = str(err).removeprefix("JSON is malformed: ")
        return Rejection(record, RejectReason.MALFORMED_JSON, f"not valid JSON: {message}")

    if not isinstance(obj, dict):
        return Rejection(
            record,
            RejectReason.NOT_AN_OBJECT,
            f"expected a JSON object, got {_json_type(obj)}",
        )
    model = obj.get("model")
    if model is None:
        what = "absent" if "model" not in obj else "null"
        return Rejection(record, RejectReason.MISSING_MODEL, f"model: required, {what}")
    if not isinstance(model, str):
        return Rejection(
            record,
            RejectReason.INVALID_TYPE,
            f"model: expected non-empty string, got {_json_type(model)}",
        )
    if not model or model.isspace() or (known is not None and model not in known):
        return refuse_model(record, model, known)

    found = _type_error(obj, kind)
    if found is not None:
        return Rejection(record, found[0], found[1], model)
    # The untyped reading found nothing the typed decoder objected to: keep the
    # record out (the typed schema is the contract) with msgspec's own message.
    reason, detail = _classify_msgspec(str(exc))
    return Rejection(record, reason, f"{detail} (schema check)", model)


def _type_error(obj: dict[str, object], kind: str) -> tuple[RejectReason, str] | None:
    """First type problem of a decoded object, in contract order."""
    for field in ("model_version", "event_id"):  # both optional ids of events and labels
        v = obj.get(field)
        if v is not None and (isinstance(v, bool) or not isinstance(v, str | int)):
            return (
                RejectReason.INVALID_TYPE,
                f"{field}: expected string or integer, got {_json_type(v)}",
            )
    if kind == "event":
        features = obj.get("features")
        if features is not None:
            if not isinstance(features, dict):
                return (
                    RejectReason.INVALID_TYPE,
                    f"features: expected object or null, got {_json_type(features)}",
                )
            for name, v in features.items():
                err = _scalar_error(v)
                if err is not None:
                    return RejectReason.INVALID_TYPE, f"features.{shorten(name)}: {err}"
        prediction = obj.get("prediction")
        if isinstance(prediction, dict):
            for name, v in prediction.items():
                err = _scalar_error(v)
                if err is not None:
                    return RejectReason.INVALID_TYPE, f"prediction.{shorten(name)}: {err}"
        elif _scalar_error(prediction) is not None:
            err = _number_error(prediction) or (
                f"expected number, string, bool, object or null, got {_json_type(prediction)}"
            )
            return RejectReason.INVALID_TYPE, f"prediction: {err}"
    else:
        label = obj.get("label")
        err = _scalar_error(label)
        if err is not None:
            return RejectReason.INVALID_TYPE, f"label: {err}"
    ts = obj.get("ts")
    if ts is not None:
        if isinstance(ts, bool) or not isinstance(ts, int | float | str):
            return (
                RejectReason.BAD_TIMESTAMP,
                "ts: expected epoch seconds, epoch milliseconds or an RFC 3339 string, "
                f"got {_json_type(ts)}",
            )
        try:
            parse_timestamp(ts)
        except ValueError as err:
            return RejectReason.BAD_TIMESTAMP, f"ts: {err}"
    return None
