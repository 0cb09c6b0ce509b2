"""Tests of the dead-letter payload (stream_drift.pipeline.deadletter)."""

from __future__ import annotations

import base64
import hashlib
import json

import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

# The record helpers of the decoding tests (tests/ is on sys.path).
from test_events import KAFKA_TS_MS, rec, reject

from stream_drift.pipeline.deadletter import DEADLETTER_MIN_BYTES, deadletter_payload
from stream_drift.pipeline.decode import EventDecoder
from stream_drift.pipeline.events import RawRecord, Rejection, RejectReason


@pytest.mark.parametrize(
    "value",
    [
        b'{"model": 1}',
        b'{"model": "fr\xffaud"}',  # invalid UTF-8
        '{"model": "caf\u00e9 \u2603 \U0001f600", "features": []}'.encode(),
        b"\x00\x01\x02\xfe\xff",
        None,
    ],
)
def test_deadletter_round_trips_original_bytes(value: bytes | None) -> None:
    r = EventDecoder().decode(RawRecord(value, "drift.events", 5, 99, KAFKA_TS_MS, b"k\xff"))
    assert isinstance(r, Rejection)
    doc = json.loads(deadletter_payload(r))
    assert set(doc) == {
        "reason", "detail", "model", "source", "key_base64", "key_truncated", "original",
        "original_base64", "original_bytes", "original_sha256", "truncated",
    }  # fmt: skip
    assert doc["truncated"] is False and doc["key_truncated"] is False
    assert doc["reason"] == r.reason.value and doc["detail"] == r.detail
    assert doc["source"] == {
        "topic": "drift.events", "partition": 5, "offset": 99, "timestamp_ms": KAFKA_TS_MS,
    }  # fmt: skip
    assert base64.b64decode(doc["key_base64"]) == b"k\xff"
    if value is None:
        assert doc["original"] is None and doc["original_base64"] is None
        assert doc["original_bytes"] is None and doc["original_sha256"] is None
        return
    assert base64.b64decode(doc["original_base64"], validate=True) == value
    assert doc["original_bytes"] == len(value)
    assert doc["original_sha256"] == hashlib.sha256(value).hexdigest()
    try:
        text: str | None = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    assert doc["original"] == text
    if text is not None:
        assert doc["original"].encode("utf-8") == value


def test_deadletter_without_text_and_key() -> None:
    r = reject(b'{"model": 1}')
    doc = msgspec.json.decode(deadletter_payload(r, include_text=False))
    assert doc["original"] is None and doc["key_base64"] is None
    assert base64.b64decode(doc["original_base64"]) == b'{"model": 1}'
    assert doc["model"] is None


@settings(max_examples=200, deadline=None)
@given(value=st.binary(max_size=300))
def test_deadletter_property(value: bytes) -> None:
    r = Rejection(rec(value), RejectReason.MALFORMED_JSON, "x")
    doc = json.loads(deadletter_payload(r))
    assert base64.b64decode(doc["original_base64"]) == value


def _deadletter_checks(
    r: Rejection, budget: int, *, include_text: bool = True
) -> dict[str, object]:
    """The contract of a bounded dead letter, for any rejection; returns the decoded payload."""
    payload = deadletter_payload(r, include_text=include_text, max_bytes=budget)
    assert len(payload) <= budget
    doc = json.loads(payload)  # valid, strict JSON
    record = r.record
    value, key = record.value, record.key
    assert doc["reason"] == r.reason.value
    assert doc["source"] == {
        "topic": record.topic, "partition": record.partition, "offset": record.offset,
        "timestamp_ms": record.timestamp_ms,
    }  # fmt: skip
    assert r.detail.startswith(doc["detail"].removesuffix("…"))
    if r.model is None:
        assert doc["model"] is None
    else:
        assert r.model.startswith(doc["model"].removesuffix("…"))
    if key is None:
        assert doc["key_base64"] is None and doc["key_truncated"] is False
    else:
        kept = base64.b64decode(doc["key_base64"], validate=True)
        assert key.startswith(kept)
        assert doc["key_truncated"] is (kept != key)
    if value is None:
        assert doc["original_base64"] is None and doc["original"] is None
        assert doc["original_bytes"] is None and doc["original_sha256"] is None
        assert doc["truncated"] is False
        return dict(doc)
    assert doc["original_bytes"] == len(value)
    assert doc["original_sha256"] == hashlib.sha256(value).hexdigest()
    prefix = base64.b64decode(doc["original_base64"], validate=True)
    try:
        text: str | None = value.decode("utf-8") if include_text else None
    except UnicodeDecodeError:
        text = None
    if doc["truncated"]:
        assert len(prefix) < len(value) and value.startswith(prefix)
        assert len(prefix) % 3 == 0
        if text is None:
            assert doc["original"] is None
        else:  # the same prefix as text, less at most one character cut in two
            kept_text = doc["original"].encode()
            assert prefix.startswith(kept_text) and len(prefix) - len(kept_text) < 4
    else:
        assert prefix == value  # exact bytes
        assert doc["original"] == text
    return dict(doc)


# Any record: empty to several budgets' worth, any bytes, any key, any model and detail text.
_sizes = st.sampled_from([0, 1, 100, 5_000, 16_000, 40_000, 120_000])
_fill = st.sampled_from([b"x", b'"', b"\\", b"\x00", b"\xc3\xa9", b"\xe2\x98\x83", b"\xff", b"\n"])


@st.composite
def _big_bytes(draw: st.DrawFn) -> bytes | None:
    if draw(st.integers(0, 9)) == 0:
        return None
    head = draw(st.binary(max_size=64))
    return head + draw(_fill) * draw(_sizes) + draw(st.binary(max_size=64))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=_big_bytes(),
    key=_big_bytes(),
    reason=st.sampled_from(list(RejectReason)),
    detail=st.text(max_size=3000),
    model=st.none() | st.text(max_size=600),
    topic=st.text("abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=249),
    offset=st.integers(0, 2**63 - 1),
    timestamp_ms=st.integers(-1, 2**63 - 1),
    budget=st.sampled_from([DEADLETTER_MIN_BYTES, 20_000, 65_536, 900_000]),
    include_text=st.booleans(),
)
def test_deadletter_fits_any_budget(
    value: bytes | None,
    key: bytes | None,
    reason: RejectReason,
    detail: str,
    model: str | None,
    topic: str,
    offset: int,
    timestamp_ms: int,
    budget: int,
    include_text: bool,
) -> None:
    r = Rejection(
        RawRecord(value, topic, 2**31 - 1, offset, timestamp_ms, key), reason, detail, model
    )
    doc = _deadletter_checks(r, budget, include_text=include_text)
    event(f"truncated={doc['truncated']}, key_truncated={doc['key_truncated']}")
    unbounded = deadletter_payload(r, include_text=include_text)
    # Nothing is cut when the whole payload fits: the bounded payload is the unbounded one.
    assert (len(unbounded) <= budget) is (not doc["truncated"] and not doc["key_truncated"])
    if len(unbounded) <= budget:
        assert deadletter_payload(r, include_text=include_text, max_bytes=budget) == unbounded


@pytest.mark.parametrize("size", [500_000, 1_300_000, 5_000_000])
def test_deadletter_of_large_records_is_truncated_to_the_budget(size: int) -> None:
    value = b'{"model": "fraud", "pad": "' + "é".encode() * (size // 2) + b'"}'
    r = reject(value)  # oversize for the default 1 MiB decoder, or valid
    doc = _deadletter_checks(r, 900_000)
    assert doc["truncated"] is True and doc["original_bytes"] == len(value)
    # Most of the budget is used: the prefix is not needlessly short.
    assert len(deadletter_payload(r, max_bytes=900_000)) > 890_000


def test_deadletter_huge_key_is_truncated_too() -> None:
    r = Rejection(rec(b"{}", key=b"k" * 100_000), RejectReason.MISSING_MODEL, "model: required")
    doc = _deadletter_checks(r, DEADLETTER_MIN_BYTES)
    assert doc["key_truncated"] is True and doc["truncated"] is False


def test_deadletter_budget_below_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes must be >= 16384"):
        deadletter_payload(reject(b"{}"), max_bytes=DEADLETTER_MIN_BYTES - 1)
