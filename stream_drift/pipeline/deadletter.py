"""The ``drift.deadletter`` payload of a refused record, cut to fit the producer's limits.

Every rejected record goes to the dead-letter topic once, with the reason, where it came from
and a lossless (base64) copy of its bytes, so that it can be inspected and replayed; a record
too large for the budget keeps a prefix, its size and its sha256.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Final

import msgspec

from stream_drift.config.settings import DEADLETTER_MIN_BYTES
from stream_drift.pipeline.events import Rejection, shorten

__all__ = ["DEADLETTER_MIN_BYTES", "deadletter_payload"]

_DETAIL_MAX_CHARS: Final = 1024
_MODEL_MAX_CHARS: Final = 256


def _b64_len(n: int) -> int:
    """Length of the base64 text of ``n`` bytes."""
    return 4 * ((n + 2) // 3)


def _json_str_len(text: str) -> int:
    """Bytes ``text`` takes inside a JSON string (escapes included, quotes excluded)."""
    return len(msgspec.json.encode(text)) - 2


def _copies_len(value: bytes, n: int, with_text: bool) -> int:
    """Bytes the first ``n`` bytes of ``value`` take as base64 (and as text) in the payload."""
    size = _b64_len(n)
    if with_text:
        size += _json_str_len(value[:n].decode("utf-8", "ignore"))
    return size


def deadletter_payload(
    rejection: Rejection, *, include_text: bool = True, max_bytes: int | None = None
) -> bytes:
    """JSON payload for ``drift.deadletter``: the reason, the original bytes, their size and hash.

    Shape (keys always present)::

        {"reason": "invalid_type",                     # RejectReason code
         "detail": "features.amount: expected ...",    # human-readable (<= 1,024 characters)
         "model": "fraud",                             # or null if unreadable (<= 256 chars)
         "source": {"topic": "drift.events", "partition": 3, "offset": 1234,
                    "timestamp_ms": 1764213000250},
         "key_base64": "a2V5",                         # record key, or null
         "key_truncated": false,                       # key_base64 is only a prefix
         "original": "{\\"model\\": ...",              # value as text if valid UTF-8, else null
         "original_base64": "eyJtb2RlbCI6...",         # value bytes; null for a tombstone
         "original_bytes": 1234,                       # size of the whole value; null: tombstone
         "original_sha256": "9f86d08...",              # hex sha256 of the whole value; null: ditto
         "truncated": false}                           # original/original_base64 are prefixes

    Untruncated, ``original_base64`` restores the exact bytes, including invalid UTF-8, and
    ``original`` is there for people reading the topic. When the whole payload would be larger
    than ``max_bytes``, the copies are cut to what fits and ``"truncated": true`` is set:
    ``original_base64`` is then the first N bytes of the value (N a multiple of 3, so it
    decodes exactly) and ``original`` the same prefix as text, cut at a character boundary;
    ``original_bytes`` and ``original_sha256`` still describe the whole value, so a reader can
    tell what is missing and match the dead letter with the source record (``source``). A key
    too large for its share of the room is cut the same way (``"key_truncated": true``).
    Every other field is kept whole.

    Parameters
    ----------
    rejection
        The rejection to serialize.
    include_text
        Set ``False`` to write ``"original": null`` always (the base64 copy alone is
        lossless). The payload is about 2.5x the original with the text (JSON-escaped
        text plus base64) and 1.35x without, plus ~400 bytes.
    max_bytes
        Largest payload, in bytes (at least :data:`DEADLETTER_MIN_BYTES`); ``None`` for no
        limit. Keep it below the dead-letter producer's request limit (the worker uses
        ``ingest.deadletter_max_bytes``, checked against ``kafka.producer_max_request_bytes``)
        and the topic's ``max.message.bytes``.

    Raises
    ------
    ValueError
        When ``max_bytes`` is below :data:`DEADLETTER_MIN_BYTES`, or too small for the fields
        that are never cut (a source topic of thousands of characters).

    Examples
    --------
    >>> from stream_drift.pipeline.decode import EventDecoder
    >>> from stream_drift.pipeline.events import RawRecord
    >>> rec = RawRecord(b'{"model": 1}', "drift.events", 3, 1234, 1764213000250)
    >>> payload = deadletter_payload(EventDecoder().decode(rec))
    >>> doc = msgspec.json.decode(payload)
    >>> doc["reason"], doc["detail"], doc["original"]
    ('invalid_type', 'model: expected non-empty string, got number', '{"model": 1}')
    >>> base64.b64decode(doc["original_base64"]) == rec.value, doc["truncated"]
    (True, False)

    A record too large for the budget keeps a prefix, its size and its hash:

    >>> big = RawRecord(b'{"pad": "' + b"x" * 50_000 + b'"}', "drift.events", 0, 7, 0)
    >>> payload = deadletter_payload(EventDecoder().decode(big), max_bytes=20_000)
    >>> doc = msgspec.json.decode(payload)
    >>> len(payload) <= 20_000, doc["truncated"], doc["original_bytes"]
    (True, True, 50011)
    >>> doc["original_sha256"] == hashlib.sha256(big.value).hexdigest()
    True
    >>> big.value.startswith(base64.b64decode(doc["original_base64"]))
    True
    """
    if max_bytes is not None and max_bytes < DEADLETTER_MIN_BYTES:
        raise ValueError(f"max_bytes must be >= {DEADLETTER_MIN_BYTES}, got {max_bytes}")
    record = rejection.record
    value = None if record.value is None else bytes(record.value)
    key = None if record.key is None else bytes(record.key)
    text: str | None = None
    if include_text and value is not None:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    model = rejection.model
    doc: dict[str, object] = {
        "reason": rejection.reason.value,
        "detail": shorten(rejection.detail, _DETAIL_MAX_CHARS),
        "model": None if model is None else shorten(model, _MODEL_MAX_CHARS),
        "source": {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp_ms": record.timestamp_ms,
        },
        "key_base64": None,
        "key_truncated": False,
        "original": None,
        "original_base64": None,
        "original_bytes": None if value is None else len(value),
        "original_sha256": None if value is None else hashlib.sha256(value).hexdigest(),
        "truncated": False,
    }
    # The fixed fields, with empty copies: what is left of max_bytes is the room for copies.
    if key is not None:
        doc["key_base64"] = ""
    if value is not None:
        doc["original_base64"] = ""
    if text is not None:
        doc["original"] = ""
    fixed = len(msgspec.json.encode(doc))
    key_full = 0 if key is None else _b64_len(len(key))
    value_full = 0 if value is None else _b64_len(len(value))
    if text is not None:
        value_full += _json_str_len(text)
    if max_bytes is None or fixed + key_full + value_full <= max_bytes:
        if key is not None:
            doc["key_base64"] = base64.b64encode(key).decode("ascii")
        if value is not None:
            doc["original_base64"] = base64.b64encode(value).decode("ascii")
        doc["original"] = text
        return msgspec.json.encode(doc)
    room = max_bytes - fixed
    if room < 0:
        raise ValueError(
            f"max_bytes={max_bytes} leaves no room: the fields that are never cut take "
            f"{fixed} bytes"
        )

    # Too large: the key keeps what the value does not need (at least a quarter of the room).
    key_len = 0 if key is None else len(key)
    key_room = max(room // 4, room - value_full)
    if key_full > key_room:
        key_len = (key_room // 4) * 3
        doc["key_truncated"] = True
    if key is not None:
        doc["key_base64"] = base64.b64encode(key[:key_len]).decode("ascii")
    value_room = room - _b64_len(key_len)
    if value is not None:
        n = len(value)
        if value_full > value_room:
            doc["truncated"] = True

            # Largest multiple of 3 whose copies fit (the cost grows with n): binary search.
            # Each kept byte costs 4/3 in base64, plus at least 1 as text.
            lo, hi = 0, min(len(value) // 3, value_room // (4 if text is None else 7))
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if _copies_len(value, 3 * mid, text is not None) <= value_room:
                    lo = mid
                else:
                    hi = mid - 1
            n = 3 * lo
        prefix = value[:n]
        doc["original_base64"] = base64.b64encode(prefix).decode("ascii")
        if text is not None:
            # The whole value is valid UTF-8: "ignore" drops only a character cut in two.
            doc["original"] = prefix.decode("utf-8", "ignore")
    return msgspec.json.encode(doc)
