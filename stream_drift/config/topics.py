"""The ``topics`` settings: topic names by role, partitions, replication, retention, cleanup.

Examples
--------
>>> TopicsSettings().topic_specs()["events"]
('drift.events', 4)
"""

from __future__ import annotations

from typing import Annotated, Literal

from annotated_types import Ge
from pydantic import Field, Strict

from stream_drift.config.base import Bool, Expected, KafkaName, PositiveInt, Section

__all__ = ["TopicsSettings"]


class PartitionsSettings(Section):
    """Partition count of each topic, by role (same keys as :class:`TopicsSettings`)."""

    events: PositiveInt = 4
    labels: PositiveInt = 1
    partials: PositiveInt = 4
    alerts: PositiveInt = 1
    results: PositiveInt = 1
    references: PositiveInt = 1
    deadletter: PositiveInt = 1


_TOPIC_ROLES = ("events", "labels", "partials", "alerts", "results", "references", "deadletter")

RetentionMs = Annotated[int, Strict(), Ge(-1), Expected("an integer >= -1 (-1: forever)")]
CleanupPolicy = Literal["delete", "compact", "compact,delete"]

_DAY_MS = 86_400_000


class RetentionSettings(Section):
    """``retention.ms`` of each topic the worker creates, by role; ``-1`` keeps records forever,
    ``null`` leaves the broker's default (``log.retention.ms``). Applied at creation only."""

    events: RetentionMs | None = None
    labels: RetentionMs | None = None
    partials: RetentionMs | None = None
    alerts: RetentionMs | None = Field(default=-1, description="Audit trail: kept forever.")
    results: RetentionMs | None = Field(default=-1, description="Audit trail: kept forever.")
    references: RetentionMs | None = Field(default=-1, description="Every profile published.")
    deadletter: RetentionMs | None = Field(
        default=7 * _DAY_MS, description="Raw rejected input: as long as Kafka keeps input."
    )


class CleanupPolicySettings(Section):
    """``cleanup.policy`` of each topic the worker creates, by role. Applied at creation only."""

    events: CleanupPolicy = "delete"
    labels: CleanupPolicy = "delete"
    partials: CleanupPolicy = "delete"
    alerts: CleanupPolicy = "delete"
    results: CleanupPolicy = "delete"
    references: CleanupPolicy = "compact"
    deadletter: CleanupPolicy = "delete"


class TopicsSettings(Section):
    """Topic names by role, their partition counts and replication factor.

    Examples
    --------
    >>> TopicsSettings().topic_specs()["partials"]
    ('drift.partials', 4)
    """

    events: KafkaName = Field(default="drift.events", description="Input events.")
    labels: KafkaName = Field(default="drift.labels", description="Delayed ground-truth labels.")
    partials: KafkaName = Field(default="drift.partials", description="Stage-1 partial histograms.")
    alerts: KafkaName = Field(default="drift.alerts", description="Alert state changes.")
    results: KafkaName = Field(
        default="drift.results", description="Every evaluation (audit trail)."
    )
    references: KafkaName = Field(default="drift.references", description="Reference profiles.")
    deadletter: KafkaName = Field(default="drift.deadletter", description="Rejected input.")
    partitions: PartitionsSettings = PartitionsSettings()
    replication_factor: PositiveInt = Field(default=1, description="Replication of created topics.")
    create: Bool = Field(default=True, description="Create missing topics at start-up.")
    retention_ms: RetentionSettings = RetentionSettings()
    cleanup_policy: CleanupPolicySettings = CleanupPolicySettings()

    def topic_specs(self) -> dict[str, tuple[str, int]]:
        """``{role: (topic name, partitions)}`` for every topic role."""
        return {
            role: (getattr(self, role), getattr(self.partitions, role)) for role in _TOPIC_ROLES
        }

    def topic_configs(self) -> dict[str, dict[str, str]]:
        """``{topic name: {config: value}}``: the configs every topic is created with.

        Returns
        -------
        dict[str, dict[str, str]]
            ``cleanup.policy`` for every topic, ``retention.ms`` unless it is ``null``
            (broker default).

        Examples
        --------
        >>> TopicsSettings().topic_configs()["drift.results"]
        {'cleanup.policy': 'delete', 'retention.ms': '-1'}
        >>> TopicsSettings().topic_configs()["drift.events"]
        {'cleanup.policy': 'delete'}
        """
        configs: dict[str, dict[str, str]] = {}
        for role in _TOPIC_ROLES:
            config = {"cleanup.policy": getattr(self.cleanup_policy, role)}
            retention = getattr(self.retention_ms, role)
            if retention is not None:
                config["retention.ms"] = str(retention)
            configs[getattr(self, role)] = config
        return configs

    def _problems(self) -> list[tuple[str, str]]:
        seen: dict[str, str] = {}
        problems = []
        retention = self.retention_ms.references
        if "compact" not in self.cleanup_policy.references and retention not in (None, -1):
            problems.append(
                (
                    self._key("cleanup_policy.references"),
                    f"'delete' with {self._key('retention_ms.references')} {retention} would "
                    "delete reference profiles the workers need: use 'compact' or retention -1",
                )
            )
        for role in _TOPIC_ROLES:
            name = getattr(self, role)
            if name in seen:
                problems.append(
                    (
                        self._key(role),
                        f"must differ from {self._key(seen[name])}, got {name!r} for both",
                    )
                )
            else:
                seen[name] = role
        return problems
