"""Unit tests of the service-side emitter (no broker): encoding, drops, counters, logging.

Every encoded record is checked with the worker's own :class:`EventDecoder`. Emitters point at
a free port nobody listens on (construction never contacts a broker); paths that need a broker
that accepts records but has not acknowledged them yet use a fake producer whose futures the
test completes by hand.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.errors import KafkaTimeoutError
from kafka.future import Future
from prometheus_client import CollectorRegistry

from stream_drift.client import (
    DriftEmitter,
    InvalidInput,
    _RateLimitedLog,
    encode_event,
    encode_label,
)
from stream_drift.config import Settings
from stream_drift.pipeline.decode import EventDecoder
from stream_drift.pipeline.events import Event, Label, RawRecord
from stream_drift.tools.embedded import find_free_port

DECODER = EventDecoder()
TS = 1764213000.25


def decode_event(value: bytes) -> Event:
    out = DECODER.decode(RawRecord(value, "drift.events", 0, 0, -1))
    assert isinstance(out, Event), out
    return out


def decode_label(value: bytes) -> Label:
    out = DECODER.decode_label(RawRecord(value, "drift.labels", 0, 0, -1))
    assert isinstance(out, Label), out
    return out


def strict_json(value: bytes) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"non-strict JSON constant {name}")

    return json.loads(value, parse_constant=refuse)


# --------------------------------------------------------------------------- encoding

floats = st.floats(allow_nan=True, allow_infinity=True)
numpy_scalars = st.one_of(
    floats.map(np.float64),
    st.floats(width=32, allow_nan=True, allow_infinity=True).map(np.float32),
    st.integers(-(2**63), 2**63 - 1).map(np.int64),
    st.integers(-(2**31), 2**31 - 1).map(np.int32),
    st.booleans().map(np.bool_),
)
values = st.one_of(
    st.none(), floats, st.integers(), st.booleans(), st.text(max_size=20), numpy_scalars
)
names = st.text(min_size=1, max_size=12).filter(
    lambda n: n != "prediction" and not n.startswith("prediction.")
)


def expected(value: object) -> float | str | None:
    """What the decoder should hold for a value the emitter was given."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else None


@settings(max_examples=300, deadline=None)
@given(features=st.dictionaries(names, values, max_size=8), prediction=values)
def test_any_values_give_strict_json_the_decoder_accepts(
    features: dict[str, object], prediction: object
) -> None:
    carries = bool(features) or expected(prediction) is not None
    if not carries:
        with pytest.raises(InvalidInput, match="nothing to send"):
            encode_event("fraud", features, prediction, ts=TS)
        return
    value = encode_event("fraud", features, prediction, model_version=7, event_id="e1", ts=TS)
    strict_json(value)
    ev = decode_event(value)
    assert (ev.model, ev.model_version, ev.event_id, ev.ts) == ("fraud", "7", "e1", TS)
    want: dict[str, object] = {k: expected(v) for k, v in features.items()}
    if expected(prediction) is not None:
        want["prediction"] = expected(prediction)
    assert ev.values == want


@settings(max_examples=200, deadline=None)
@given(label=st.one_of(floats, st.integers(), st.booleans(), st.text(max_size=10), numpy_scalars))
def test_labels_are_strict_json_or_refused(label: object) -> None:
    want = expected(label)
    if want is None:
        with pytest.raises(InvalidInput, match="label"):
            encode_label("fraud", "e1", label, ts=TS)
        return
    value = encode_label("fraud", "e1", label, ts=TS)
    strict_json(value)
    assert decode_label(value) == Label("fraud", "e1", want, TS)


def test_numpy_types_become_python_types() -> None:
    doc = strict_json(
        encode_event(
            "m",
            {
                "f32": np.float32(0.5),
                "i64": np.int64(2**62),
                "b": np.bool_(False),
                "s": np.str_("x"),
            },
            np.array([0.25]),
            ts=TS,
        )
    )
    assert doc["features"] == {"f32": 0.5, "i64": 2**62, "b": False, "s": "x"}
    assert doc["prediction"] == 0.25
    named = strict_json(encode_event("m", prediction={"p": np.float64("nan"), "q": 1}, ts=TS))
    assert named["prediction"] == {"p": None, "q": 1}
    assert decode_event(encode_event("m", prediction={"p": np.float64("nan"), "q": 1}, ts=TS))


@pytest.mark.parametrize(
    ("ts", "seconds"),
    [
        (TS, TS),
        (1764213000250, TS),  # milliseconds
        ("2025-11-27T03:10:00.25Z", TS),
        (datetime(2025, 11, 27, 3, 10, 0, 250000, tzinfo=UTC), TS),
        (datetime(2025, 11, 27, 3, 10, 0, 250000), TS),  # naive: UTC
        (np.datetime64("2025-11-27T03:10:00.250000000"), TS),
        (np.float32(1024.0), 1024.0),
    ],
)
def test_timestamps_become_epoch_seconds(ts: object, seconds: float) -> None:
    assert strict_json(encode_event("m", prediction=1, ts=ts))["ts"] == seconds


def test_default_ts_is_now() -> None:
    before = time.time()
    ts = strict_json(encode_event("m", prediction=1))["ts"]
    assert before <= ts <= time.time()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"features": {"x": [1, 2]}}, "features.x: .* got list"),
        ({"features": {"x": object()}}, "features.x"),
        ({"features": {"prediction": 1.0}}, "reserved"),
        ({"features": {"prediction.p": 1.0}}, "reserved"),
        ({"features": {"": 1.0}}, "empty name"),
        ({"features": {1: 1.0}}, "names must be strings"),
        ({"features": [1.0]}, "mapping"),
        ({"prediction": np.array([0.1, 0.9])}, "array of 2 values"),
        ({"prediction": float("nan")}, "nothing to send"),
        ({"features": {}, "prediction": {}}, "nothing to send"),
        ({"prediction": 1, "ts": -5}, "ts:"),
        ({"prediction": 1, "ts": float("inf")}, "ts:"),
        ({"prediction": 1, "ts": True}, "ts:"),
        ({"prediction": 1, "ts": "yesterday"}, "ts:"),
        ({"prediction": 1, "event_id": ""}, "event_id"),
        ({"prediction": 1, "event_id": 1.5}, "event_id"),
    ],
)
def test_invalid_input_is_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        encode_event("m", **kwargs)


def test_event_id_int_and_numpy_become_strings() -> None:
    assert decode_event(encode_event("m", prediction=1, event_id=np.int64(17))).event_id == "17"
    assert decode_label(encode_label("m", 17, 1)).event_id == "17"
    with pytest.raises(InvalidInput, match="event_id"):
        encode_label("m", None, 1)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the emitter


@pytest.fixture
def dead_bootstrap() -> str:
    return f"127.0.0.1:{find_free_port()}"


@pytest.fixture
def emitter(dead_bootstrap: str) -> Iterator[DriftEmitter]:
    e = DriftEmitter(dead_bootstrap, model="fraud", model_version="7", max_block_ms=10)
    yield e
    e.close(timeout=0)


def test_invalid_input_is_counted_not_raised(emitter: DriftEmitter) -> None:
    assert emitter.emit(features={"x": [1]}) is False
    assert emitter.emit() is False
    assert emitter.emit_label(event_id="e1", label=None) is False
    assert emitter.stats()["dropped"] == {"invalid_input": 3}
    assert emitter.dropped_total == 3


def test_strict_raises(dead_bootstrap: str) -> None:
    with DriftEmitter(dead_bootstrap, model="m", strict=True, max_block_ms=0) as e:
        with pytest.raises(InvalidInput, match=r"features\.x"):
            e.emit(features={"x": {"nested": 1}})
        with pytest.raises(InvalidInput, match="label"):
            e.emit_label(event_id="e", label=float("nan"))


def test_bad_model_raises_at_construction(dead_bootstrap: str) -> None:
    with pytest.raises(ValueError, match="model"):
        DriftEmitter(dead_bootstrap, model=" ")
    with pytest.raises(ValueError, match="model_version"):
        DriftEmitter(dead_bootstrap, model="m", model_version=1.5)  # type: ignore[arg-type]


def test_emit_after_close_is_dropped(emitter: DriftEmitter) -> None:
    emitter.close(timeout=0)
    emitter.close(timeout=0)  # idempotent
    assert emitter.emit(prediction=1) is False
    assert emitter.emit_label(event_id="e", label=1) is False
    assert emitter.stats()["dropped"] == {"closed": 2}


def test_counters_in_the_given_registry(dead_bootstrap: str) -> None:
    registry = CollectorRegistry()
    a = DriftEmitter(dead_bootstrap, model="a", registry=registry, max_block_ms=0)
    b = DriftEmitter(dead_bootstrap, model="b", registry=registry, max_block_ms=0)  # shares it
    try:
        for _ in range(3):
            a.emit(features={"x": [1]})
        b.emit(prediction=1)  # no metadata within 0 ms: broker_unavailable
        b.emit(prediction=1)  # within the back-off: dropped at once, same reason
    finally:
        a.close(timeout=0)
        b.close(timeout=0)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("stream_drift_emitter_dropped_total", model="a", reason="invalid_input") == 3
    assert value("stream_drift_emitter_dropped_total", model="b", reason="broker_unavailable") == 2
    assert value("stream_drift_emitter_dropped_total", model="b", reason="invalid_input") is None
    assert value("stream_drift_emitter_sent_total", model="a") == 0


def test_rate_limited_log(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    logger = logging.getLogger("test.ratelimit")
    rl = _RateLimitedLog(logger, 10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.ratelimit"):
        assert rl("buffer_full", "d1")
        assert not any(rl("buffer_full", "d") for _ in range(5))
        assert rl("invalid_input", "other reason, own limit")
        now[0] += 9.9
        assert not rl("buffer_full", "d")
        now[0] += 0.1
        assert rl("buffer_full", "d2")
    # Only this logger: a kafka-python thread left by an earlier test may log meanwhile.
    messages = [r.getMessage() for r in caplog.records if r.name == "test.ratelimit"]
    assert len(messages) == 3
    assert "(buffer_full): d1" in messages[0] and "more" not in messages[0]
    assert "(buffer_full): d2 (and 6 more since the last report)" in messages[2]


def test_emitter_logs_one_line_per_reason(
    emitter: DriftEmitter, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="stream_drift.client"):
        for _ in range(100):
            emitter.emit(features={"x": [1]})
    lines = [r for r in caplog.records if r.name == "stream_drift.client"]
    assert len(lines) == 1
    assert "invalid_input" in lines[0].getMessage()
    assert emitter.stats()["dropped"] == {"invalid_input": 100}


class FakeProducer:
    """Stands in for KafkaProducer: futures completed by the test, or a send that times out."""

    def __init__(self, timeout: bool = False) -> None:
        self.timeout = timeout
        self.sends: list[tuple[str, bytes, bytes]] = []
        self.futures: list[Future] = []

    def send(self, topic: str, value: bytes, key: bytes) -> Future:
        self.sends.append((topic, key, value))
        if self.timeout:
            raise KafkaTimeoutError("Failed to update metadata after 0.0 secs.")
        future = Future()
        self.futures.append(future)
        return future

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


def test_buffer_is_bounded_and_drops_without_waiting(emitter: DriftEmitter) -> None:
    fake = FakeProducer()
    emitter._producer = fake
    emitter.buffer_memory = 1_000
    accepted = sum(emitter.emit(prediction=0.5, event_id=f"e{i}", ts=TS) for i in range(100))
    size = len(fake.sends[0][1]) + len(fake.sends[0][2])
    assert accepted == len(fake.sends) == 1_000 // size
    stats = emitter.stats()
    assert stats["pending"] == accepted and stats["pending_bytes"] == accepted * size
    assert stats["dropped"] == {"buffer_full": 100 - accepted}
    fake.futures[0].success(None)
    fake.futures[1].failure(KafkaTimeoutError("expired"))
    stats = emitter.stats()
    assert stats["sent"] == 1 and stats["pending"] == accepted - 2
    assert stats["dropped"]["delivery_failed"] == 1
    assert emitter.emit(prediction=0.5, ts=TS)  # room again
    assert fake.sends[-1][:2] == ("drift.events", b"fraud")  # no event_id: keyed by model


def test_keys_and_topics(emitter: DriftEmitter) -> None:
    fake = FakeProducer()
    emitter._producer = fake
    emitter.emit(prediction=0.5, event_id="abc")
    emitter.emit(prediction=0.5, event_id=42)
    emitter.emit(prediction=0.5)
    emitter.emit_label(event_id="abc", label="fraud")
    assert [(t, k) for t, k, _ in fake.sends] == [
        ("drift.events", b"abc"),
        ("drift.events", b"42"),
        ("drift.events", b"fraud"),
        ("drift.labels", b"abc"),
    ]


def test_unavailable_broker_backs_off(emitter: DriftEmitter) -> None:
    fake = FakeProducer(timeout=True)
    emitter._producer = fake
    emitter.unavailable_backoff_s = 0.2
    for _ in range(10):
        assert emitter.emit(prediction=1) is False
    assert len(fake.sends) == 1, "one wait for metadata, then dropped at once"
    assert emitter.emit_label(event_id="e", label=1) is False
    assert len(fake.sends) == 2, "the back-off is per topic"
    time.sleep(0.25)
    emitter.emit(prediction=1)
    assert len(fake.sends) == 3
    assert emitter.stats()["dropped"] == {"broker_unavailable": 12}


def test_from_settings_maps_brokers_topics_and_security() -> None:
    s = Settings().override(
        {
            "kafka.bootstrap_servers": "127.0.0.1:1, 127.0.0.1:2",
            "kafka.security_protocol": "SASL_PLAINTEXT",
            "kafka.sasl_mechanism": "SCRAM-SHA-512",
            "kafka.sasl_username": "svc",
            "kafka.sasl_password": "s3cret",
            "topics.events": "e.events",
            "topics.labels": "e.labels",
        }
    )
    e = DriftEmitter.from_settings(s, model="fraud", max_block_ms=0)
    try:
        config = e._producer.config
        assert config["bootstrap_servers"] == ["127.0.0.1:1", "127.0.0.1:2"]
        assert (config["security_protocol"], config["sasl_mechanism"]) == (
            "SASL_PLAINTEXT",
            "SCRAM-SHA-512",
        )
        assert (config["sasl_plain_username"], config["sasl_plain_password"]) == ("svc", "s3cret")
        assert config["max_block_ms"] == 0
        assert (e.events_topic, e.labels_topic) == ("e.events", "e.labels")
    finally:
        e.close(timeout=0)
    with pytest.raises(ValueError, match="embedded"):
        DriftEmitter.from_settings(
            Settings().override({"kafka.bootstrap_servers": "embedded"}), "m"
        )


def test_import_pulls_in_neither_faust_nor_aiokafka() -> None:
    code = (
        "import sys, stream_drift.client\n"
        "stream_drift.client.DriftEmitter('127.0.0.1:1', 'm').close(timeout=0)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('faust', 'aiokafka', 'mode'))\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
