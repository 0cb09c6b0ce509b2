"""Which reference each (model, version) is judged against, and warm-up learning."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from stream_drift.events import Event, group_values, is_prediction_series
from stream_drift.reference import ReferenceProfile, build_reference


class ReferenceRegistry:
    """Latest reference per ``model/version``; lookups fall back to the model's newest one.

    Examples
    --------
    >>> import numpy as np
    >>> reg = ReferenceRegistry()
    >>> reg.add(build_reference({"x": np.arange(200.0)}, model="m", model_version="1"))
    True
    >>> reg.lookup("m", "1").model_version, reg.lookup("m", "2").model_version
    ('1', '1')
    >>> reg.lookup("other", "") is None
    True
    """

    def __init__(self) -> None:
        self._exact: dict[tuple[str, str], ReferenceProfile] = {}
        self._newest: dict[str, ReferenceProfile] = {}

    def add(self, profile: ReferenceProfile) -> bool:
        """Install a reference (latest wins); ``False`` when it was already installed."""
        key = (profile.model, profile.model_version)
        current = self._exact.get(key)
        if current is not None and current.id == profile.id:
            return False
        self._exact[key] = profile
        self._newest[profile.model] = profile
        return True

    def lookup(self, model: str, model_version: str) -> ReferenceProfile | None:
        """The reference of that exact version, else the model's newest, else ``None``."""
        return self._exact.get((model, model_version)) or self._newest.get(model)

    def by_id(self, reference_id: str) -> ReferenceProfile | None:
        for profile in self._exact.values():
            if profile.id == reference_id:
                return profile
        return None

    def __iter__(self) -> Iterator[ReferenceProfile]:
        return iter(self._exact.values())

    def __len__(self) -> int:
        return len(self._exact)

    def models(self) -> set[str]:
        return set(self._newest)


class WarmupCollector:
    """Learn a reference from the first ``n_events`` events of a model with none published.

    Events used for learning are not judged (they *are* the reference). At most
    ``max_models`` models are learned at the same time (see :meth:`has_room_for`).

    Examples
    --------
    >>> w = WarmupCollector(n_events=150)
    >>> evs = [Event("m", "1", None, float(i), {"x": float(i)}) for i in range(200)]
    >>> ref = w.add(evs)
    >>> ref.model, ref.series["x"].histogram.n
    ('m', 150)
    """

    def __init__(
        self,
        n_events: int,
        *,
        fine_bins: int = 100,
        coarse_bins: int = 10,
        top_categories: int = 50,
        max_models: int = 100,
    ) -> None:
        if n_events < 1:
            raise ValueError("n_events must be >= 1")
        if max_models < 1:
            raise ValueError("max_models must be >= 1")
        self.n_events = n_events
        self.max_models = max_models
        self.fine_bins = fine_bins
        self.coarse_bins = coarse_bins
        self.top_categories = top_categories
        self._events: dict[tuple[str, str], list[Event]] = {}

    def pending(self) -> dict[tuple[str, str], int]:
        return {k: len(v) for k, v in self._events.items()}

    def collected(self, key: tuple[str, str]) -> int:
        """Events collected so far for ``(model, version)`` (O(1))."""
        bucket = self._events.get(key)
        return 0 if bucket is None else len(bucket)

    def has_room_for(self, key: tuple[str, str], starting: int = 0) -> bool:
        """Whether ``key`` is being learned or a new model may start, ``starting`` other new
        models being about to start: at most ``max_models`` are learned at once, so a flood
        of new model names cannot exhaust memory or CPU."""
        return key in self._events or len(self._events) + starting < self.max_models

    def discard(self, model: str, model_version: str) -> None:
        self._events.pop((model, model_version), None)

    def add(self, events: Sequence[Event]) -> ReferenceProfile | None:
        """Collect events of one (model, version); return the reference once complete."""
        if not events:
            return None
        key = (events[0].model, events[0].model_version)
        bucket = self._events.setdefault(key, [])
        bucket.extend(events[: self.n_events - len(bucket)])
        if len(bucket) < self.n_events:
            return None
        del self._events[key]
        # Missing values counted as the stream counts them: a prediction-only event leaves
        # the features alone, and a feature-only event the predictions.
        columns = group_values(bucket)[key]
        profile = build_reference(
            columns,
            model=key[0],
            model_version=key[1],
            exclude=(),
            fine_bins=self.fine_bins,
            coarse_bins=self.coarse_bins,
            top_categories=self.top_categories,
            source=f"warm-up: first {self.n_events} events",
        )
        for name, series in profile.series.items():
            if is_prediction_series(name):
                series.role = "prediction"
        return profile
