"""Reference profiles: what each series of a model looked like when it was trained.

A profile holds, per feature and per prediction output, its kind, bin layout and reference
counts (fine grid for KS, coarse grid derived from it for PSI and the others), n and missing
count, and warnings about a degenerate series (constant, near-constant, empty, too few values).
Its id is a content hash, so every result can name the exact reference it was judged against.
It is stored as JSON and published to the compacted ``drift.references`` topic.

Optionally a profile also holds the model's realised performance on the reference
(``performance``, when the data set has labels), a bounded uniform sample of raw feature rows
(``sample``, for the domain classifier of stage 2) and descriptive ``metadata`` (owner,
intended use, description). The first two describe the reference and enter the id when
present; metadata does not (like ``created_at`` and ``source``). A profile without them keeps
its id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from stream_drift.pipeline.columns import Column, infer_kind, n_rows
from stream_drift.pipeline.events import is_prediction_series
from stream_drift.stats.binning import (
    CategoricalBinning,
    Kind,
    NumericBinning,
    binning_from_dict,
    finite_values,
)
from stream_drift.stats.histogram import Histogram

FORMAT_VERSION = 1
DEFAULT_EXCLUDED = ("model", "model_version", "event_id", "ts", "timestamp", "label")
"""Columns that describe events rather than model inputs; never profiled unless named."""

Role = Literal["feature", "prediction"]

NEAR_CONSTANT_SHARE = 0.99
"""A series whose most frequent value holds at least this share of its non-missing values is
flagged ``near-constant`` (``constant`` when it holds all of them): its bins say little, and
most of what the statistics see is whether that one value stays."""

DEFAULT_SAMPLE_ROWS = 1_000
"""Raw feature rows a profile keeps by default (:class:`ReferenceSample`)."""

METADATA_KEYS = ("owner", "intended_use", "description")
"""The descriptive fields a profile may carry in ``metadata``."""

PUBLISH_LIMIT_BYTES = 1_000_000
"""Largest profile JSON that publishes on a default Apache Kafka: the broker's
``message.max.bytes`` (and a topic's ``max.message.bytes``) default to 1,048,588 bytes, and
the references topic is created without raising it. :func:`size_warning` says when a profile
is larger."""

FEW_VALUES = 100
"""Fewer non-missing reference values than this are flagged: with the statistics' default
``min_samples`` (100), no window is ever judged against such a series."""


class ReferenceError(ValueError):
    """A reference that cannot be built or loaded, with the reason."""


@dataclass
class SeriesProfile:
    """One feature or prediction output of the reference.

    Parameters
    ----------
    name
        Series name as the stream sees it (feature name, ``prediction`` or ``prediction.X``).
    role
        ``feature`` or ``prediction``.
    source
        Column it was read from in the training data.
    histogram
        Reference counts over the series' binning (``histogram.binning``).
    warnings
        What makes the series a weak reference (see :func:`series_warnings`); part of the
        content the id hashes, written only when there are some.
    """

    name: str
    role: Role
    source: str
    histogram: Histogram
    warnings: list[str] = field(default_factory=list)

    @property
    def kind(self) -> Kind:
        return self.histogram.binning.kind

    @property
    def binning(self) -> NumericBinning | CategoricalBinning:
        b = self.histogram.binning
        assert isinstance(b, NumericBinning | CategoricalBinning)
        return b

    def empty(self) -> Histogram:
        """A zero histogram over this series' bins, to count a window into."""
        return Histogram(self.histogram.binning)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "role": self.role,
            "source": self.source,
            "binning": self.histogram.binning.to_dict(),
            "n": self.histogram.n,
            "missing": self.histogram.missing,
            "counts": self.histogram.counts.tolist(),
        }
        # Absent rather than 0, so profiles written before type mismatches were counted keep
        # their id.
        if self.histogram.mismatched:
            out["mismatched"] = self.histogram.mismatched
        # Absent rather than empty, so profiles written before warnings existed keep their id.
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> SeriesProfile:
        binning = binning_from_dict(data["binning"])
        warnings = data.get("warnings", [])
        if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
            raise TypeError(f"series {name!r}: warnings must be a list of strings")
        return cls(
            name=name,
            role=data["role"],
            source=data.get("source", name),
            histogram=Histogram(
                binning,
                data["counts"],
                int(data.get("missing", 0)),
                int(data.get("mismatched", 0)),
            ),
            warnings=list(warnings),
        )


def series_warnings(values: Column, histogram: Histogram) -> list[str]:
    """What makes one reference series degenerate, in words; empty when nothing does.

    ``no values`` (every value missing), ``constant`` (one distinct value),
    ``near-constant`` (one value holds at least :data:`NEAR_CONSTANT_SHARE` of the
    non-missing values) and ``few values`` (fewer than :data:`FEW_VALUES`). Shares count
    non-missing values only; numeric values are compared as floats, categorical ones as the
    strings they are binned as.

    Parameters
    ----------
    values
        The raw reference column.
    histogram
        Its reference histogram (for the kind, n and missing count).

    Examples
    --------
    >>> b = NumericBinning.fit([5.0] * 300)
    >>> series_warnings([5.0] * 300, Histogram(b).add([5.0] * 300))
    ['constant: all 300 values are 5.0']
    >>> col = ["DE"] * 995 + ["FR"] * 5
    >>> series_warnings(col, Histogram(CategoricalBinning.fit(col)).add(col))
    ["near-constant: 995 of 1000 values (99.5%) are 'DE'"]
    """
    n, binning = histogram.n, histogram.binning
    if n == 0:
        if histogram.mismatched:
            return [
                f"no values: {histogram.missing} missing and {histogram.mismatched} of the "
                f"wrong type (not a {binning.kind} value)"
            ]
        return [f"no values: all {histogram.missing} are missing"]
    top: float | str
    if isinstance(binning, CategoricalBinning):
        # Categories are ranked by frequency: the first one is the most frequent value.
        top, top_n = binning.categories[0], int(histogram.counts[0])
    else:
        distinct, counts = np.unique(finite_values(values), return_counts=True)
        i = int(counts.argmax())
        top, top_n = float(distinct[i]), int(counts[i])
    out = []
    if top_n == n:
        out.append(
            f"constant: its one value is {top!r}"
            if n == 1
            else f"constant: all {n} values are {top!r}"
        )
    elif top_n / n >= NEAR_CONSTANT_SHARE:
        out.append(f"near-constant: {top_n} of {n} values ({top_n / n:.1%}) are {top!r}")
    if n < FEW_VALUES:
        out.append(
            f"few values: {n}, below the {FEW_VALUES} the statistics need by default to judge"
        )
    return out


def _json_value(value: Any) -> Any:
    """A raw value as the worker sees it in an event: JSON scalars; NaN, ±inf and other
    non-JSON floats become ``None`` (missing), numpy scalars their Python value, anything
    else (dates, bytes ...) its text."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    return str(value)


@dataclass(frozen=True)
class ReferenceSample:
    """A uniform sample of the reference's raw feature rows, drawn without replacement.

    Parameters
    ----------
    features
        Feature names, sorted; every row has exactly these keys.
    rows
        The sampled rows in data-set order, each ``{feature: value}`` with the values as an
        event carries them (numbers, strings, booleans; ``None`` for a missing value).
    population
        Rows the sample was drawn from.
    seed
        Seed of the draw (the same data and seed give the same sample).

    Examples
    --------
    >>> s = ReferenceSample.draw({"a": np.arange(10.0), "b": list("abcdefghij")}, 3, seed=1)
    >>> len(s.rows), s.population, sorted(s.rows[0])
    (3, 10, ['a', 'b'])
    >>> ReferenceSample.from_dict(s.to_dict()) == s
    True
    """

    features: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    population: int
    seed: int

    @classmethod
    def draw(
        cls, columns: Mapping[str, Column], size: int, *, seed: int = 0
    ) -> ReferenceSample | None:
        """Draw ``size`` rows (all when there are fewer) of equally long ``columns``.

        Returns ``None`` when ``size`` is 0, there are no columns or no rows, or the columns
        differ in length (they are then not rows).
        """
        lengths = {len(c) for c in columns.values()}
        if size <= 0 or len(lengths) != 1 or (population := lengths.pop()) == 0:
            return None
        # Sorted picks keep the data set's order; the same seed gives the same rows.
        picks = np.sort(
            np.random.default_rng(seed).choice(population, min(size, population), replace=False)
        )
        features = tuple(sorted(columns))
        rows = tuple(
            {name: _json_value(columns[name][i]) for name in features} for i in picks.tolist()
        )
        return cls(features, rows, population, seed)

    def to_dict(self) -> dict[str, Any]:
        # Rows as lists under one header: half the bytes of a dict per row.
        return {
            "population": self.population,
            "seed": self.seed,
            "features": list(self.features),
            "rows": [[row[name] for name in self.features] for row in self.rows],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceSample:
        features = tuple(str(f) for f in data["features"])
        rows = []
        for values in data["rows"]:
            if not isinstance(values, list) or len(values) != len(features):
                raise ValueError(f"sample: a row must list {len(features)} values")
            rows.append(dict(zip(features, values, strict=True)))
        return cls(features, tuple(rows), int(data["population"]), int(data["seed"]))


@dataclass(frozen=True)
class ReferencePerformance:
    """The model's realised performance on the reference (its labels vs its predictions).

    Parameters
    ----------
    task
        ``binary``, ``multiclass`` or ``regression``
        (:func:`stream_drift.stats.performance.infer_task`).
    n
        (prediction, label) pairs it was computed from: rows where both are present.
    metrics
        Metric name → value (``None`` where a metric is undefined, e.g. ROC AUC with one class).
    label, prediction
        Source columns of the labels and the predictions (not part of the id).
    """

    task: str
    n: int
    metrics: dict[str, float | None]
    label: str = ""
    prediction: str = ""

    def content(self) -> dict[str, Any]:
        """What the profile's id hashes."""
        return {"task": self.task, "n": self.n, "metrics": dict(sorted(self.metrics.items()))}

    def to_dict(self) -> dict[str, Any]:
        return {**self.content(), "label": self.label, "prediction": self.prediction}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferencePerformance:
        metrics = data["metrics"]
        if not isinstance(metrics, Mapping):
            raise TypeError("performance: metrics must be an object")
        return cls(
            task=str(data["task"]),
            n=int(data["n"]),
            metrics={str(k): None if v is None else float(v) for k, v in metrics.items()},
            label=str(data.get("label", "")),
            prediction=str(data.get("prediction", "")),
        )


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and not np.isfinite(value))


def reference_performance(
    predictions: Column, labels: Column, *, prediction: str = "", label: str = ""
) -> ReferencePerformance:
    """The performance of ``predictions`` against ``labels``, rows where both are present.

    Raises
    ------
    ReferenceError
        When no row has both a prediction and a label, or they cannot be compared.
    """
    from stream_drift.stats.performance import infer_task, new_accumulator

    pairs = [
        (_json_value(p), _json_value(y))
        for p, y in zip(predictions, labels, strict=True)
        if _present(p) and _present(y)
    ]
    if not pairs:
        raise ReferenceError(
            f"no row has both a prediction ({prediction!r}) and a label ({label!r}): "
            "cannot compute the reference performance"
        )
    preds, ys = [p for p, _ in pairs], [y for _, y in pairs]
    try:
        task = infer_task(preds, ys)
        acc = new_accumulator(task)
        acc.add(preds, ys)
        metrics = acc.metrics()
    except (TypeError, ValueError) as exc:
        raise ReferenceError(
            f"cannot compare predictions {prediction!r} with labels {label!r}: {exc}"
        ) from exc
    return ReferencePerformance(
        task=task,
        n=len(pairs),
        metrics={k: _json_value(v) for k, v in metrics.items()},
        label=label,
        prediction=prediction,
    )


def _metadata(data: Mapping[str, Any]) -> dict[str, str]:
    """Checked ``metadata``: only :data:`METADATA_KEYS`, text values, empty ones left out."""
    if not isinstance(data, Mapping):
        raise TypeError("metadata must be an object")
    unknown = sorted(set(data) - set(METADATA_KEYS))
    if unknown:
        raise ValueError(f"metadata: unknown key(s) {unknown}; expected {list(METADATA_KEYS)}")
    if not all(isinstance(v, str) for v in data.values()):
        raise TypeError("metadata values must be strings")
    return {k: data[k] for k in METADATA_KEYS if data.get(k)}


@dataclass
class ReferenceProfile:
    """The reference of one model version: a profile per series.

    Examples
    --------
    >>> import numpy as np
    >>> columns = {"amount": np.arange(1000.0), "country": ["DE", "FR"] * 500,
    ...            "score": np.linspace(0, 1, 1000)}
    >>> ref = build_reference(columns, model="fraud", model_version="7", prediction=["score"])
    >>> sorted(ref.series), ref.series["prediction"].source, ref.series["country"].kind
    (['amount', 'country', 'prediction'], 'score', 'categorical')
    >>> ref.id == ReferenceProfile.from_dict(ref.to_dict()).id
    True
    """

    model: str
    model_version: str
    series: dict[str, SeriesProfile]
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    source: str = ""
    performance: ReferencePerformance | None = None
    sample: ReferenceSample | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def content(self) -> dict[str, Any]:
        """What the id hashes: model, version, every series, and the performance and the
        sample when there are (not when, from where, nor the metadata)."""
        out = {
            "format": FORMAT_VERSION,
            "model": self.model,
            "model_version": self.model_version,
            "series": {name: s.to_dict() for name, s in sorted(self.series.items())},
        }
        # Absent rather than null, so profiles written before they existed keep their id.
        if self.performance is not None:
            out["performance"] = self.performance.content()
        if self.sample is not None:
            out["sample"] = self.sample.to_dict()
        return out

    @cached_property
    def id(self) -> str:
        """Content hash: ``sha256:`` and the first 16 hex digits.

        Computed once: hashing every series costs milliseconds and stage 2 asks for the id of
        every partial it applies. A profile is not changed after it is built (build a new
        one, e.g. with :func:`dataclasses.replace`, which computes its own id).
        """
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def key(self) -> str:
        """Key on the references topic: ``model/version``."""
        return f"{self.model}/{self.model_version}"

    def to_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "created_at": self.created_at,
            "source": self.source,
            **self.content(),
        }
        if self.performance is not None:
            out["performance"] = self.performance.to_dict()
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out

    def to_json(self) -> str:
        data = self.to_dict()
        plain = json.dumps(data, indent=1, sort_keys=False)
        if self.sample is None or not self.sample.rows:
            return plain
        # One line per sampled row rather than one per value (a third of the bytes): the rows
        # are written compactly in place of a marker, unless some data holds the marker too.
        marker = json.dumps("\x00sample rows\x00")
        data["sample"] = {**data["sample"], "rows": json.loads(marker)}
        text = json.dumps(data, indent=1, sort_keys=False)
        if text.count(marker) != 1:
            return plain
        rows = ",\n   ".join(
            json.dumps(r, separators=(",", ":")) for r in self.sample.to_dict()["rows"]
        )
        return text.replace(marker, f"[\n   {rows}\n  ]")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        if not isinstance(data, Mapping):
            raise ReferenceError(
                f"not a valid reference profile: expected a JSON object, got {type(data).__name__}"
            )
        try:
            if int(data.get("format", 0)) != FORMAT_VERSION:
                raise ReferenceError(
                    f"reference format {data.get('format')!r} is not supported "
                    f"(expected {FORMAT_VERSION})"
                )
            profile = cls(
                model=str(data["model"]),
                model_version=str(data.get("model_version", "")),
                series={n: SeriesProfile.from_dict(n, s) for n, s in data["series"].items()},
                created_at=str(data.get("created_at", "")),
                source=str(data.get("source", "")),
                performance=(
                    ReferencePerformance.from_dict(data["performance"])
                    if data.get("performance") is not None
                    else None
                ),
                sample=(
                    ReferenceSample.from_dict(data["sample"])
                    if data.get("sample") is not None
                    else None
                ),
                metadata=_metadata(data.get("metadata") or {}),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ReferenceError):
                raise
            raise ReferenceError(f"not a valid reference profile: {exc!r}") from exc
        stated = data.get("id")
        if stated is not None and stated != profile.id:
            raise ReferenceError(
                f"reference id {stated} does not match its content ({profile.id}): "
                "the file was edited or corrupted"
            )
        return profile

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_text(self.to_json() + "\n", encoding="utf-8")
        return p

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ReferenceError(f"{p}: no such file") from exc
        except json.JSONDecodeError as exc:
            raise ReferenceError(f"{p}: not JSON ({exc})") from exc
        return cls.from_dict(data)

    @property
    def warnings(self) -> dict[str, list[str]]:
        """Every series' warnings, by series name; series without any are left out."""
        return {name: list(s.warnings) for name, s in self.series.items() if s.warnings}

    def current_histograms(self, columns: Mapping[str, Column]) -> dict[str, Histogram]:
        """Histograms of a current data set over this reference's bins, by series name.

        A series is read from its source column, or from a column bearing its own name (as in
        flattened stream events); series found in neither are left out.
        """
        out: dict[str, Histogram] = {}
        for name, s in self.series.items():
            column = columns.get(s.source, columns.get(name))
            if column is not None:
                out[name] = s.empty().add(column)
        return out


def build_reference(
    columns: Mapping[str, Column],
    *,
    model: str,
    model_version: str = "",
    prediction: Sequence[str] = (),
    categorical: Iterable[str] = (),
    numeric: Iterable[str] = (),
    exclude: Iterable[str] = DEFAULT_EXCLUDED,
    fine_bins: int = 100,
    coarse_bins: int = 10,
    top_categories: int = 50,
    source: str = "",
    label: str | None = None,
    sample_rows: int = 0,
    seed: int = 0,
    metadata: Mapping[str, str] | None = None,
) -> ReferenceProfile:
    """Profile every column: kinds inferred unless named in ``categorical`` / ``numeric``.

    One ``prediction`` column becomes the series ``prediction``; several become
    ``prediction.COLUMN`` each, matching an event's named prediction outputs. Columns already
    named like prediction series (``prediction``, ``prediction.X``, as in flattened stream
    events) are predictions too.

    Degenerate series (constant, near-constant, all missing, few values) are profiled and
    carry :func:`series_warnings`.

    Parameters
    ----------
    label
        Column of the true labels: never profiled; the profile records the model's
        performance on the reference (:func:`reference_performance`), its predictions being
        the one prediction column (named in ``prediction``, or a column named
        ``prediction``).
    sample_rows
        Raw feature rows to keep (:class:`ReferenceSample`, drawn with ``seed``); 0 (the
        default here): none. ``reference build`` keeps :data:`DEFAULT_SAMPLE_ROWS`: a sample
        turns the domain classifier on in stage 2, which costs CPU per window (README
        "Multivariate drift"), so code building profiles opts in explicitly.
    metadata
        ``owner``, ``intended_use``, ``description`` (:data:`METADATA_KEYS`).

    Raises
    ------
    ReferenceError
        A :class:`ValueError`: on data with no rows, a named column that does not exist, a
        column named both numeric and categorical, two columns that would make the same
        series, nothing left to profile, a label without one prediction column, or labels
        that cannot be compared with the predictions.

    Examples
    --------
    >>> ref = build_reference({"x": np.arange(200.0), "p": np.tile([0.2, 0.9], 100),
    ...                        "y": [0, 1] * 100}, model="m", prediction=["p"], label="y",
    ...                        sample_rows=5, metadata={"owner": "risk-team"})
    >>> perf = ref.performance
    >>> sorted(ref.series), perf.task, perf.n, perf.metrics["accuracy"]
    (['prediction', 'x'], 'binary', 200, 1.0)
    >>> len(ref.sample.rows), ref.sample.features, ref.metadata
    (5, ('x',), {'owner': 'risk-team'})
    """
    if not model:
        raise ReferenceError("model must be a non-empty name")
    if n_rows(columns) == 0:
        raise ReferenceError(
            "no rows: the data set is empty, and a reference needs at least one row"
        )
    if sample_rows < 0:
        raise ReferenceError(f"sample_rows must be >= 0 (0: no sample), got {sample_rows}")
    meta = _metadata(metadata or {})
    categorical, numeric = set(categorical), set(numeric)
    for name in [*prediction, *categorical, *numeric]:
        if name not in columns:
            raise ReferenceError(
                f"column {name!r} not found; available: {', '.join(sorted(columns))}"
            )
    both = categorical & numeric
    if both:
        raise ReferenceError(f"columns named both categorical and numeric: {sorted(both)}")
    performance = None
    if label is not None:
        performance = _label_performance(columns, label, prediction, categorical | numeric)
    skip = set(exclude) - set(prediction) - categorical - numeric
    if label is not None:
        skip.add(label)
    series: dict[str, SeriesProfile] = {}
    for column, values in columns.items():
        if column in skip:
            continue
        if column in prediction:
            role: Role = "prediction"
            name = "prediction" if len(prediction) == 1 else f"prediction.{column}"
        elif is_prediction_series(column):
            role, name = "prediction", column
        else:
            role, name = "feature", column
        if name in series:
            raise ReferenceError(
                f"columns {series[name].source!r} and {column!r} would both be the series "
                f"{name!r}; rename one or leave it out (--exclude)"
            )
        kind = (
            "categorical"
            if column in categorical
            else "numeric"
            if column in numeric
            else infer_kind(values)
        )
        binning: NumericBinning | CategoricalBinning = (
            NumericBinning.fit(values, fine_bins, coarse_bins)
            if kind == "numeric"
            else CategoricalBinning.fit(values, top_categories)
        )
        histogram = Histogram(binning).add(values)
        series[name] = SeriesProfile(
            name, role, column, histogram, series_warnings(values, histogram)
        )
    if not series:
        raise ReferenceError("no column left to profile")
    features = {name: columns[s.source] for name, s in series.items() if s.role == "feature"}
    return ReferenceProfile(
        model,
        model_version,
        series,
        source=source,
        performance=performance,
        sample=ReferenceSample.draw(features, sample_rows, seed=seed),
        metadata=meta,
    )


def size_warning(profile: ReferenceProfile) -> str | None:
    """Why ``profile`` may not publish (its JSON is over :data:`PUBLISH_LIMIT_BYTES`), or
    ``None``.

    Examples
    --------
    >>> size_warning(build_reference({"x": np.arange(200.0)}, model="m")) is None
    True
    """
    size = len(profile.to_json().encode())
    if size <= PUBLISH_LIMIT_BYTES:
        return None
    sample = len(json.dumps(profile.sample.to_dict()).encode()) if profile.sample else 0
    return (
        f"the profile is {size:,} bytes ({sample:,} of them the row sample), more than the "
        f"{PUBLISH_LIMIT_BYTES:,} a Kafka broker accepts per record by default "
        "(message.max.bytes): publish may fail; keep fewer rows (--sample-rows), bins "
        "(--fine-bins) or categories (--top-categories), or raise max.message.bytes on the "
        "references topic"
    )


def _label_performance(
    columns: Mapping[str, Column], label: str, prediction: Sequence[str], forced: set[str]
) -> ReferencePerformance:
    """The reference performance of ``build_reference(label=...)``, or why there is none."""
    available = ", ".join(sorted(columns))
    if label not in columns:
        raise ReferenceError(f"label column {label!r} (--label) not found; available: {available}")
    if label in prediction or label in forced:
        raise ReferenceError(f"label column {label!r} (--label) is also named as a series")
    if len(prediction) > 1:
        raise ReferenceError(
            f"--label needs one prediction column to score, got {len(prediction)} "
            f"(--prediction {' --prediction '.join(prediction)})"
        )
    if prediction:
        column = prediction[0]
    elif "prediction" in columns:
        column = "prediction"  # as flattened stream events name it
    else:
        raise ReferenceError(
            f"--label {label} needs the model's prediction column: name it with "
            f"--prediction COL (no column 'prediction' either; available: {available})"
        )
    return reference_performance(columns[column], columns[label], prediction=column, label=label)
