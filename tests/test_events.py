"""Tests of decoding and validating input records (stream_drift.pipeline.decode, .events and
.timestamps)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_drift.pipeline.decode import EventDecoder, _new_event, decode_label_batch
from stream_drift.pipeline.events import (
    PREDICTION_SERIES,
    DecodedBatch,
    Event,
    Label,
    RawRecord,
    Rejection,
    RejectReason,
    is_prediction_series,
)
from stream_drift.pipeline.timestamps import parse_timestamp

KAFKA_TS_MS = 1_764_213_000_000  # 2025-11-27T03:10:00Z, the record timestamp used by default
T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def rec(
    value: bytes | str | dict[str, object] | None,
    *,
    offset: int = 0,
    timestamp_ms: int = KAFKA_TS_MS,
    key: bytes | None = None,
    topic: str = "drift.events",
) -> RawRecord:
    """A record from bytes, text, or a dict (JSON-encoded)."""
    if isinstance(value, dict):
        value = json.dumps(value)
    if isinstance(value, str):
        value = value.encode()
    return RawRecord(value, topic, 3, offset, timestamp_ms, key)


def accept(value: bytes | str | dict[str, object], **kw: object) -> Event:
    out = EventDecoder().decode(rec(value, **kw))  # type: ignore[arg-type]
    assert isinstance(out, Event), out
    return out


def reject(value: bytes | str | dict[str, object] | None, **kw: object) -> Rejection:
    out = EventDecoder().decode(rec(value, **kw))  # type: ignore[arg-type]
    assert isinstance(out, Rejection), out
    return out


# --------------------------------------------------------------------------- happy path


def test_contract_example() -> None:
    ev = accept(
        b'{"model": "fraud", "model_version": "7", "event_id": "8c1", "ts": 1764213000.25,'
        b' "features": {"amount": 12.3, "country": "DE", "age": null}, "prediction": 0.93}'
    )
    assert ev == Event(
        "fraud",
        "7",
        "8c1",
        1764213000.25,
        {"amount": 12.3, "country": "DE", "age": None, "prediction": 0.93},
    )


def test_optional_fields_and_conversions() -> None:
    ev = accept({"model": "fraud", "model_version": 7, "event_id": 17, "features": {"n": 3}})
    assert (ev.model_version, ev.event_id) == ("7", "17")
    assert ev.values == {"n": 3.0} and type(ev.values["n"]) is float
    ev = accept({"model": "fraud", "features": {"n": 3}})
    assert (ev.model_version, ev.event_id) == ("", None)
    ev = accept({"model": "fraud", "model_version": None, "event_id": None, "prediction": 1})
    assert (ev.model_version, ev.event_id) == ("", None)


def test_unknown_fields_ignored_and_last_duplicate_wins() -> None:
    ev = accept(b'{"model": "a", "schema": 2, "extra": {"x": [1, {"y": null}]}, "prediction": 1,'
                b' "prediction": 2}')  # fmt: skip
    assert ev.values == {"prediction": 2.0}


def test_values_dicts_are_not_shared() -> None:
    dec = EventDecoder()
    r = rec({"model": "a", "features": {"x": 1}})
    a, b = dec.decode(r), dec.decode(r)
    assert isinstance(a, Event) and isinstance(b, Event)
    assert a.values == b.values and a.values is not b.values


def test_fast_constructor_matches_dataclass() -> None:
    values: dict[str, float | str | None] = {"x": 1.0}
    fast = _new_event("m", "v", "id", 1.5, values)
    slow = Event("m", "v", "id", 1.5, values)
    assert fast == slow and repr(fast) == repr(slow) and type(fast) is Event
    with pytest.raises(AttributeError):
        fast.model = "other"  # type: ignore[misc]


# --------------------------------------------------------------------------- bools, predictions


def test_bools_become_categories_but_numbers_stay_numbers() -> None:
    ev = accept({"model": "a", "features": {"vip": True, "new": False, "one": 1, "zero": 0}})
    assert ev.values == {"vip": "true", "new": "false", "one": 1.0, "zero": 0.0}
    assert type(ev.values["one"]) is float


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        (0.93, {"prediction": 0.93}),
        (1, {"prediction": 1.0}),
        ("fraud", {"prediction": "fraud"}),
        (True, {"prediction": "true"}),
        (False, {"prediction": "false"}),
        (
            {"score": 0.9, "label": "fraud", "flag": True, "calib": None},
            {
                "prediction.score": 0.9,
                "prediction.label": "fraud",
                "prediction.flag": "true",
                "prediction.calib": None,
            },
        ),
        ({"a.b": 1}, {"prediction.a.b": 1.0}),
    ],
)
def test_prediction_flattening(prediction: object, expected: dict[str, object]) -> None:
    assert accept({"model": "a", "prediction": prediction}).values == expected


def test_prediction_and_features_together() -> None:
    ev = accept({"model": "a", "features": {"x": 1}, "prediction": {"score": 0.5}})
    assert ev.values == {"x": 1.0, "prediction.score": 0.5}
    assert [is_prediction_series(n) for n in ev.values] == [False, True]


def test_null_or_empty_payload_counts_as_absent() -> None:
    assert accept({"model": "a", "features": None, "prediction": 0.1}).values == {"prediction": 0.1}
    assert accept({"model": "a", "features": {}, "prediction": 0.1}).values == {"prediction": 0.1}
    assert accept({"model": "a", "features": {"x": 1}, "prediction": {}}).values == {"x": 1.0}
    assert accept({"model": "a", "features": {"x": None}}).values == {"x": None}


def test_prediction_series_name() -> None:
    assert PREDICTION_SERIES == "prediction"
    assert is_prediction_series("prediction") and is_prediction_series("prediction.x")
    assert not is_prediction_series("predictions") and not is_prediction_series("x.prediction")


# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (T0.timestamp(), T0),
        (int(T0.timestamp()), T0),
        (T0.timestamp() + 0.25, T0 + timedelta(milliseconds=250)),
        (int(T0.timestamp() * 1000) + 250, T0 + timedelta(milliseconds=250)),
        (T0.timestamp() * 1000 + 250.0, T0 + timedelta(milliseconds=250)),
        ("2026-11-27T10:00:00Z", T0),
        ("2026-11-27T10:00:00+00:00", T0),
        ("2026-11-27T11:00:00.5+01:00", T0 + timedelta(milliseconds=500)),
        ("2026-11-27T05:30:00-04:30", T0),
        ("2026-11-27t10:00:00z", T0),
        ("2026-11-27 10:00:00Z", T0),
        ("2026-11-27T10:00:00.123456789Z", T0 + timedelta(microseconds=123457)),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        (1e11, datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=1e11)),  # still seconds
        (1e11 + 1000, datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=1e8 + 1)),  # ms
    ],
)
def test_timestamp_forms(ts: float | str, expected: datetime) -> None:
    ev = accept({"model": "a", "ts": ts, "prediction": 1})
    assert ev.ts == pytest.approx(expected.timestamp(), abs=1e-6)
    assert isinstance(ev.ts, float)
    assert parse_timestamp(ts) == ev.ts


def test_timestamp_parse_matches_datetime_fromisoformat() -> None:
    for text in [
        "2026-11-27T10:00:00Z",
        "2026-11-27T10:00:00.5+01:00",
        "2030-02-28T23:59:59-07:00",
    ]:
        assert parse_timestamp(text) == datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize("body", [{"model": "a", "prediction": 1}, {"model": "a", "ts": None,
                                                                    "prediction": 1}])  # fmt: skip
def test_absent_timestamp_uses_kafka_record_time(body: dict[str, object]) -> None:
    ev = accept(body, timestamp_ms=KAFKA_TS_MS + 250)
    assert ev.ts == KAFKA_TS_MS / 1000 + 0.25
    assert datetime.fromtimestamp(ev.ts, UTC) == datetime(2025, 11, 27, 3, 10, 0, 250000, UTC)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "expected epoch seconds"),
        (float("nan"), "expected epoch seconds"),
        (float("inf"), "expected epoch seconds"),
        (1764213000250000, "expected epoch seconds"),  # microseconds
        (10**400, "expected epoch seconds"),
        ("2026-11-27T10:00:00", "no UTC offset"),
        ("2026-11-27", "not an RFC 3339"),
        ("yesterday", "not an RFC 3339"),
        ("1764213000", "not an RFC 3339"),
        ("1969-12-31T23:59:59Z", "out of range"),
        ("0001-01-01T00:00:00+01:00", "out of range"),
        ("9999-12-31T23:59:59-01:00", "out of range"),
    ],
)
def test_parse_timestamp_errors(value: float | str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_timestamp(value)


@pytest.mark.parametrize("value", [True, None, [1], {"s": 1}])
def test_parse_timestamp_type_errors(value: object) -> None:
    with pytest.raises(TypeError, match="ts: expected a number"):
        parse_timestamp(value)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- every reject reason

EV = '"model": "fraud", "ts": 1764213000.25'  # a valid prefix for the cases below

REJECT_CASES: list[tuple[str, bytes | None, RejectReason, str]] = [
    # malformed JSON
    ("truncated", b'{"model": "fraud", "features": {"amount": 12.3', RejectReason.MALFORMED_JSON,
     "not valid JSON"),
    ("trailing", b'{"model": "fraud", "prediction": 1}\n{"model": "fraud"}',
     RejectReason.MALFORMED_JSON, "not valid JSON"),
    ("python NaN", b'{"model": "fraud", "prediction": NaN}', RejectReason.MALFORMED_JSON,
     "not valid JSON"),
    ("single quotes", b"{'model': 'fraud'}", RejectReason.MALFORMED_JSON, "not valid JSON"),
    ("bad utf-8", b'{"model": "fr\xffaud", "prediction": 1}', RejectReason.MALFORMED_JSON,
     "not valid UTF-8"),
    ("latin-1 feature", '{"model": "a", "features": {"city": "Köln"}}'.encode("latin-1"),
     RejectReason.MALFORMED_JSON, "not valid UTF-8"),
    ("type error then syntax error", b'{"model": 1, "features": {', RejectReason.MALFORMED_JSON,
     "not valid JSON"),
    ("deep", b'{"model": "a", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     RejectReason.MALFORMED_JSON, "nested too deeply"),
    ("bom", b'\xef\xbb\xbf{"model": "a", "prediction": 1}', RejectReason.MALFORMED_JSON,
     "not valid JSON"),
    # not an object
    ("array batch", b'[{"model": "fraud", "prediction": 1}]', RejectReason.NOT_AN_OBJECT,
     "expected a JSON object, got array"),
    ("string", b'"fraud"', RejectReason.NOT_AN_OBJECT, "got string"),
    ("number", b"42", RejectReason.NOT_AN_OBJECT, "got number"),
    ("null", b"null", RejectReason.NOT_AN_OBJECT, "got null"),
    # missing model
    ("no model", b'{"features": {"amount": 1}}', RejectReason.MISSING_MODEL,
     "model: required, absent"),
    ("null model", b'{"model": null, "prediction": 1}', RejectReason.MISSING_MODEL,
     "model: required, null"),
    ("empty model", b'{"model": "", "prediction": 1}', RejectReason.MISSING_MODEL,
     "model: must be non-empty"),
    ("blank model", b'{"model": " \\t", "prediction": 1}', RejectReason.MISSING_MODEL,
     "model: must be non-empty"),
    ("empty model + bad type", b'{"model": "", "prediction": [1]}', RejectReason.MISSING_MODEL,
     "model: must be non-empty"),
    # invalid type
    ("numeric model", b'{"model": 42, "prediction": 1}', RejectReason.INVALID_TYPE,
     "model: expected non-empty string, got number"),
    ("feature array", ("{" + EV + ', "features": {"amount": [12.3]}}').encode(),
     RejectReason.INVALID_TYPE,
     "features.amount: expected number, string, bool or null, got array"),
    ("feature object", ("{" + EV + ', "features": {"geo": {"lat": 1}}}').encode(),
     RejectReason.INVALID_TYPE, "features.geo: expected number, string, bool or null, got object"),
    ("features list", ("{" + EV + ', "features": [1, 2]}').encode(), RejectReason.INVALID_TYPE,
     "features: expected object or null, got array"),
    ("features string", ("{" + EV + ', "features": "amount=1"}').encode(),
     RejectReason.INVALID_TYPE, "features: expected object or null, got string"),
    ("class probabilities", ("{" + EV + ', "prediction": [0.1, 0.9]}').encode(),
     RejectReason.INVALID_TYPE,
     "prediction: expected number, string, bool, object or null, got array"),
    ("nested output", ("{" + EV + ', "prediction": {"probs": {"a": 0.1}}}').encode(),
     RejectReason.INVALID_TYPE,
     "prediction.probs: expected number, string, bool or null, got object"),
    ("float version", ("{" + EV + ', "model_version": 7.5, "prediction": 1}').encode(),
     RejectReason.INVALID_TYPE, "model_version: expected string or integer, got number"),
    ("bool version", ("{" + EV + ', "model_version": true, "prediction": 1}').encode(),
     RejectReason.INVALID_TYPE, "model_version: expected string or integer, got bool"),
    ("object event id", ("{" + EV + ', "event_id": {"id": 1}, "prediction": 1}').encode(),
     RejectReason.INVALID_TYPE, "event_id: expected string or integer, got object"),
    ("huge number", ("{" + EV + ', "features": {"x": 1e400}}').encode(),
     RejectReason.INVALID_TYPE, "features[...]: number out of range"),
    ("huge integer", ("{" + EV + ', "features": {"x": ' + "9" * 400 + "}}").encode(),
     RejectReason.INVALID_TYPE, "features.x: number out of range"),
    # no payload
    ("only metadata", ("{" + EV + ', "event_id": "8c1"}').encode(), RejectReason.NO_PAYLOAD,
     "neither features nor prediction"),
    ("null payloads", ("{" + EV + ', "features": null, "prediction": null}').encode(),
     RejectReason.NO_PAYLOAD, "neither features nor prediction"),
    ("empty payloads", ("{" + EV + ', "features": {}, "prediction": {}}').encode(),
     RejectReason.NO_PAYLOAD, "neither features nor prediction"),
    # bad timestamp
    ("ts words", b'{"model": "a", "ts": "yesterday", "prediction": 1}', RejectReason.BAD_TIMESTAMP,
     "ts: 'yesterday' is not an RFC 3339 date-time"),
    ("ts naive", b'{"model": "a", "ts": "2026-11-27T10:00:00", "prediction": 1}',
     RejectReason.BAD_TIMESTAMP, "no UTC offset"),
    ("ts negative", b'{"model": "a", "ts": -5, "prediction": 1}', RejectReason.BAD_TIMESTAMP,
     "ts: expected epoch seconds"),
    ("ts microseconds", b'{"model": "a", "ts": 1764213000250000, "prediction": 1}',
     RejectReason.BAD_TIMESTAMP, "ts: expected epoch seconds (0..1e11) or epoch milliseconds"),
    ("ts bool", b'{"model": "a", "ts": true, "prediction": 1}', RejectReason.BAD_TIMESTAMP,
     "ts: expected epoch seconds, epoch milliseconds or an RFC 3339 string, got bool"),
    ("ts object", b'{"model": "a", "ts": {"$date": 1}, "prediction": 1}',
     RejectReason.BAD_TIMESTAMP, "got object"),
    ("ts huge", b'{"model": "a", "ts": 1e400, "prediction": 1}', RejectReason.BAD_TIMESTAMP,
     "ts: number out of range"),
    ("ts leap second", b'{"model": "a", "ts": "2016-12-31T23:59:60Z", "prediction": 1}',
     RejectReason.BAD_TIMESTAMP, "not an RFC 3339"),
    # invalid names
    ("feature named prediction", ("{" + EV + ', "features": {"prediction": 1}}').encode(),
     RejectReason.INVALID_NAME, "features.prediction: feature names 'prediction'"),
    ("feature prediction.x", ("{" + EV + ', "features": {"prediction.score": 1}}').encode(),
     RejectReason.INVALID_NAME, "reserved for prediction series"),
    ("escaped reserved name", ("{" + EV + r', "features": {"\u0070rediction.x": 1}}').encode(),
     RejectReason.INVALID_NAME, "features.prediction.x"),
    ("empty feature name", ("{" + EV + ', "features": {"": 1}}').encode(),
     RejectReason.INVALID_NAME, "features: empty feature name"),
    ("empty output name", ("{" + EV + ', "prediction": {"": 1}}').encode(),
     RejectReason.INVALID_NAME, "prediction: empty output name"),
    # empty
    ("tombstone", None, RejectReason.EMPTY, "tombstone"),
    ("zero bytes", b"", RejectReason.EMPTY, "record value is empty"),
    ("whitespace", b" \r\n\t", RejectReason.EMPTY, "only whitespace"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("value", "reason", "detail"),
    [case[1:] for case in REJECT_CASES],
    ids=[case[0] for case in REJECT_CASES],
)
def test_reject_reasons(value: bytes | None, reason: RejectReason, detail: str) -> None:
    r = EventDecoder().decode(rec(value))
    assert isinstance(r, Rejection)
    assert (r.reason, detail in r.detail) == (reason, True), r.detail
    assert "(schema check)" not in r.detail
    assert r.record.value == value


def test_every_reason_is_covered() -> None:
    covered = {case[2] for case in REJECT_CASES}
    covered |= {
        RejectReason.UNKNOWN_MODEL,  # test_unknown_model
        RejectReason.OVERSIZE,  # test_oversize
        RejectReason.MISSING_EVENT_ID,  # test_label_rejections
        RejectReason.MISSING_LABEL,  # test_label_rejections
        RejectReason.DECODER_ERROR,  # test_decoder_error_is_a_rejection
        RejectReason.FUTURE_TIMESTAMP,  # tests/test_ingest.py (the worker's clock, stage 1)
    }
    assert covered == set(RejectReason)


def test_reason_codes_are_stable() -> None:
    assert {r.value for r in RejectReason} == {
        "malformed_json", "not_an_object", "missing_model", "invalid_type", "no_payload",
        "bad_timestamp", "unknown_model", "oversize", "empty", "invalid_name",
        "missing_event_id", "missing_label", "decoder_error", "future_timestamp",
    }  # fmt: skip
    assert f"{RejectReason.OVERSIZE}" == "oversize"


def test_rejection_names_model_when_readable() -> None:
    assert reject({"model": "fraud", "features": {"x": [1]}}).model == "fraud"
    assert reject({"model": "fraud", "ts": "soon", "prediction": 1}).model == "fraud"
    assert reject({"model": "fraud"}).model == "fraud"
    assert reject({"model": 3, "prediction": 1}).model is None
    assert reject(b"{").model is None


def test_kafka_record_without_timestamp() -> None:
    r = reject({"model": "a", "prediction": 1}, timestamp_ms=-1)
    assert r.reason is RejectReason.BAD_TIMESTAMP
    assert r.detail == "ts: absent, and the Kafka record has no timestamp (-1)"
    assert accept({"model": "a", "ts": 5, "prediction": 1}, timestamp_ms=-1).ts == 5.0


def test_unknown_model() -> None:
    dec = EventDecoder(known_models=["fraud", "churn"])
    assert isinstance(dec.decode(rec({"model": "fraud", "prediction": 1})), Event)
    r = dec.decode(rec({"model": "frauds", "prediction": 1}))
    assert isinstance(r, Rejection) and r.reason is RejectReason.UNKNOWN_MODEL
    assert r.detail == "model: 'frauds' is not a known model (known: 'churn', 'fraud')"
    # checked before the payload, on both the fast and the slow path
    bodies: list[dict[str, object]] = [{"model": "x"}, {"model": "x", "features": [1]}]
    for body in bodies:
        out = dec.decode(rec(body))
        assert isinstance(out, Rejection) and out.reason is RejectReason.UNKNOWN_MODEL
    out = EventDecoder(known_models=()).decode(rec({"model": "a", "prediction": 1}))
    assert isinstance(out, Rejection) and out.reason is RejectReason.UNKNOWN_MODEL


def test_oversize_is_not_parsed() -> None:
    body = json.dumps({"model": "a", "features": {"text": "x" * 200}}).encode()
    dec = EventDecoder(max_message_bytes=100)
    r = dec.decode(rec(body))
    assert isinstance(r, Rejection) and r.reason is RejectReason.OVERSIZE
    assert r.detail == f"record value is {len(body)} bytes, more than max_message_bytes=100"
    assert isinstance(EventDecoder(max_message_bytes=len(body)).decode(rec(body)), Event)


def test_decoder_error_is_a_rejection(monkeypatch: pytest.MonkeyPatch) -> None:
    dec = EventDecoder()

    def boom(record: RawRecord) -> Event:
        raise RuntimeError("bug")

    monkeypatch.setattr(dec, "_decode_event", boom)
    batch = dec.decode_batch([rec({"model": "a", "prediction": 1})])
    assert batch.events == []
    assert [(r.reason, r.detail) for r in batch.rejections] == [
        (RejectReason.DECODER_ERROR, "RuntimeError: bug")
    ]
    r = dec.decode(rec({"model": "a", "prediction": 1}))
    assert isinstance(r, Rejection) and r.reason is RejectReason.DECODER_ERROR


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="positive"):
        EventDecoder(max_message_bytes=0)
    with pytest.raises(TypeError, match="collection of names"):
        EventDecoder(known_models="fraud")
    dec = EventDecoder(max_message_bytes=10, known_models={"a"})
    assert (dec.max_message_bytes, dec.known_models) == (10, {"a"})
    assert "max_message_bytes=10" in repr(dec)


# --------------------------------------------------------------------------- batches


def test_decode_batch_partitions_in_order() -> None:
    values = [
        {"model": "a", "prediction": 1},
        b"not json",
        {"model": "a", "features": {"x": 2}},
        None,
        {"model": "a"},
    ]
    records = [rec(v, offset=i) for i, v in enumerate(values)]  # type: ignore[arg-type]
    batch = EventDecoder().decode_batch(iter(records))
    assert isinstance(batch, DecodedBatch)
    assert [e.values for e in batch.events] == [{"prediction": 1.0}, {"x": 2.0}]
    assert [(r.record.offset, r.reason.value) for r in batch.rejections] == [
        (1, "malformed_json"),
        (3, "empty"),
        (4, "no_payload"),
    ]


# --------------------------------------------------------------------------- labels


def test_labels() -> None:
    dec = EventDecoder()
    records = [
        rec({"model": "fraud", "event_id": "8c1", "label": "fraud", "ts": 1764213000.25}),
        rec({"model": "fraud", "event_id": 17, "label": 1}),
        rec({"model": "fraud", "event_id": "x", "label": False, "ts": "2026-11-27T10:00:00Z"}),
    ]
    batch = dec.decode_label_batch(records)
    assert batch.rejections == []
    assert batch.labels == [
        Label("fraud", "8c1", "fraud", 1764213000.25),
        Label("fraud", "17", 1.0, KAFKA_TS_MS / 1000),
        Label("fraud", "x", "false", T0.timestamp()),
    ]
    assert decode_label_batch(records).labels == batch.labels


@pytest.mark.parametrize(
    ("body", "reason", "detail"),
    [
        ({"model": "fraud", "label": 1}, RejectReason.MISSING_EVENT_ID, "event_id: required"),
        ({"model": "fraud", "event_id": "", "label": 1}, RejectReason.MISSING_EVENT_ID, "''"),
        ({"model": "fraud", "event_id": "a"}, RejectReason.MISSING_LABEL, "label: required"),
        ({"model": "fraud", "event_id": "a", "label": None}, RejectReason.MISSING_LABEL, "null"),
        ({"model": "fraud", "event_id": "a", "label": [1]}, RejectReason.INVALID_TYPE,
         "label: expected number, string, bool or null, got array"),
        ({"model": "fraud", "event_id": [1], "label": 1}, RejectReason.INVALID_TYPE,
         "event_id: expected string or integer, got array"),
        ({"event_id": "a", "label": 1}, RejectReason.MISSING_MODEL, "model: required"),
        ({"model": "churn", "event_id": "a", "label": 1}, RejectReason.UNKNOWN_MODEL, "churn"),
        ({"model": "fraud", "event_id": "a", "label": 1, "ts": "now"},
         RejectReason.BAD_TIMESTAMP, "ts: 'now' is not an RFC 3339"),
        ({"model": "fraud", "event_id": "a", "label": 1, "ts": -1},
         RejectReason.BAD_TIMESTAMP, "ts: expected epoch seconds"),
    ],
)  # fmt: skip
def test_label_rejections(body: dict[str, object], reason: RejectReason, detail: str) -> None:
    dec = EventDecoder(known_models={"fraud"})
    out = dec.decode_label(rec(body, topic="drift.labels"))
    assert isinstance(out, Rejection)
    assert (out.reason, detail in out.detail) == (reason, True), out.detail
    assert "(schema check)" not in out.detail
    batch = dec.decode_label_batch([rec(body), rec(None)])
    assert [r.reason for r in batch.rejections] == [reason, RejectReason.EMPTY]


# --------------------------------------------------------------------------- nothing lost

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
names = st.sampled_from(["amount", "country", "age", "", "prediction", "prediction.x", "é"])
ts_values = st.one_of(
    st.none(),
    st.floats(0, 1e11) | st.integers(int(1e11), int(1e14)),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(10**15), max_value=10**16),
    st.datetimes(timezones=st.just(UTC) | st.just(timezone(timedelta(hours=-3)))).map(
        lambda d: d.isoformat()
    ),
    st.datetimes().map(lambda d: d.isoformat()),  # naive: refused
    st.text(max_size=10),
    json_values,
)


def mostly(
    good: st.SearchStrategy[object], bad: st.SearchStrategy[object]
) -> st.SearchStrategy[object]:
    """``good`` four times out of five, else ``bad`` (``one_of`` would pick each half the time)."""
    return st.integers(0, 4).flatmap(lambda i: bad if i == 0 else good)


mostly_scalars = mostly(json_scalars, json_values)
maybe_events = st.fixed_dictionaries(
    {"model": mostly(st.sampled_from(["fraud"] * 6 + ["", " ", "churn"]), json_values)},
    optional={
        "model_version": mostly(st.sampled_from(["7", "", 7]), json_values),
        "event_id": mostly(st.text(max_size=5) | st.integers(), json_values),
        "ts": ts_values,
        "features": mostly(
            st.dictionaries(names | st.text(max_size=5), mostly_scalars, max_size=5), json_values
        ),
        "prediction": mostly(
            json_scalars | st.dictionaries(names | st.text(max_size=5), mostly_scalars, max_size=3),
            json_values,
        ),
        "label": mostly_scalars,
    },
)
maybe_objects = mostly(
    maybe_events, maybe_events.map(lambda d: {k: v for k, v in d.items() if k != "model"})
)


def _encode(obj: object) -> bytes:
    return json.dumps(obj, allow_nan=False).encode()


record_values = st.one_of(
    st.binary(max_size=200),
    st.none(),
    json_values.map(_encode),
    maybe_objects.map(_encode),
    maybe_objects.map(_encode),
    maybe_events.map(_encode).flatmap(  # corrupt a valid-looking event
        lambda b: st.integers(0, max(len(b) - 1, 0)).map(lambda i: b[:i] + b"\xff" + b[i + 1 :])
    ),
)


def _check_partition(records: list[RawRecord], batch: DecodedBatch, dec: EventDecoder) -> None:
    assert len(batch.events) + len(batch.rejections) == len(records)
    singles = [dec.decode(r) for r in records]
    assert batch.events == [o for o in singles if isinstance(o, Event)]
    assert batch.rejections == [o for o in singles if isinstance(o, Rejection)]
    assert [r.record for r in batch.rejections] == [
        r for r, o in zip(records, singles, strict=True) if isinstance(o, Rejection)
    ]
    for r in batch.rejections:
        assert r.reason is not RejectReason.DECODER_ERROR, r.detail
        assert "(schema check)" not in r.detail, (r.record.value, r.detail)
    for e in batch.events:
        assert e.model and not e.model.isspace() and e.values
        assert isinstance(e.ts, float) and 0 <= e.ts <= 1e11
        assert all(v is None or type(v) in (float, str) for v in e.values.values())


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(record_values, max_size=8), ts_ms=st.integers(-2, 2 * KAFKA_TS_MS))
def test_decode_batch_never_raises_and_partitions(values: list[bytes | None], ts_ms: int) -> None:
    records = [RawRecord(v, "drift.events", 0, i, ts_ms) for i, v in enumerate(values)]
    dec = EventDecoder(max_message_bytes=300, known_models=None)
    _check_partition(records, dec.decode_batch(records), dec)
    labels = dec.decode_label_batch(records)
    assert len(labels.labels) + len(labels.rejections) == len(records)
    for r in labels.rejections:
        assert r.reason is not RejectReason.DECODER_ERROR, r.detail
        assert "(schema check)" not in r.detail, (r.record.value, r.detail)


@settings(max_examples=300, deadline=None)
@given(
    features=st.dictionaries(
        st.text(min_size=1, max_size=8).filter(lambda n: not is_prediction_series(n)),
        st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False)
        | st.integers(-(10**18), 10**18) | st.text(max_size=8),
        max_size=6,
    ),
    prediction=st.none() | st.floats(0, 1) | st.text(max_size=4) | st.booleans()
    | st.dictionaries(st.text(min_size=1, max_size=5), st.none() | st.floats(0, 1), max_size=3),
    ts=st.floats(0, 1e11) | st.integers(int(1e11) + 1, int(1e14)),
)  # fmt: skip
def test_accepted_values_match_reference(
    features: dict[str, object], prediction: object, ts: float
) -> None:
    """A pure-Python reading of the contract gives the same values as the fast path."""
    body = {"model": "m", "ts": ts, "features": features, "prediction": prediction}
    out = EventDecoder().decode(rec(body))
    expected: dict[str, object] = {}

    def norm(v: object) -> object:
        if isinstance(v, bool):
            return "true" if v else "false"
        return float(v) if isinstance(v, int | float) else v

    for k, v in features.items():
        expected[k] = norm(v)
    if isinstance(prediction, dict):
        expected.update({f"prediction.{k}": norm(v) for k, v in prediction.items()})
    elif prediction is not None:
        expected["prediction"] = norm(prediction)
    if not expected:
        assert isinstance(out, Rejection) and out.reason is RejectReason.NO_PAYLOAD
        return
    assert isinstance(out, Event), out
    assert out.values == expected
    assert out.ts == (ts / 1000 if ts > 1e11 else float(ts))
