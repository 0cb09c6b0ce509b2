"""Settings: one YAML file, overridable key by key from ``STREAM_DRIFT_*`` environment variables.

Loading happens in three steps, all in :func:`load_settings`:

1. the YAML file (if any) is read, with YAML 1.2 rules (:mod:`~stream_drift.config.yaml_io`);
2. every ``STREAM_DRIFT_*`` environment variable is laid over it. The part after the
   prefix is the dotted key path with ``__`` between levels, case-insensitive:
   ``STREAM_DRIFT_WINDOW__SIZE_SECONDS=600`` sets ``window.size_seconds``,
   ``STREAM_DRIFT_DECISION__THRESHOLDS__PSI=0.25`` sets one entry of a mapping;
3. the result is validated by strict, frozen pydantic models; the ``window``, ``decision``
   and ``alerts`` sections are the policies the core runs with
   (:mod:`~stream_drift.config.policies`).

Every problem found on the way (unknown key, unknown variable, wrong type, value out of range,
inconsistent keys) is collected and reported at once in a :class:`ConfigError`, one problem per
line, each line starting with the dotted key (or the variable's name) it is about.

Examples
--------
>>> s = load_settings(env={"STREAM_DRIFT_WINDOW__SIZE_SECONDS": "600"})
>>> s.window.size_seconds, s.window.step_seconds
(600, 60)
>>> try:
...     load_settings(env={"STREAM_DRIFT_WINDOW__STEP_SECONDS": "600"})
... except ConfigError as exc:
...     print(exc)
window.step_seconds: must be > 0 and <= window.size_seconds (300), got 600 \
(from STREAM_DRIFT_WINDOW__STEP_SECONDS)
"""

from stream_drift.config.base import ConfigError
from stream_drift.config.kafka import KafkaSettings
from stream_drift.config.loading import load_settings
from stream_drift.config.policies import (
    STATISTIC_NAMES,
    AlertPolicy,
    DecisionPolicy,
    StatisticName,
    WindowPolicy,
)
from stream_drift.config.quality import ConceptPolicy, LabelsPolicy, MultivariatePolicy
from stream_drift.config.settings import (
    DEADLETTER_MIN_BYTES,
    ENV_PREFIX,
    KAFKA_RECORD_OVERHEAD,
    IngestSettings,
    MetricsSettings,
    ReferencesSettings,
    Settings,
    WebSettings,
    WorkerSettings,
)
from stream_drift.config.topics import TopicsSettings

__all__ = [
    "DEADLETTER_MIN_BYTES",
    "ENV_PREFIX",
    "KAFKA_RECORD_OVERHEAD",
    "STATISTIC_NAMES",
    "AlertPolicy",
    "ConceptPolicy",
    "ConfigError",
    "DecisionPolicy",
    "IngestSettings",
    "KafkaSettings",
    "LabelsPolicy",
    "MetricsSettings",
    "MultivariatePolicy",
    "ReferencesSettings",
    "Settings",
    "StatisticName",
    "TopicsSettings",
    "WebSettings",
    "WindowPolicy",
    "WorkerSettings",
    "load_settings",
]
