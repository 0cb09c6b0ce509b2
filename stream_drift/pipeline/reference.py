"""Reference profiles: what each series of a model looked like when it was trained.

A profile holds, per feature and per prediction output, its kind, bin layout and reference
counts (fine grid for KS, coarse grid derived from it for PSI and the others), n and missing
count, and warnings about a degenerate series (constant, near-constant, empty, too few values).
Its id is a content hash, so every result can name the exact reference it was judged against.
It is stored as JSON and published to the compacted ``drift.references`` topic.
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

    def content(self) -> dict[str, Any]:
        """What the id hashes: model, version and every series (not when or from where)."""
        return {
            "format": FORMAT_VERSION,
            "model": self.model,
            "model_version": self.model_version,
            "series": {name: s.to_dict() for name, s in sorted(self.series.items())},
        }

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
        return {
            "id": self.id,
            "created_at": self.created_at,
            "source": self.source,
            **self.content(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=False)

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
) -> ReferenceProfile:
    """Profile every column: kinds inferred unless named in ``categorical`` / ``numeric``.

    One ``prediction`` column becomes the series ``prediction``; several become
    ``prediction.COLUMN`` each, matching an event's named prediction outputs. Columns already
    named like prediction series (``prediction``, ``prediction.X``, as in flattened stream
    events) are predictions too.

    Degenerate series (constant, near-constant, all missing, few values) are profiled and
    carry :func:`series_warnings`.

    Raises
    ------
    ReferenceError
        A :class:`ValueError`: on data with no rows, a named column that does not exist, a
        column named both numeric and categorical, two columns that would make the same
        series, or nothing left to profile.
    """
    if not model:
        raise ReferenceError("model must be a non-empty name")
    if n_rows(columns) == 0:
        raise ReferenceError(
            "no rows: the data set is empty, and a reference needs at least one row"
        )
    categorical, numeric = set(categorical), set(numeric)
    for name in [*prediction, *categorical, *numeric]:
        if name not in columns:
            raise ReferenceError(
                f"column {name!r} not found; available: {', '.join(sorted(columns))}"
            )
    both = categorical & numeric
    if both:
        raise ReferenceError(f"columns named both categorical and numeric: {sorted(both)}")
    skip = set(exclude) - set(prediction) - categorical - numeric
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
    return ReferenceProfile(model, model_version, series, source=source)
