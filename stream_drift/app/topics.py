"""The topics a worker reads and writes, with their partition counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from stream_drift.config import Settings


@dataclass(frozen=True)
class Topics:
    partials: Any
    alerts: Any
    results: Any
    references: Any
    deadletter: Any


def partition_counts(settings: Settings) -> dict[str, int]:
    """Topic name -> partitions, for explicit creation before the worker starts."""
    t, p = settings.topics, settings.topics.partitions
    counts = {
        t.events: p.events,
        t.labels: p.labels,
        t.partials: p.partials,
        t.alerts: p.alerts,
        t.results: p.results,
        t.references: p.references,
        t.deadletter: p.deadletter,
    }
    if settings.labels.enabled:
        # One changelog partition per joined partition number (events p = labels p).
        counts[settings.label_join_changelog] = p.events
    return counts


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Topic name -> the configs it is created with (``cleanup.policy``, ``retention.ms``).

    Parameters
    ----------
    settings : Settings
        ``topics.cleanup_policy.*`` and ``topics.retention_ms.*`` are read.

    Returns
    -------
    dict[str, dict[str, str]]
        Every topic of :func:`partition_counts`, with string values as Kafka takes them.
    """
    configs = settings.topics.topic_configs()
    if settings.labels.enabled:
        # Keyed by event_id, a tombstone once joined or expired: compaction keeps it bounded.
        configs[settings.label_join_changelog] = {"cleanup.policy": "compact"}
    return configs


def define(app: faust.App, settings: Settings) -> Topics:
    t, p = settings.topics, settings.topics.partitions

    def raw(name: str, partitions: int) -> Any:
        return app.topic(
            name,
            key_type=str,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions,
        )

    return Topics(
        partials=raw(t.partials, p.partials),
        alerts=raw(t.alerts, p.alerts),
        results=raw(t.results, p.results),
        references=raw(t.references, p.references),
        deadletter=raw(t.deadletter, p.deadletter),
    )
