"""The core's policies: how windows are cut, how drift is decided, when alerts fire.

Each policy is both a section of the settings file (``window``, ``decision``, ``alerts``)
and the object the Kafka-free core (:mod:`stream_drift.pipeline`) runs with: validated
once, here, and never copied.

Examples
--------
>>> WindowPolicy(size_seconds=600, step_seconds=120).size_steps
5
>>> AlertPolicy(fire_after=3).resolve_after
2
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Literal, get_args

from annotated_types import Ge, Gt, Le, Lt
from pydantic import AfterValidator, AllowInfNan, Field, Strict

from stream_drift.config.base import (
    Bool,
    Expected,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    Section,
    Str,
)

if TYPE_CHECKING:
    from stream_drift.stats.base import Statistic

__all__ = [
    "STATISTIC_NAMES",
    "AlertPolicy",
    "DecisionPolicy",
    "StatisticName",
    "WindowPolicy",
    "check_runbook_base_url",
]

StatisticName = Literal["psi", "kl", "js", "ks", "chi2"]
"""Name of a drift statistic the settings can select (the classes are
:data:`stream_drift.stats.STATISTICS`; a test checks both agree). Spelt out here so loading
the settings never imports numpy or scipy."""

STATISTIC_NAMES: tuple[StatisticName, ...] = get_args(StatisticName)
"""Every selectable drift statistic, in the order results are reported."""


def _check_distinct(values: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(values)) != len(values):
        raise ValueError("duplicate items")
    return values


StatisticList = Annotated[
    tuple[StatisticName, ...],
    AfterValidator(_check_distinct),
    Expected("a list of distinct statistics from " + ", ".join(map(repr, STATISTIC_NAMES))),
]


def check_runbook_base_url(url: object) -> str | None:
    """Why ``url`` cannot be a runbook base URL, or ``None`` when it can.

    Examples
    --------
    >>> check_runbook_base_url("https://wiki.example.org/stream-drift/runbook.md") is None
    True
    >>> check_runbook_base_url("")  is None
    True
    >>> check_runbook_base_url("docs/runbook.md")
    "must be an http(s) URL or empty, got 'docs/runbook.md'"
    """
    if not isinstance(url, str):
        return f"must be a string, got {url!r}"
    if not url:
        return None
    if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
        return f"must be an http(s) URL or empty, got {url!r}"
    if "#" in url:
        return f"must not contain '#' (each alert appends its section's anchor), got {url!r}"
    return None


class WindowPolicy(Section):
    """Event-time (or count) windows: size, step, lateness, idle partitions.

    ``kind`` ``time`` cuts windows by event time (size and step in seconds); ``count`` keeps
    the last ``count_size`` events, sliding every ``count_step`` events. Event time is never
    trusted beyond processing time plus ``max_future_seconds``: a partial's watermark or
    steps beyond it are ignored and counted, and a state whose event time already moved there
    is repaired.

    Examples
    --------
    >>> WindowPolicy(size_seconds=600, step_seconds=120).step_seconds
    120
    """

    kind: Literal["time", "count"] = Field(
        default="time", description="Event-time or last-N windows."
    )
    size_seconds: PositiveInt = Field(default=300, description="Time window length.")
    step_seconds: PositiveInt = Field(
        default=60, description="Time window step (= size: tumbling)."
    )
    allowed_lateness_seconds: NonNegativeFloat = Field(default=10.0, description="Watermark lag.")
    idle_timeout_seconds: PositiveFloat = Field(default=30.0, description="Idle partition timeout.")
    max_future_seconds: NonNegativeFloat = Field(
        default=300.0,
        description="Events further ahead of the worker's clock go dead-letter "
        "(future_timestamp); no watermark moves beyond now + this.",
    )
    count_size: PositiveInt = Field(default=1000, description="Count window length, events.")
    count_step: PositiveInt = Field(default=250, description="Count window step, events.")

    @property
    def size_steps(self) -> int:
        """Steps in one window."""
        if self.kind == "count":
            return self.count_size // self.count_step
        return self.size_seconds // self.step_seconds

    def _problems(self) -> list[tuple[str, str]]:
        problems = []
        for size, step in (("size_seconds", "step_seconds"), ("count_size", "count_step")):
            size_v, step_v = getattr(self, size), getattr(self, step)
            if step_v > size_v:
                problems.append(
                    (
                        self._key(step),
                        f"must be > 0 and <= {self._key(size)} ({size_v}), got {step_v}",
                    )
                )
            elif size_v % step_v:
                problems.append(
                    (
                        self._key(size),
                        f"must be a whole multiple of {self._key(step)} ({step_v}), got {size_v}",
                    )
                )
        return problems


def _default_min_effect() -> dict[StatisticName, float]:
    return {"psi": 0.05}


class DecisionPolicy(Section):
    """Which statistics are computed, which ones alert, and how thresholds are set.

    A statistic listed in :attr:`thresholds` is compared with that fixed value; every other
    statistic gets the threshold matching :attr:`false_alarm_rate` at the window's sample sizes.

    The data-quality statistics ``missing_rate`` and ``mismatch_rate`` (a feature missing, or
    of the wrong type, more often than in the reference) are always computed, at the same
    :attr:`false_alarm_rate` (with it null: at the reference's rate plus
    :attr:`quality_min_effect`) and :attr:`min_samples`; :attr:`quality_alerts` makes them
    raise ``data_quality`` alerts besides the drift alerts of :attr:`alert_on`
    (:attr:`deciding` lists both).

    Examples
    --------
    >>> d = DecisionPolicy(false_alarm_rate=None, statistics=["psi"], thresholds={"psi": 0.2})
    >>> d.thresholds
    {'psi': 0.2}
    >>> d.deciding
    ('psi', 'missing_rate', 'mismatch_rate')
    >>> DecisionPolicy(quality_alerts=False).deciding
    ('psi',)
    >>> [s.name for s in DecisionPolicy().statistic_objects]
    ['psi', 'kl', 'js', 'ks', 'chi2', 'missing_rate', 'mismatch_rate']
    """

    statistics: StatisticList = Field(default=STATISTIC_NAMES, description="Statistics computed.")
    alert_on: StatisticList = Field(default=("psi",), description="Statistics that raise alerts.")
    min_samples: PositiveInt = Field(default=100, description="Fewer samples: window not judged.")
    false_alarm_rate: Annotated[float, Strict(), AllowInfNan(False), Gt(0), Lt(1)] | None = Field(
        default=0.0005, description="Target false-alarm rate per test, or null."
    )
    thresholds: dict[StatisticName, PositiveFloat] = Field(
        default_factory=dict, description="Fixed thresholds, by statistic."
    )
    min_effect: dict[StatisticName, NonNegativeFloat] = Field(
        default_factory=_default_min_effect, description="Smallest value that can alert."
    )
    quality_alerts: Bool = Field(
        default=True,
        description="Missing-value and type-mismatch rates raise data_quality alerts.",
    )
    quality_min_effect: Annotated[float, Strict(), AllowInfNan(False), Ge(0), Lt(1)] = Field(
        default=0.05,
        description="Smallest rise of a missing or mismatch rate over the reference's that "
        "can alert.",
    )
    correction: Literal["bh", "none"] = Field(
        default="bh", description="Multiple-testing correction."
    )
    psi_bins: Annotated[int, Strict(), Ge(2)] = Field(
        default=10, description="Coarse bins for PSI."
    )
    fine_bins: Annotated[int, Strict(), Ge(2)] = Field(default=100, description="Fine grid for KS.")
    top_categories: PositiveInt = Field(default=50, description="Categories kept per feature.")

    @property
    def deciding(self) -> tuple[str, ...]:
        """Statistics whose verdicts raise alerts: :attr:`alert_on`, then the data-quality
        ones when :attr:`quality_alerts` is on."""
        from stream_drift.stats.quality import MismatchRate, MissingRate

        quality = (MissingRate.name, MismatchRate.name) if self.quality_alerts else ()
        return (*self.alert_on, *quality)

    @cached_property
    def statistic_objects(self) -> tuple[Statistic, ...]:
        """The configured statistics with the configured thresholds, then the data-quality
        ones; built once per policy, so their threshold caches are shared by every model.

        ``missing_rate`` and ``mismatch_rate`` are floored by :attr:`quality_min_effect`
        above the reference's rate; with :attr:`false_alarm_rate` null that floor is their
        whole threshold (a fixed threshold of 0).
        """
        from stream_drift.stats.evaluate import STATISTICS
        from stream_drift.stats.quality import MismatchRate, MissingRate

        out: list[Statistic] = []
        for name in self.statistics:
            params: dict[str, float | None] = {"false_alarm_rate": self.false_alarm_rate}
            if name in self.thresholds:
                params["threshold"] = self.thresholds[name]
            if name in self.min_effect:
                params["min_effect"] = self.min_effect[name]
            out.append(STATISTICS[name](min_samples=self.min_samples, **params))
        for quality in (MissingRate, MismatchRate):
            out.append(
                quality(
                    threshold=None if self.false_alarm_rate is not None else 0.0,
                    false_alarm_rate=self.false_alarm_rate,
                    min_effect=self.quality_min_effect,
                    min_samples=self.min_samples,
                )
            )
        return tuple(out)

    def _problems(self) -> list[tuple[str, str]]:
        problems = []
        stats = ", ".join(map(repr, self.statistics))
        outside = [s for s in self.alert_on if s not in self.statistics]
        if outside:
            problems.append(
                (
                    self._key("alert_on"),
                    f"every item must be one of {self._key('statistics')} ({stats}), "
                    f"got {', '.join(map(repr, outside))}",
                )
            )
        if self.false_alarm_rate is None:
            missing = [s for s in self.statistics if s not in self.thresholds]
            if missing:
                problems.append(
                    (
                        self._key("thresholds"),
                        f"must give a fixed threshold for every statistic when "
                        f"{self._key('false_alarm_rate')} is null, missing "
                        f"{', '.join(map(repr, missing))}",
                    )
                )
        if self.fine_bins % self.psi_bins:
            problems.append(
                (
                    self._key("fine_bins"),
                    f"must be a whole multiple of {self._key('psi_bins')} ({self.psi_bins}), "
                    f"got {self.fine_bins}",
                )
            )
        return problems


class AlertPolicy(Section):
    """When a drift finding becomes an alert, and when the alert ends.

    ``fire_after`` consecutive judged windows with ``is_drift`` fire; ``resolve_after``
    consecutive judged windows below ``threshold * resolve_ratio`` resolve (``resolve_ratio``
    1 disables the band); after a resolve the same key cannot fire again for
    ``cooldown_seconds`` of evaluation time. ``runbook_base_url`` is where the team's copy of
    ``docs/runbook.md`` is served (``http://`` or ``https://``, no ``#``): each alert links to
    its section, ``<base>#streamdriftwarning`` or ``<base>#streamdriftcritical`` (drift),
    ``<base>#streamdriftdataquality`` (data quality). ``""`` (the default) for no link: the
    alert then carries ``"runbook_url": ""``, never an invented address.

    Examples
    --------
    >>> AlertPolicy(runbook_base_url="https://wiki.example.org/runbook").runbook_base_url
    'https://wiki.example.org/runbook'
    >>> AlertPolicy(resolve_ratio=1.5)
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for AlertPolicy
    resolve_ratio
      Input should be less than or equal to 1 ...
    """

    fire_after: PositiveInt = Field(
        default=2, description="Drifted windows in a row before firing."
    )
    resolve_after: PositiveInt = Field(
        default=2, description="Clean windows in a row before resolving."
    )
    resolve_ratio: Annotated[float, Strict(), AllowInfNan(False), Gt(0), Le(1)] = Field(
        default=0.8, description="A window is clean below resolve_ratio * threshold."
    )
    cooldown_seconds: NonNegativeFloat = Field(
        default=600.0, description="Quiet time after resolving."
    )
    runbook_base_url: Str = Field(
        default="",
        description="URL of your copy of docs/runbook.md; alerts link to <url>#<section>. "
        "Empty: no link.",
    )

    def _problems(self) -> list[tuple[str, str]]:
        problem = check_runbook_base_url(self.runbook_base_url)
        return [] if problem is None else [(self._key("runbook_base_url"), problem)]
