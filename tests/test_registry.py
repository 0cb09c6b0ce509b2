"""Reference registry look-ups and warm-up learning."""

from __future__ import annotations

import numpy as np
import pytest

from stream_drift.pipeline.events import Event
from stream_drift.pipeline.reference import ReferenceProfile, build_reference
from stream_drift.pipeline.registry import ReferenceRegistry, WarmupCollector
from stream_drift.stats.histogram import Histogram


def _ref(model: str, version: str, shift: float = 0.0) -> ReferenceProfile:
    return build_reference({"x": np.arange(200.0) + shift}, model=model, model_version=version)


def test_lookup_exact_then_newest_then_none() -> None:
    reg = ReferenceRegistry()
    v1, v2 = _ref("m", "1"), _ref("m", "2", shift=5)
    assert reg.add(v1)
    assert reg.lookup("m", "1") is v1
    assert reg.lookup("m", "9") is v1  # unknown version: the model's newest
    assert reg.lookup("m", "") is v1
    assert reg.add(v2)
    assert reg.lookup("m", "1") is v1  # exact match wins over newest
    assert reg.lookup("m", "2") is v2
    assert reg.lookup("m", "9") is v2  # newest is now v2
    assert reg.lookup("other", "1") is None
    assert reg.lookup("other", "") is None


def test_add_is_idempotent_and_latest_wins() -> None:
    reg = ReferenceRegistry()
    a, a_again, a_new = _ref("m", "1"), _ref("m", "1"), _ref("m", "1", shift=1)
    assert a.id == a_again.id
    assert reg.add(a)
    assert not reg.add(a_again)  # same content: nothing to do
    assert len(reg) == 1
    assert reg.add(a_new)
    assert reg.lookup("m", "1") is a_new
    assert len(reg) == 1
    assert reg.by_id(a_new.id) is a_new
    assert reg.by_id(a.id) is None  # replaced


def test_by_id_iteration_and_models() -> None:
    reg = ReferenceRegistry()
    profiles = [_ref("m", "1"), _ref("m", "2", 1), _ref("n", "", 2)]
    for p in profiles:
        reg.add(p)
    assert len(reg) == 3
    assert {p.id for p in reg} == {p.id for p in profiles}
    assert reg.models() == {"m", "n"}
    for p in profiles:
        assert reg.by_id(p.id) is p
    assert reg.by_id("sha256:nope") is None


def _events(n: int, model: str = "m", version: str = "1", start: int = 0) -> list[Event]:
    return [
        Event(
            model,
            version,
            None,
            float(i),
            {"x": float(i), "c": "ab"[i % 2], "prediction": i / 10},
        )
        for i in range(start, start + n)
    ]


def test_warmup_needs_a_positive_size() -> None:
    with pytest.raises(ValueError, match="n_events"):
        WarmupCollector(0)


def test_warmup_learns_from_exactly_the_first_n_events() -> None:
    w = WarmupCollector(n_events=100)
    assert w.add([]) is None
    assert w.add(_events(60)) is None
    assert w.pending() == {("m", "1"): 60}
    profile = w.add(_events(70, start=60))  # 40 of these complete the warm-up
    assert profile is not None
    assert w.pending() == {}
    assert (profile.model, profile.model_version) == ("m", "1")
    assert set(profile.series) == {"x", "c", "prediction"}
    first = _events(100)
    for name, s in profile.series.items():
        # The reference holds exactly the first 100 events' values over its own bins.
        expected = Histogram(s.histogram.binning).add([e.values[name] for e in first])
        assert s.histogram == expected, name
    assert profile.series["x"].kind == "numeric"
    assert profile.series["c"].kind == "categorical"
    assert profile.series["prediction"].role == "prediction"
    assert profile.series["x"].role == "feature"
    assert "warm-up" in profile.source


def test_warmup_keeps_models_and_versions_apart() -> None:
    w = WarmupCollector(n_events=10)
    assert w.add(_events(5, version="1")) is None
    assert w.add(_events(5, version="2")) is None
    assert w.add(_events(5, model="other")) is None
    assert w.pending() == {("m", "1"): 5, ("m", "2"): 5, ("other", "1"): 5}
    w.discard("m", "2")
    assert ("m", "2") not in w.pending()
    p = w.add(_events(5, version="1", start=5))
    assert p is not None
    assert (p.model, p.model_version) == ("m", "1")
    assert p.series["x"].histogram.n == 10


def test_warmup_counts_missing_values() -> None:
    w = WarmupCollector(n_events=4)
    evs = [
        Event("m", "", None, 0.0, {"x": 1.0}),
        Event("m", "", None, 1.0, {"x": None}),
        Event("m", "", None, 2.0, {"x": 3.0, "y": "a"}),
        Event("m", "", None, 3.0, {"x": 4.0}),
    ]
    p = w.add(evs)
    assert p is not None
    assert (p.series["x"].histogram.n, p.series["x"].histogram.missing) == (3, 1)
    assert (p.series["y"].histogram.n, p.series["y"].histogram.missing) == (1, 3)


def test_warmup_prediction_only_events_do_not_make_features_missing() -> None:
    # Feature events and prediction events may arrive separately (DESIGN §3.1); the learned
    # reference must count missing values the way the stream does (events.group_values).
    w = WarmupCollector(n_events=6)
    evs = [Event("m", "", None, float(i), {"x": float(i)}) for i in range(3)]
    evs += [Event("m", "", None, float(i), {"prediction": i / 10}) for i in range(3)]
    p = w.add(evs)
    assert p is not None
    assert (p.series["x"].histogram.n, p.series["x"].histogram.missing) == (3, 0)
    assert (p.series["prediction"].histogram.n, p.series["prediction"].histogram.missing) == (
        3,
        0,
    )
