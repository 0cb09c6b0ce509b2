"""Model-quality policies: the delayed-label join, concept drift, multivariate drift.

Each is a section of the settings file (``labels``, ``concept``, ``multivariate``) and the
object the Kafka-free core runs with. Detector names and parameters are spelt out here, so
loading the settings never imports River.

Examples
--------
>>> LabelsPolicy().ttl_seconds
604800.0
>>> ConceptPolicy(detector="page_hinkley", params={"threshold": 20.0}).detector_kwargs()
{'threshold': 20.0}
>>> try:
...     ConceptPolicy(detector="ddm", params={"delta": 0.1})
... except ValueError as exc:
...     print("concept.params" in str(exc))
True
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, get_args

from annotated_types import Ge, Gt, Le, Lt
from pydantic import AllowInfNan, Field, Strict

from stream_drift.config.base import Bool, PositiveFloat, PositiveInt, Section

__all__ = [
    "DETECTOR_NAMES",
    "DETECTOR_PARAMETERS",
    "ConceptPolicy",
    "DetectorName",
    "LabelsPolicy",
    "MultivariatePolicy",
]

DetectorName = Literal["adwin", "ddm", "eddm", "hddm_a", "hddm_w", "page_hinkley", "kswin"]
"""A River concept-drift detector fed with the per-event error stream."""

DETECTOR_NAMES: tuple[DetectorName, ...] = get_args(DetectorName)

DETECTOR_PARAMETERS: Final[dict[str, tuple[str, ...]]] = {
    "adwin": ("delta", "clock", "max_buckets", "min_window_length", "grace_period"),
    "ddm": ("warm_start", "warning_threshold", "drift_threshold"),
    "eddm": ("warm_start", "alpha", "beta"),
    "hddm_a": ("drift_confidence", "warning_confidence", "two_sided_test"),
    "hddm_w": ("drift_confidence", "warning_confidence", "lambda_val", "two_sided_test"),
    "page_hinkley": ("min_instances", "delta", "threshold", "alpha", "mode"),
    "kswin": ("alpha", "window_size", "stat_size", "seed"),
}
"""Constructor arguments of each detector's River class a config may set (a test checks
them against River's signatures)."""

Probability = Annotated[float, Strict(), AllowInfNan(False), Gt(0), Lt(1)]
ParameterValue = Annotated[float, AllowInfNan(False)] | Annotated[bool, Strict()] | str


class LabelsPolicy(Section):
    """The ``labels`` section: how predictions wait for their ground truth."""

    enabled: Bool = Field(
        default=False,
        description=(
            "Join labels on topics.labels with predictions on topics.events by event_id "
            "(a second consumer group reads both topics)."
        ),
    )
    ttl_seconds: PositiveFloat = Field(
        default=7 * 86400.0,
        description=(
            "Event time a prediction waits for its label (and a label for its prediction) "
            "before it is counted as expired (orphan_label)."
        ),
    )
    max_pending: PositiveInt = Field(
        default=1_000_000,
        description=(
            "Predictions and labels one worker holds while they wait; beyond it the oldest "
            "is evicted and counted (expired or orphan_label)."
        ),
    )
    min_pairs: PositiveInt = Field(
        default=30, description="Joined pairs a window needs before its performance is judged."
    )


class ConceptPolicy(Section):
    """The ``concept`` section: the detector fed with each joined pair's error."""

    detector: DetectorName = Field(default="adwin", description="River drift detector.")
    params: dict[str, ParameterValue] = Field(
        default_factory=dict,
        description="Constructor arguments of the detector (River's names and defaults).",
    )
    severity: Literal["warning", "critical"] = Field(
        default="critical", description="Severity of a concept_drift alert."
    )

    def detector_kwargs(self) -> dict[str, float | bool | str]:
        """The parameters as River's constructor takes them."""
        return dict(self.params)

    def _problems(self) -> list[tuple[str, str]]:
        allowed = DETECTOR_PARAMETERS[self.detector]
        return [
            (
                self._key("params"),
                f"unknown parameter {name!r} of detector {self.detector!r}; expected one of "
                + ", ".join(allowed),
            )
            for name in self.params
            if name not in allowed
        ]


class MultivariatePolicy(Section):
    """The ``multivariate`` section: the domain classifier (reference rows vs current rows)."""

    enabled: Bool = Field(
        default=True,
        description="Run the domain classifier for models whose reference holds a row sample.",
    )
    sample_per_step: Annotated[int, Strict(), Ge(1), Le(10_000)] = Field(
        default=64,
        description="Rows stage 1 samples per (model version, source partition, window step).",
    )
    min_rows: PositiveInt = Field(
        default=200, description="Current rows a window needs before its AUC is judged."
    )
    false_alarm_rate: Probability = Field(
        default=0.001,
        description="Target false alarms per window on a null stream (sets the AUC threshold).",
    )
