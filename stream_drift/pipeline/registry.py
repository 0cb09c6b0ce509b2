"""Which reference each (model, version) is judged against, and warm-up learning."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from stream_drift.pipeline.columns import group_values
from stream_drift.pipeline.events import Event, is_prediction_series
from stream_drift.pipeline.reference import ReferenceProfile, build_reference


def reference_record_key(profile: ReferenceProfile) -> str:
    """Key of a profile's record on the references topic: ``model/version/reference-id``.

    One key per distinct profile, so compaction keeps every profile ever published (a
    republish of the same version with other content is a new key); which one is current
    is decided by topic order, never by the key.

    Parameters
    ----------
    profile : ReferenceProfile
        The profile to publish.

    Returns
    -------
    str
        ``f"{model}/{model_version}/{id}"``.

    Examples
    --------
    >>> import numpy as np
    >>> p = build_reference({"x": np.arange(200.0)}, model="m", model_version="1")
    >>> reference_record_key(p) == f"m/1/{p.id}"
    True
    """
    return f"{profile.key}/{profile.id}"


@dataclass(frozen=True)
class PublishedReference:
    """One record of the references topic, as ``stream-drift reference history`` lists it.

    Attributes
    ----------
    model, model_version, reference_id : str
        What the profile is of, and its content id.
    n_rows : int
        Rows the profile was built from (the largest series count, missing values included).
    n_series : int
        Number of series (features and prediction outputs).
    published_at_ms : int
        The record's Kafka timestamp, milliseconds since the epoch.
    partition, offset : int
        Where the record is.
    key : str
        The record's key (``model/version/id``; ``model/version`` for records published
        before keys named the id).
    current : bool
        Whether it is the profile a worker judges this version against (the latest record
        of the version in topic order).
    """

    model: str
    model_version: str
    reference_id: str
    n_rows: int
    n_series: int
    published_at_ms: int
    partition: int
    offset: int
    key: str
    current: bool = False

    @property
    def published_at(self) -> str:
        """The publish time in RFC 3339, UTC, milliseconds (``2026-12-01T19:30:00.123Z``)."""
        stamp = datetime.fromtimestamp(self.published_at_ms / 1000, tz=UTC)
        return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def to_dict(self) -> dict[str, object]:
        """The JSON object of ``reference history --json``."""
        return {
            "model": self.model,
            "model_version": self.model_version,
            "reference_id": self.reference_id,
            "n_rows": self.n_rows,
            "n_series": self.n_series,
            "published_at": self.published_at,
            "current": self.current,
            "key": self.key,
            "partition": self.partition,
            "offset": self.offset,
        }

    @classmethod
    def of(
        cls, profile: ReferenceProfile, *, timestamp_ms: int, partition: int, offset: int, key: str
    ) -> PublishedReference:
        """Describe a profile read from the topic (``current`` is set by
        :func:`reference_history`)."""
        rows = max((s.histogram.total for s in profile.series.values()), default=0)
        return cls(
            model=profile.model,
            model_version=profile.model_version,
            reference_id=profile.id,
            n_rows=int(rows),
            n_series=len(profile.series),
            published_at_ms=int(timestamp_ms),
            partition=int(partition),
            offset=int(offset),
            key=key,
        )


def reference_history(records: Iterable[PublishedReference]) -> list[PublishedReference]:
    """Mark which record of each model version is current, oldest first.

    The current one is what :class:`ReferenceRegistry` keeps when the records are added in
    topic order: the version's last record. A publisher keeps every record of a version in one
    partition, so that is the highest offset; records of a version spread over partitions
    (written by another publisher) fall back to the latest timestamp.

    Parameters
    ----------
    records : Iterable[PublishedReference]
        Records of the references topic, in any order.

    Returns
    -------
    list[PublishedReference]
        The same records sorted by publish time (then partition and offset), each with
        ``current`` set.
    """
    ordered = sorted(records, key=lambda r: (r.published_at_ms, r.partition, r.offset))
    latest: dict[tuple[str, str], PublishedReference] = {}
    for r in ordered:
        seen = latest.get((r.model, r.model_version))
        if seen is None or seen.partition != r.partition or r.offset > seen.offset:
            latest[(r.model, r.model_version)] = r
    current = {id(r) for r in latest.values()}
    return [replace(r, current=id(r) in current) for r in ordered]


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
        # Stage 2 resolves a reference id per partial: a scan would cost O(models) each.
        self._by_id: dict[str, ReferenceProfile] = {}

    def add(self, profile: ReferenceProfile) -> bool:
        """Install a reference (latest wins); ``False`` when it was already installed."""
        key = (profile.model, profile.model_version)
        current = self._exact.get(key)
        if current is not None and current.id == profile.id:
            return False
        if current is not None:
            del self._by_id[current.id]
        self._exact[key] = profile
        self._newest[profile.model] = profile
        self._by_id[profile.id] = profile
        return True

    def lookup(self, model: str, model_version: str) -> ReferenceProfile | None:
        """The reference of that exact version, else the model's newest, else ``None``."""
        return self._exact.get((model, model_version)) or self._newest.get(model)

    def by_id(self, reference_id: str) -> ReferenceProfile | None:
        """The installed reference with that id (a replaced one is no longer found)."""
        return self._by_id.get(reference_id)

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
