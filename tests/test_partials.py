"""Messages of ``drift.partials``: partials and ticks survive the wire unchanged."""

from __future__ import annotations

import json
import math

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_drift.pipeline.partials import Partial, Tick, decode_message
from stream_drift.stats.binning import CategoricalBinning, NumericBinning
from stream_drift.stats.histogram import Histogram

NUM = NumericBinning([-1.0, 0.0, 1.0], [0.0])
CAT = CategoricalBinning(["DE", "FR"])


def _partial() -> Partial:
    p = Partial(
        "fraud",
        "7",
        "sha256:0123456789abcdef",
        "drift.events/3",
        watermark=179.5,
        offset_end=42,
    )
    p.add_step(120.0, "amount", Histogram(NUM).add([-2.0, 0.5, None, 3.0]))
    p.add_step(120.0, "country", Histogram(CAT).add(["DE", "US", None]))
    p.add_step(60.0, "amount", Histogram(NUM).add([0.1]))
    p.events = {120.0: 4, 60.0: 1}
    return p


def test_partial_round_trips_through_bytes() -> None:
    p = _partial()
    q = decode_message(p.to_bytes())
    assert isinstance(q, Partial)
    assert q == p
    # Step keys come back as floats, histograms restore exactly over the same binning.
    assert set(q.steps) == {60.0, 120.0}
    assert all(isinstance(k, float) for k in q.steps)
    assert all(isinstance(k, float) for k in q.events)
    assert q.steps[120.0]["amount"].to_histogram(NUM) == Histogram(NUM).add([-2.0, 0.5, None, 3.0])
    assert q.steps[120.0]["country"].to_histogram(CAT).missing == 1
    assert q.offset_end == 42
    assert q.n_events == 5


def test_partial_decodes_from_str_and_dict() -> None:
    p = _partial()
    assert decode_message(p.to_bytes().decode()) == p
    assert decode_message(json.loads(p.to_bytes())) == p


def test_fractional_step_keys_survive() -> None:
    p = Partial("m", "", "sha256:x", "t/0", watermark=0.3, events={0.1: 2, 1e-7: 1})
    p.add_step(0.1, "x", Histogram(NUM).add([0.0, 0.0]))
    q = decode_message(p.to_bytes())
    assert q == p
    assert set(q.events) == {0.1, 1e-7}


def test_offset_end_defaults_to_unknown() -> None:
    d = msgspec.json.decode(_partial().to_bytes())
    del d["offset_end"]
    q = decode_message(msgspec.json.encode(d))
    assert isinstance(q, Partial)
    assert q.offset_end == -1


def test_tick_round_trips() -> None:
    t = decode_message(Tick(1764213000.25).to_bytes())
    assert t == Tick(1764213000.25)
    assert isinstance(t.now, float)
    assert decode_message({"kind": "tick", "now": 5}) == Tick(5.0)


@pytest.mark.parametrize(
    "payload",
    [b'{"kind": "other"}', b"{}", b"[1, 2]", b'"partial"', {"now": 3}],
)
def test_unknown_messages_are_refused(payload: bytes | dict[str, int]) -> None:
    with pytest.raises(ValueError, match="not a partials message"):
        decode_message(payload)


def test_the_wire_form_is_tagged() -> None:
    d = msgspec.json.decode(_partial().to_bytes())
    assert d["kind"] == "partial"
    assert set(d) == {
        "kind",
        "model",
        "model_version",
        "reference_id",
        "source",
        "watermark",
        "steps",
        "events",
        "offset_end",
        "offset_start",
        "source_partitions",
    }


step_keys = st.floats(0, 1e10, allow_nan=False).map(lambda x: math.floor(x / 60) * 60.0)
values = st.lists(st.one_of(st.none(), st.floats(-5, 5, allow_nan=False)), max_size=8)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.dictionaries(step_keys, values, max_size=5),
    watermark=st.floats(0, 1e10, allow_nan=False),
    offset_end=st.integers(-1, 2**62),
    version=st.text(max_size=5),
)
def test_any_partial_round_trips(
    steps: dict[float, list[float | None]], watermark: float, offset_end: int, version: str
) -> None:
    p = Partial("m", version, "sha256:ab", "ev/0", watermark=watermark, offset_end=offset_end)
    for step, vs in steps.items():
        p.add_step(step, "x", Histogram(NUM).add(vs))
        p.events[step] = len(vs)
    q = decode_message(p.to_bytes())
    assert q == p
    for step, vs in steps.items():
        assert q.steps[step]["x"].to_histogram(NUM) == Histogram(NUM).add(vs)


# What the previous release wrote: the hand-built dict of ``Partial.to_dict`` / ``Tick``, encoded
# by msgspec (step keys as ``repr(float)``), field for field.
PREVIOUS_PARTIAL = (
    b'{"kind":"partial","model":"fraud","model_version":"7",'
    b'"reference_id":"sha256:0123456789abcdef",'
    b'"source":"drift.events/3","watermark":179.5,'
    b'"steps":{"120.0":{"amount":{"n_bins":4,"missing":1,"bins":[0,2,3],"counts":[1,1,1]},'
    b'"country":{"n_bins":3,"missing":1,"bins":[0,2],"counts":[1,1]}},'
    b'"60.0":{"amount":{"n_bins":4,"missing":0,"bins":[2],"counts":[1]}}},'
    b'"events":{"120.0":4,"60.0":1},"offset_end":42,"offset_start":-1,"source_partitions":0}'
)


def test_the_bytes_are_those_of_the_previous_release() -> None:
    """Stage 2 of either release reads stage 1 of the other (a rolling upgrade)."""
    assert _partial().to_bytes() == PREVIOUS_PARTIAL
    assert decode_message(PREVIOUS_PARTIAL) == _partial()
    assert Tick(1764213000.25).to_bytes() == b'{"kind":"tick","now":1764213000.25}'


def test_a_partial_of_an_older_release_reads_with_defaults() -> None:
    """Left on the topic by a release before offset ranges and mismatch counts existed."""
    old = (
        b'{"kind": "partial", "model": "m", "model_version": "", "reference_id": "sha256:x",'
        b' "source": "t/0", "watermark": 61, "steps": {"60.0": {"x": {"n_bins": 4,'
        b' "missing": 0, "bins": [2], "counts": [3]}}}, "events": {"60.0": 3}}'
    )
    q = decode_message(old)
    assert isinstance(q, Partial)
    assert (q.offset_start, q.offset_end, q.source_partitions) == (-1, -1, 0)
    assert q.watermark == 61.0 and q.events == {60.0: 3}
    assert q.steps[60.0]["x"].to_histogram(NUM) == Histogram(NUM).add([0.5, 0.5, 0.5])


def test_mismatched_counts_travel_only_when_non_zero() -> None:
    p = Partial("m", "", "sha256:x", "t/0", watermark=1.0, events={0.0: 2})
    p.add_step(0.0, "x", Histogram(NUM).add([0.5, "a"]))
    assert b'"mismatched":1' in p.to_bytes()
    q = decode_message(p.to_bytes())
    assert isinstance(q, Partial)
    assert q.steps[0.0]["x"].to_histogram(NUM).mismatched == 1


@pytest.mark.parametrize(
    "payload",
    [
        b'{"kind": "partial", "model": "m"}',  # fields missing
        b'{"kind": "tick", "now": "soon"}',
        b'{"kind": "partial", "model": "m", "model_version": "", "reference_id": "r",'
        b' "source": "t/0", "watermark": 1, "steps": {"60.0": {"x": {"n_bins": 4}}}}',
    ],
)
def test_misshapen_messages_are_refused_as_values(payload: bytes) -> None:
    with pytest.raises(ValueError, match="not a partials message"):
        decode_message(payload)
