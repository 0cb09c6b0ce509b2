"""``Settings``: every section of the settings file, the core's policies among them.

Build it with :func:`stream_drift.config.load_settings` (file and environment);
``Settings()`` is the defaults.

Examples
--------
>>> type(Settings().window).__name__, Settings().alerts.runbook_base_url
('WindowPolicy', '')
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Annotated, Any, Final, Literal

from annotated_types import Ge, Le
from pydantic import BeforeValidator, Field, Strict
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from stream_drift.config.base import (
    KafkaName,
    LogLevel,
    NonEmptyStr,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Section,
    lower,
    register_sections,
)
from stream_drift.config.kafka import KafkaSettings
from stream_drift.config.keys import BadKey, resolve_key
from stream_drift.config.policies import AlertPolicy, DecisionPolicy, WindowPolicy
from stream_drift.config.quality import ConceptPolicy, LabelsPolicy, MultivariatePolicy
from stream_drift.config.report import validate
from stream_drift.config.topics import TopicsSettings
from stream_drift.config.yaml_io import dump_yaml

__all__ = [
    "DEADLETTER_MIN_BYTES",
    "ENV_PREFIX",
    "KAFKA_RECORD_OVERHEAD",
    "IngestSettings",
    "MetricsSettings",
    "ReferencesSettings",
    "Settings",
    "WebSettings",
    "WorkerSettings",
]

ENV_PREFIX: Final = "STREAM_DRIFT_"
"""Prefix of the environment variables that override settings; ``__`` separates levels."""

KAFKA_RECORD_OVERHEAD: Final = 512
"""Bytes a record batch adds around one record's key and value (61 of batch header, ~20 of
record header; the rest is headroom): ``ingest.deadletter_max_bytes`` may use the rest of
``kafka.producer_max_request_bytes``."""

DEADLETTER_MIN_BYTES: Final = 16_384
"""Smallest dead-letter budget (``ingest.deadletter_max_bytes``, the ``max_bytes`` of
:func:`stream_drift.pipeline.deadletter.deadletter_payload`): room for every field that is
never truncated (``detail`` and ``model`` are capped at 1,024 and 256 characters)."""


IngestClient = Annotated[Literal["librdkafka", "aiokafka"], BeforeValidator(lower)]


class IngestSettings(Section):
    """Stage 1: decoding, validation and the flush of partial histograms."""

    flush_interval_seconds: PositiveFloat = Field(
        default=1.0, description="Flush partials this often."
    )
    max_message_bytes: PositiveInt = Field(
        default=1048576, description="Larger events go dead-letter."
    )
    known_models: tuple[NonEmptyStr, ...] = Field(
        default=(), description="Accepted model names; empty accepts any model."
    )
    deadletter_max_bytes: Annotated[int, Strict(), Ge(DEADLETTER_MIN_BYTES)] = Field(
        default=900000,
        description="Largest dead letter (key + JSON value), bytes; longer copies are cut.",
    )
    replay_chunk_records: PositiveInt = Field(
        default=10000,
        description="Offsets per chunk: commits stop at chunk starts, so a crash replays at "
        "most this many records per partition (counted once by stage 2).",
    )
    client: IngestClient = Field(
        default="aiokafka",
        description="Stage 1's Kafka client: aiokafka, or librdkafka (confluent-kafka: drains "
        "a backlog faster, but starved live partitions behind it on the embedded broker).",
    )


class ReferencesSettings(Section):
    """Where reference profiles come from."""

    files: tuple[NonEmptyStr, ...] = Field(default=(), description="Reference JSON files to load.")
    warmup_events: NonNegativeInt = Field(default=0, description="Learn a reference from N events.")
    warmup_max_models: PositiveInt = Field(
        default=100,
        description="Models learned at the same time; events of further new models go "
        "dead-letter (unknown_model) until a slot frees.",
    )


class WebSettings(Section):
    """The worker's HTTP server (``/metrics``)."""

    host: NonEmptyStr = Field(default="127.0.0.1", description="Bind address.")
    port: Annotated[int, Strict(), Ge(1), Le(65535)] = Field(default=6066, description="Bind port.")


class MetricsSettings(Section):
    """Prometheus export."""

    max_series: PositiveInt = Field(default=10000, description="Cap on exported label sets.")


class WorkerSettings(Section):
    """Worker process."""

    log_level: LogLevel = Field(default="info", description="Logging level.")
    data_dir: NonEmptyStr = Field(default="/tmp/stream-drift", description="Local state directory.")


# The sources ``load_settings`` reads (environment, file); none for a plain ``Settings()``.
_SOURCES: ContextVar[tuple[PydanticBaseSettingsSource, ...]] = ContextVar(
    "stream_drift_settings_sources", default=()
)


class Settings(Section, BaseSettings):
    """All settings of a ``stream-drift`` worker; build it with
    :func:`~stream_drift.config.load_settings`.

    Immutable: derive a modified copy with :meth:`override`. ``Settings()`` holds the
    defaults (and the keyword arguments given): it reads neither a file nor the environment.

    Examples
    --------
    >>> s = Settings()
    >>> s.topics.events, s.window.size_seconds, s.decision.alert_on
    ('drift.events', 300, ('psi',))
    >>> s.override({"web.port": 7000}).web.port
    7000
    """

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        case_sensitive=True,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
    )

    app_id: KafkaName = Field(
        default="stream-drift", description="Faust app id and consumer group."
    )
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicsSettings = TopicsSettings()
    ingest: IngestSettings = IngestSettings()
    window: WindowPolicy = WindowPolicy()
    decision: DecisionPolicy = DecisionPolicy()
    alerts: AlertPolicy = AlertPolicy()
    labels: LabelsPolicy = LabelsPolicy()
    concept: ConceptPolicy = ConceptPolicy()
    multivariate: MultivariatePolicy = MultivariatePolicy()
    references: ReferencesSettings = ReferencesSettings()
    web: WebSettings = WebSettings()
    metrics: MetricsSettings = MetricsSettings()
    worker: WorkerSettings = WorkerSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, *_SOURCES.get())

    @classmethod
    def from_sources(cls, *sources: PydanticBaseSettingsSource) -> Settings:
        """Settings read from ``sources``, the first one winning key by key.

        Raises
        ------
        pydantic.ValidationError
            When the merged values do not validate.
        """
        token = _SOURCES.set(sources)
        try:
            return cls()
        finally:
            _SOURCES.reset(token)

    @property
    def label_join_changelog(self) -> str:
        """The compacted topic holding the label join's waiting predictions and labels.

        Examples
        --------
        >>> Settings().label_join_changelog
        'stream-drift-label-join-changelog'
        """
        return f"{self.app_id}-label-join-changelog"

    def _problems(self) -> list[tuple[str, str]]:
        problems = []
        # A dead letter is one record of the worker's producer: it must fit its request limit.
        limit = self.kafka.producer_max_request_bytes - KAFKA_RECORD_OVERHEAD
        if self.ingest.deadletter_max_bytes > limit:
            problems.append(
                (
                    "ingest.deadletter_max_bytes",
                    f"must be <= kafka.producer_max_request_bytes "
                    f"({self.kafka.producer_max_request_bytes}) minus {KAFKA_RECORD_OVERHEAD} "
                    f"bytes of Kafka record framing ({limit}), got "
                    f"{self.ingest.deadletter_max_bytes}; lower it or raise "
                    "kafka.producer_max_request_bytes",
                )
            )
        partitions = self.topics.partitions
        if self.labels.enabled and partitions.labels != partitions.events:
            # The join is co-partitioned: partition p of both topics must meet on one worker.
            problems.append(
                (
                    "topics.partitions.labels",
                    f"must equal topics.partitions.events ({partitions.events}) when "
                    f"labels.enabled is true (the label join is co-partitioned by event_id), "
                    f"got {partitions.labels}",
                )
            )
        return problems

    def to_yaml(self) -> str:
        """The settings as YAML, every key present but ``kafka.sasl_password`` (a secret is
        never written out: give it to the reader with ``STREAM_DRIFT_KAFKA__SASL_PASSWORD``);
        :func:`~stream_drift.config.load_settings` reads it back.

        Examples
        --------
        >>> print(Settings().to_yaml().splitlines()[0])
        app_id: stream-drift
        """
        return dump_yaml(self.model_dump(mode="json", exclude={"kafka": {"sasl_password"}}))

    def override(self, updates: Mapping[str, Any]) -> Settings:
        """A validated copy with the dotted keys in ``updates`` replaced.

        Parameters
        ----------
        updates
            ``{"dotted.key": value}``; values are Python objects of the key's type.

        Raises
        ------
        ConfigError
            An unknown key, or a value that does not validate.

        Examples
        --------
        >>> s = Settings().override({"kafka.session_timeout_seconds": 6,
        ...                          "kafka.heartbeat_interval_seconds": 1})
        >>> s.kafka.session_timeout_seconds
        6.0
        """
        data = self.model_dump()
        problems: list[str] = []
        for dotted, value in updates.items():
            parts = dotted.split(".")
            try:
                resolve_key(Settings, parts)
            except BadKey as exc:
                problems.append(f"{dotted}: {exc}")
                continue
            node = data
            for part in parts[:-1]:
                node = node[part]
            old = node.get(parts[-1])
            # A mapping updates a section (or a mapping-valued key) key by key.
            node[parts[-1]] = (
                {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
            )
        return validate(Settings, data, problems, {})


register_sections(Settings)
